"""SSO routes under `/sso/{org}/{connection}/`: the OIDC login, callback and back-channel logout;
the SAML SP metadata, login, ACS and the same-site finish step after it."""

from django.urls import path

from sso.views import oidc, pages, reauth, saml

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
]
