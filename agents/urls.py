"""Org pages for agents, connections and runs (the OAuth endpoints are in oauth_urls.py)."""

from django.urls import path

from agents import views
from web.routing import org_pages

app_name = "agents"
urlpatterns = [
    org_pages(
        path("agents/", views.AgentListView.as_view(), name="agents"),
        path("agents/<uuid:pk>/", views.AgentDetailView.as_view(), name="agent-detail"),
        path("agents/<uuid:pk>/rotate/", views.AgentRotateView.as_view(), name="agent-rotate"),
        path("agents/<uuid:pk>/end-previous/", views.AgentEndPreviousView.as_view(),
             name="agent-end-previous"),
        path("agents/<uuid:pk>/status/", views.AgentStatusView.as_view(), name="agent-status"),
        path("agents/<uuid:pk>/revoke/", views.AgentRevokeView.as_view(), name="agent-revoke"),
        path("connections/", views.ConnectionListView.as_view(), name="connections"),
        path("runs/", views.RunListView.as_view(), name="runs"),
        path("runs/<uuid:pk>/terminate/", views.RunTerminateView.as_view(), name="run-terminate"),
    ),
]
