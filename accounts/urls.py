"""Page routes. The org admin pages of every app live under /orgs/<org>/ in this one namespace, so
the navigation and the tests name them the same way (`accounts:members`, `accounts:audit-log`)."""

from django.urls import include, path

from accounts import login_views, mfa_views, reset_views, session_views, views
from agents import views as agent_views
from audit import views as audit_views
from rbac import views as rbac_views

org_pages = [
    path("members/", views.MemberListView.as_view(), name="members"),
    path("members/<uuid:pk>/", views.MemberEditView.as_view(), name="member-edit"),
    path("members/<uuid:pk>/remove/", views.MemberRemoveView.as_view(), name="member-remove"),
    path("members/<uuid:pk>/security/", views.MemberSecurityView.as_view(), name="member-security"),
    path("teams/", rbac_views.TeamListView.as_view(), name="teams"),
    path("teams/<uuid:pk>/", rbac_views.TeamDetailView.as_view(), name="team-detail"),
    path("roles/", rbac_views.RoleListView.as_view(), name="roles"),
    path("roles/new/", rbac_views.RoleCreateView.as_view(), name="role-new"),
    path("roles/<uuid:pk>/", rbac_views.RoleEditView.as_view(), name="role-edit"),
    path("api-keys/", views.ApiKeyListView.as_view(), name="api-keys"),
    path("api-keys/<uuid:pk>/revoke/", views.ApiKeyRevokeView.as_view(), name="api-key-revoke"),
    path("agents/", agent_views.AgentListView.as_view(), name="agents"),
    path("agents/<uuid:pk>/", agent_views.AgentDetailView.as_view(), name="agent-detail"),
    path("agents/<uuid:pk>/rotate/", agent_views.AgentRotateView.as_view(), name="agent-rotate"),
    path("agents/<uuid:pk>/end-previous/", agent_views.AgentEndPreviousView.as_view(),
         name="agent-end-previous"),
    path("agents/<uuid:pk>/status/", agent_views.AgentStatusView.as_view(), name="agent-status"),
    path("agents/<uuid:pk>/revoke/", agent_views.AgentRevokeView.as_view(), name="agent-revoke"),
    path("connections/", agent_views.ConnectionListView.as_view(), name="connections"),
    path("runs/", agent_views.RunListView.as_view(), name="runs"),
    path("runs/<uuid:pk>/terminate/", agent_views.RunTerminateView.as_view(), name="run-terminate"),
    path("audit/", audit_views.AuditLogView.as_view(), name="audit-log"),
    path("access-review/", audit_views.AccessReviewView.as_view(), name="access-review"),
    path("security/", views.SecurityPolicyPageView.as_view(), name="security-policy"),
]

app_name = "accounts"
urlpatterns = [
    path("", views.home, name="home"),
    path("login/", login_views.login_view, name="login"),
    path("logout/", login_views.logout_view, name="logout"),
    path("reauth/", login_views.reauth_view, name="reauth"),
    path("account/password/", login_views.password_change_view, name="password-change"),
    *mfa_views.urlpatterns,
    *reset_views.urlpatterns, *session_views.urlpatterns,
    path("orgs/switch/", views.org_switch, name="org-switch"),
    path("orgs/<str:org>/", include(org_pages)),
]
