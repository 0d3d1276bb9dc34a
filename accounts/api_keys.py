"""Effects on org API keys: minting, revoking, and revoking a person's keys when they leave.

Authorization (a key never holds more than the member minting it) is rbac.policies'.
"""

from django.db import transaction
from django.utils import timezone

from accounts.models import ApiKey
from audit.actors import Actor
from audit.events import AuditEvent
from audit.services import Target, audit_record, records_denials
from core.errors import Invalid


def expiry_check(expires_at) -> None:
    if expires_at is not None and expires_at <= timezone.now():
        raise Invalid("The expiry must be in the future.",
                      fields={"expires_at": ["The expiry must be in the future."]})


@records_denials
@transaction.atomic
def api_key_mint(*, org, name: str, perms, actor: Actor, created_by=None,
                 expires_at=None) -> tuple[ApiKey, str]:
    """A new key holding exactly `perms` (catalogue members). Returns it and its secret, which is
    shown once and stored nowhere."""
    if not perms:
        raise Invalid("Choose at least one permission.",
                      fields={"permissions": ["Choose at least one permission."]})
    expiry_check(expires_at)
    fields, secret = ApiKey.mint()
    key = ApiKey.objects.create(org=org, name=name, permissions=[p.value for p in sorted(perms)],
                                created_by=created_by, expires_at=expires_at, **fields)
    audit_record(org=org, actor=actor, event=AuditEvent.API_KEY_CREATED, target=Target.of(key),
                 data={"name": name, "permissions": key.permissions, "expires_at": expires_at})
    return key, secret


@transaction.atomic
def api_key_revoke(*, key: ApiKey, actor: Actor) -> ApiKey:
    """Revoke the key: it stops working on its next request. Revoking a revoked key changes nothing."""
    key = ApiKey.objects.for_org(key.org_id).select_for_update().get(pk=key.pk)
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit_record(org=key.org, actor=actor, event=AuditEvent.API_KEY_REVOKED, target=Target.of(key),
                     data={"name": key.name})
    return key


@transaction.atomic
def api_keys_revoke_created_by(*, org, user, actor: Actor) -> int:
    """Revoke every live key `user` made in `org`: they hold power the person no longer has."""
    keys = list(ApiKey.objects.for_org(org).select_for_update()
                .filter(created_by=user, revoked_at__isnull=True).order_by("pk"))
    for key in keys:
        api_key_revoke(key=key, actor=actor)
    return len(keys)


def api_keys_on_departure(*, membership, actor: Actor) -> dict[str, int]:
    """A member leaves: the keys they made here die with their membership (accounts.departures)."""
    return {"api_keys_revoked": api_keys_revoke_created_by(org=membership.org, user=membership.user,
                                                           actor=actor)}
