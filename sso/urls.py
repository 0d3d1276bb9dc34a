"""SSO routes under `/sso/{org}/{connection}/`: the OIDC login, callback and back-channel logout;
the SAML SP metadata, login, ACS and the same-site finish step after it. The owner's pages are
under /orgs/{org}/sso/ (sso.views.admin)."""

from django.urls import path

from sso.views import admin, oidc, pages, reauth, saml
from web.routing import org_pages

app_name = "sso"
PREFIX = "sso/<slug:org>/<slug:connection>/"
urlpatterns = [
    path("sso/reauth/<uuid:pk>/", reauth.reauth_view, name="reauth"),
    path("sso/<slug:org>/", pages.org_signin_view, name="org-signin"),
    path(PREFIX + "oidc/login/", oidc.login_view, name="oidc-login"),
    path(PREFIX + "oidc/callback/", oidc.callback_view, name="oidc-callback"),
    path(PREFIX + "oidc/backchannel-logout/", oidc.backchannel_logout_view, name="oidc-backchannel-logout"),
    path(PREFIX + "saml/metadata/", saml.metadata_view, name="saml-metadata"),
    path(PREFIX + "saml/login/", saml.login_view, name="saml-login"),
    path(PREFIX + "saml/acs/", saml.acs_view, name="saml-acs"),
    path(PREFIX + "saml/finish/", saml.finish_view, name="saml-finish"),
    org_pages(
        path("sso/", admin.ConnectionListView.as_view(), name="connections"),
        path("sso/new/<slug:protocol>/", admin.ConnectionNewView.as_view(), name="connection-new"),
        path("sso/<uuid:pk>/", admin.ConnectionDetailView.as_view(), name="connection-detail"),
        path("sso/<uuid:pk>/refresh/", admin.ConnectionRefreshView.as_view(), name="connection-refresh"),
        path("sso/<uuid:pk>/test/", admin.ConnectionTestView.as_view(), name="connection-test"),
        path("sso/<uuid:pk>/delete/", admin.ConnectionDeleteView.as_view(), name="connection-delete"),
        path("sso/domains/", admin.DomainListView.as_view(), name="domains"),
        path("sso/domains/<uuid:pk>/verify/", admin.DomainVerifyView.as_view(), name="domain-verify"),
        path("sso/domains/<uuid:pk>/remove/", admin.DomainRemoveView.as_view(), name="domain-remove"),
    ),
]
