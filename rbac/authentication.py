"""DRF authentication for org API keys (`Bearer iamk_<lookup>_<secret>`) and agents' capability tokens."""

from dataclasses import dataclass
from datetime import timedelta

import jwt
from django.conf import settings
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from accounts.models import ApiKey
from agents.revocation import RevocationUnavailable
from agents.tokens import TokenInvalid, token_verify
from audit.actors import Actor
from audit.events import AuditEvent, Outcome
from audit.services import Target, audit_record
from core.permissions import perms_from_strings
from core.secrets import credential_parse, secret_matches

LAST_USED_RESOLUTION = timedelta(minutes=1)


class _ServicePrincipal:
    """`request.user` for a non-human caller: authenticated, but never a User row."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    pk = None


class ApiKeyPrincipal(_ServicePrincipal):
    """An API key's request; the key itself is `request.auth`."""

    def __init__(self, key: ApiKey):
        self.key = key

    def __str__(self) -> str:
        return f"api_key:{self.key.pk}"


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        header = get_authorization_header(request)
        if not header:
            return None
        scheme, _, raw = header.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or raw.strip().count(".") == 2:
            return None  # not ours: a JWT is an agent token (AgentTokenAuthentication)
        parsed = credential_parse(raw.strip(), ApiKey.PREFIX)
        if parsed is None:
            raise AuthenticationFailed("Invalid API key.")
        lookup_id, secret = parsed
        key = (
            ApiKey.objects.unscoped()  # the credential names its org; the guard checks the URL's
            .select_related("org", "created_by")
            .filter(lookup_id=lookup_id)
            .first()
        )
        if key is None:
            raise AuthenticationFailed("Invalid API key.")
        if not secret_matches(secret, key.secret_hash, key.hash_kid):
            self._reject(key, "bad_secret")
        now = timezone.now()
        if not key.is_usable(now):
            self._reject(key, "revoked" if key.revoked_at else "expired")
        self._touch(key, now)
        return ApiKeyPrincipal(key), key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'

    @staticmethod
    def _reject(key: ApiKey, reason: str):
        audit_record(org=key.org, actor=Actor.for_api_key(key), event=AuditEvent.API_KEY_REJECTED,
                     outcome=Outcome.FAILURE, target=Target.of(key), data={"reason": reason})
        raise AuthenticationFailed("Invalid API key.")

    @staticmethod
    def _touch(key: ApiKey, now) -> None:
        # At most one write a minute per key, so busy keys do not write on every request.
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.objects.unscoped().filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now


def api_audience(org_slug: str) -> str:
    """The audience an agent's token must carry to call this org's admin API."""
    return f"{settings.IAM_CANONICAL_ORIGIN.rstrip('/')}/api/v1/orgs/{org_slug}/"


@dataclass(frozen=True)
class AgentToken:
    """`request.auth` for a request made with an agent's capability token (its verified claims)."""

    claims: dict

    @property
    def perms(self) -> frozenset:
        # Only scopes that name catalogue permissions act on this API; the owners' right to hand
        # them out was checked when the token was issued.
        return perms_from_strings(self.claims["scope"].split())


class AgentPrincipal(_ServicePrincipal):
    """An agent's request; its verified token is `request.auth`."""

    def __init__(self, claims: dict):
        self.claims = claims

    def __str__(self) -> str:
        return self.claims["sub"]


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
        return AgentPrincipal(claims), AgentToken(claims)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'
