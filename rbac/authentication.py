"""DRF authentication for org API keys (`Authorization: Bearer iamk_<lookup>_<secret>`)."""

from datetime import timedelta

from django.utils import timezone
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from accounts.models import ApiKey
from accounts.secrets import credential_parse, secret_matches
from audit.actors import Actor
from audit.events import AuditEvent, Outcome
from audit.services import Target, audit_record

LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiKeyPrincipal:
    """`request.user` for a request made with an API key; the key itself is `request.auth`."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    pk = None

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
        if scheme.lower() != "bearer":
            return None
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
