"""Org pages for agents, connections and runs (the OAuth endpoints are in oauth_urls.py)."""

from django.urls import path

from agents.views import agent_pages, connection_pages, delegation_pages, device_pages, run_pages
from web.routing import org_pages

app_name = "agents"
urlpatterns = [
    path("device/", device_pages.device_view, name="device"),
    path("account/delegations/", delegation_pages.delegations_view, name="account-delegations"),
    path("account/delegations/revoke/", delegation_pages.delegations_revoke_view,
         name="account-delegations-revoke"),
    org_pages(
        path("agents/", agent_pages.AgentListView.as_view(), name="agents"),
        path("agents/<uuid:pk>/", agent_pages.AgentDetailView.as_view(), name="agent-detail"),
        path("agents/<uuid:pk>/rotate/", agent_pages.AgentRotateView.as_view(), name="agent-rotate"),
        path("agents/<uuid:pk>/end-previous/", agent_pages.AgentEndPreviousView.as_view(),
             name="agent-end-previous"),
        path("agents/<uuid:pk>/status/", agent_pages.AgentStatusView.as_view(), name="agent-status"),
        path("agents/<uuid:pk>/revoke/", agent_pages.AgentRevokeView.as_view(), name="agent-revoke"),
        path("agents/<uuid:pk>/delegates/", agent_pages.AgentDelegatesView.as_view(), name="agent-delegates"),
        path("delegations/", delegation_pages.DelegationListView.as_view(), name="delegations"),
        path("delegations/<uuid:pk>/revoke/", agent_pages.DelegationRevokeView.as_view(),
             name="delegation-revoke"),
        path("connections/", connection_pages.ConnectionListView.as_view(), name="connections"),
        path("connections/<uuid:pk>/", connection_pages.ConnectionDetailView.as_view(),
             name="connection-detail"),
        path("connections/<uuid:pk>/rotate/", connection_pages.ConnectionRotateView.as_view(),
             name="connection-rotate"),
        path("connections/<uuid:pk>/delete/", connection_pages.ConnectionDeleteView.as_view(),
             name="connection-delete"),
        path("runs/", run_pages.RunListView.as_view(), name="runs"),
        path("runs/<uuid:pk>/", run_pages.RunDetailView.as_view(), name="run-detail"),
        path("runs/<uuid:pk>/stop/", run_pages.RunStopView.as_view(), name="run-stop"),
        path("runs/<uuid:pk>/terminate/", run_pages.RunTerminateView.as_view(), name="run-terminate"),
    ),
]
