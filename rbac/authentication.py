"""DRF authentication for org API keys (`Bearer iamk_<lookup>_<secret>`)."""

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from accounts.models import ApiKey
from audit.actors import Actor
from audit.events import AuditEvent, Outcome
from audit.services import Target, audit_record
from core.credentials import CredentialRefused, credential_authenticate
from rbac.access import Access, ServicePrincipal


class ApiKeyPrincipal(ServicePrincipal):
    """An API key's request; the key itself is `request.auth`."""

    def __init__(self, key: ApiKey):
        self.key = key

    def __str__(self) -> str:
        return f"api_key:{self.key.pk}"

    def access_in(self, org_slug: str) -> Access | None:
        """An API key acts only in its own org, with exactly its declared permissions."""
        key = self.key
        if key.org.slug != org_slug:
            return None
        return Access(org=key.org, perms=key.perms, actor=Actor.for_api_key(key), creator_user=key.created_by)


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        header = get_authorization_header(request)
        if not header:
            return None
        scheme, _, raw = header.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or raw.strip().count(".") == 2:
            return None  # not ours: a JWT is an agent token (agents.authentication)
        # The credential names its org; the guard then checks the URL's.
        keys = ApiKey.objects.unscoped().select_related("org", "created_by")
        try:
            key = credential_authenticate(raw.strip(), keys)
        except CredentialRefused as refused:
            if refused.credential is not None:
                key = refused.credential
                audit_record(org=key.org, actor=Actor.for_api_key(key), event=AuditEvent.API_KEY_REJECTED,
                             outcome=Outcome.FAILURE, target=Target.of(key), data={"reason": refused.reason})
            raise AuthenticationFailed("Invalid API key.")
        return ApiKeyPrincipal(key), key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'
