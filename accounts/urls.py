"""Routes of sign-in, the person's own account pages, and the org pages for members and API keys."""

from django.urls import path

from accounts import login_views, mfa_views, reset_views, session_views, views
from web.routing import org_pages

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
    org_pages(
        path("members/", views.MemberListView.as_view(), name="members"),
        path("members/<uuid:pk>/", views.MemberEditView.as_view(), name="member-edit"),
        path("members/<uuid:pk>/remove/", views.MemberRemoveView.as_view(), name="member-remove"),
        path("members/<uuid:pk>/security/", views.MemberSecurityView.as_view(), name="member-security"),
        path("api-keys/", views.ApiKeyListView.as_view(), name="api-keys"),
        path("api-keys/<uuid:pk>/revoke/", views.ApiKeyRevokeView.as_view(), name="api-key-revoke"),
    ),
]
