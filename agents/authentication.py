"""DRF authentication for agents calling our own admin API with a capability token."""

import jwt
from django.conf import settings
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from agents.revocation import RevocationUnavailable
from agents.tokens import TokenInvalid, token_verify
from audit.actors import Actor
from core.models import Organization
from core.permissions import perms_from_strings
from rbac.access import Access, ServicePrincipal


def api_audience(org_slug: str) -> str:
    """The audience an agent's token must carry to call this org's admin API."""
    return f"{settings.IAM_CANONICAL_ORIGIN.rstrip('/')}/api/v1/orgs/{org_slug}/"


class AgentPrincipal(ServicePrincipal):
    """An agent's request; its verified claims are `request.auth`."""

    def __init__(self, claims: dict):
        self.claims = claims

    def __str__(self) -> str:
        return self.claims["sub"]

    @property
    def perms(self) -> frozenset:
        # Only scopes that name catalogue permissions act on this API; the owners' right to hand
        # them out was checked when the token was issued.
        return perms_from_strings(self.claims["scope"].split())

    def access_in(self, org_slug: str) -> Access | None:
        # The token was verified for this org's API audience; one query resolves the org row.
        if self.claims["org"] != org_slug:
            return None
        org = Organization.objects.filter(slug=org_slug).first()
        if org is None:
            return None
        # The actor is the agent calling, the outermost `act` of a delegated token (whose `sub` is
        # the person or agent it acts for), else the token's own subject.
        acting = (self.claims.get("act") or {}).get("sub") or self.claims["sub"]
        actor = Actor("agent", acting.removeprefix("agent:"), self.claims["client_id"])
        return Access(org=org, perms=self.perms, actor=actor)


class AgentTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <capability token>` issued for this org's API audience.

    Verified by the one path every token goes through (agents.tokens.token_verify), including the
    revocation check; a token of another org, audience or run that has ended is refused.
    """

    def authenticate(self, request):
        scheme, _, raw = get_authorization_header(request).decode("latin-1").partition(" ")
        raw = raw.strip()
        if scheme.lower() != "bearer" or raw.count(".") != 2:
            return None  # not a JWT: an API key, or nothing
        try:
            # Verified against the audience of the org it names; the guard then answers 404 when
            # that is not the org in the URL (another org's resources are never "forbidden").
            claimed_org = jwt.decode(raw, options={"verify_signature": False}).get("org", "")
            claims = token_verify(raw, org_slug=claimed_org, audience=api_audience(claimed_org))
        except (jwt.PyJWTError, TokenInvalid, RevocationUnavailable, AttributeError):
            raise AuthenticationFailed("Invalid token.")
        return AgentPrincipal(claims), claims

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'
