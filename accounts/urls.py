"""Routes of sign-in, the person's own account pages, and the org pages for members and API keys."""

from django.urls import path

from accounts.views import invitations, login, members, mfa, reset, sessions
from web.routing import org_pages

app_name = "accounts"
urlpatterns = [
    path("", members.home, name="home"),
    path("login/", login.login_view, name="login"),
    path("logout/", login.logout_view, name="logout"),
    path("reauth/", login.reauth_view, name="reauth"),
    path("login/sso-required/", login.sso_required_view, name="sso-required"),
    path("account/password/", login.password_change_view, name="password-change"),
    *mfa.urlpatterns,
    *reset.urlpatterns, *sessions.urlpatterns, *invitations.urlpatterns,
    path("orgs/switch/", members.org_switch, name="org-switch"),
    org_pages(
        path("members/", members.MemberListView.as_view(), name="members"),
        path("members/<uuid:pk>/", members.MemberDetailView.as_view(), name="member-detail"),
        path("members/<uuid:pk>/edit/", members.MemberEditView.as_view(), name="member-edit"),
        path("members/<uuid:pk>/remove/", members.MemberRemoveView.as_view(), name="member-remove"),
        path("members/<uuid:pk>/security/", members.MemberSecurityView.as_view(), name="member-security"),
        path("api-keys/", members.ApiKeyListView.as_view(), name="api-keys"),
        path("api-keys/<uuid:pk>/revoke/", members.ApiKeyRevokeView.as_view(), name="api-key-revoke"),
    ),
]
