"""Org pages for teams and roles."""

from django.urls import path

from rbac import views
from web.routing import org_pages

app_name = "rbac"
urlpatterns = [
    org_pages(
        path("teams/", views.TeamListView.as_view(), name="teams"),
        path("teams/<uuid:pk>/", views.TeamDetailView.as_view(), name="team-detail"),
        path("teams/<uuid:pk>/delete/", views.TeamDeleteView.as_view(), name="team-delete"),
        path("roles/", views.RoleListView.as_view(), name="roles"),
        path("roles/new/", views.RoleCreateView.as_view(), name="role-new"),
        path("roles/<uuid:pk>/", views.RoleEditView.as_view(), name="role-edit"),
        path("roles/<uuid:pk>/delete/", views.RoleDeleteView.as_view(), name="role-delete"),
    ),
]
