"""DRF authentication for org API keys (`Bearer iamk_<lookup>_<secret>`).

A key never out-ranks or outlives the person who made it: what it may do is its declared
permissions intersected with its creator's effective permissions in the org at this moment, and
it stops working while its creator cannot act there (suspended, switched off, no longer a member).
"""

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from accounts.models import ApiKey
from audit.actors import Actor
from audit.events import AuditEvent, Outcome
from audit.services import Target, audit_record
from core.credentials import CredentialRefused, credential_authenticate
from rbac.access import Access, ServicePrincipal
from rbac.selectors import creator_permissions, with_creator_role


class ApiKeyPrincipal(ServicePrincipal):
    """An API key's request; the key itself is `request.auth`."""

    def __init__(self, key: ApiKey, perms: frozenset):
        self.key, self.perms = key, perms

    def __str__(self) -> str:
        return f"api_key:{self.key.pk}"

    def access_in(self, org_slug: str) -> Access | None:
        """An API key acts only in its own org, with at most its declared permissions."""
        key = self.key
        if key.org.slug != org_slug:
            return None
        return Access(org=key.org, perms=self.perms, actor=Actor.for_api_key(key),
                      creator_user=key.created_by)


def api_key_effective_perms(key: ApiKey) -> frozenset | None:
    """The key's declared permissions within its creator's current ones, or None when nobody who can
    act in the org stands behind it (`key` read through rbac.selectors.with_creator_role)."""
    held = creator_permissions(key)
    return None if held is None else key.perms & held


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        header = get_authorization_header(request)
        if not header:
            return None
        scheme, _, raw = header.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or raw.strip().count(".") == 2:
            return None  # not ours: a JWT is an agent token (agents.authentication)
        # The credential names its org; the guard then checks the URL's.
        keys = with_creator_role(ApiKey.objects.unscoped().select_related("org", "created_by"))
        try:
            key = credential_authenticate(raw.strip(), keys)
        except CredentialRefused as refused:
            if refused.credential is not None:
                _reject(refused.credential, refused.reason)
            raise AuthenticationFailed("Invalid API key.") from None
        perms = api_key_effective_perms(key)
        if perms is None:
            _reject(key, "creator_inactive")
            raise AuthenticationFailed("Invalid API key.")
        return ApiKeyPrincipal(key, perms), key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


def _reject(key: ApiKey, reason: str) -> None:
    audit_record(org=key.org, actor=Actor.for_api_key(key), event=AuditEvent.API_KEY_REJECTED,
                 outcome=Outcome.FAILURE, target=Target.of(key), data={"reason": reason})
