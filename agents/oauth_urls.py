from django.urls import path

from agents import oauth

app_name = "oauth"
urlpatterns = [
    path("oauth/<str:org>/token", oauth.token_endpoint, name="token"),
    path("oauth/<str:org>/device_authorization", oauth.device_authorization_endpoint,
         name="device_authorization"),
    path("oauth/<str:org>/introspect", oauth.introspection_endpoint, name="introspect"),
    path("oauth/<str:org>/revoke", oauth.revocation_endpoint, name="revoke"),
    path("oauth/<str:org>/jwks.json", oauth.jwks, name="jwks"),
    path("oauth/<str:org>/runs/<str:run_id>", oauth.run_state_endpoint, name="run-state"),
    # RFC 8414 §3: the well-known segment goes between the host and the issuer's path.
    path(".well-known/oauth-authorization-server/oauth/<str:org>", oauth.metadata, name="metadata"),
]
