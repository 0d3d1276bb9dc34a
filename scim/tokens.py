"""SCIM bearer tokens: issue (shown once), revoke (optionally after a grace period), authenticate.

A token is `scim_<lookup id>_<secret>` (core.secrets): the lookup id finds one row, the secret is
compared in constant time against its keyed hash, and the row alone decides the org. Several tokens
may be live at once, so an IdP can be moved to a new token before the old one is revoked.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.actors import Actor
from audit.events import AuditEvent, Outcome
from audit.services import Target, audit_record, records_denials
from core.credentials import (
    CredentialRefused,
    credential_authenticate,
    credential_live_q,
    credential_presented,
)
from core.errors import Invalid
from core.permissions import ALL_PERMS
from core.secrets import credential_mint
from rbac.access import Access
from rbac.authorization import assert_can_grant
from rbac.selectors import creator_permissions, with_creator_role
from scim.models import ScimToken

MAX_GRACE_SECONDS = 7 * 24 * 3600


def actor_for(token: ScimToken) -> Actor:
    return Actor("scim", str(token.pk), token.name)


@records_denials
@transaction.atomic
def scim_token_create(*, access: Access, name: str) -> tuple[ScimToken, str]:
    """Mint a SCIM token for the org. Returns it with its secret, which is never available again."""
    name = (name or "").strip()
    if not name:
        raise Invalid("Name the token.", fields={"name": ["Name the token (for example the IdP)."]})
    # A SCIM token can create, change and deprovision every member and fill the groups that map to
    # roles: only someone who holds every permission (an owner) may issue one.
    assert_can_grant(access, ALL_PERMS, reason="scim_token_create")
    minted = credential_mint(ScimToken.PREFIX)
    token = ScimToken.objects.create(org=access.org, name=name[:100], lookup_id=minted.lookup_id,
                                     secret_hash=minted.secret_hash, hash_kid=minted.hash_kid,
                                     created_by=access.creator_user)
    audit_record(org=access.org, actor=access.actor, event=AuditEvent.SCIM_TOKEN_CREATED,
                 target=Target.of(token), data={"name": token.name})
    return token, minted.display


@records_denials
@transaction.atomic
def scim_token_revoke(*, access: Access, token: ScimToken, grace_seconds: int = 0) -> ScimToken:
    """End a token now, or after `grace_seconds` (at most a week) while the IdP moves to a new one."""
    if not 0 <= grace_seconds <= MAX_GRACE_SECONDS:
        raise Invalid("The grace period is 0 to 604800 seconds.",
                      fields={"grace_seconds": ["Use 0 to 604800 seconds."]})
    token = ScimToken.objects.for_org(access.org).select_for_update().get(pk=token.pk)
    if not token.is_live():
        return token
    now = timezone.now()
    if grace_seconds:
        ends = now + timedelta(seconds=grace_seconds)
        # A grace period can only shorten a token's life, never extend one already running out.
        token.expires_at = min(ends, token.expires_at) if token.expires_at else ends
    else:
        token.revoked_at = now
    token.save(update_fields=["expires_at", "revoked_at"])
    audit_record(org=access.org, actor=access.actor, event=AuditEvent.SCIM_TOKEN_REVOKED,
                 target=Target.of(token), data={"name": token.name, "grace_seconds": grace_seconds})
    return token


def scim_token_presented_id(raw: str) -> str | None:
    """The lookup id of a token-shaped credential (nothing is looked up); None for anything else."""
    presented = credential_presented(raw, ScimToken.PREFIX)
    return presented.lookup_id if presented else None


def scim_token_authenticate(raw: str, *, audit_refusal: bool = True) -> ScimToken | None:
    """The live token these credentials are, with its org; None otherwise (the caller answers 401).

    A known token presented with a wrong secret, or after it ended, is audited in its org, unless
    the caller has already refused the guesser (`audit_refusal=False`): a token's lookup id is no
    secret, and guesses at it must not fill its org's log. A token whose creator can no longer mint
    one (suspended, removed, demoted) dies here, audited.
    """
    try:
        # The credential names its org.
        tokens = with_creator_role(ScimToken.objects.unscoped().select_related("org", "created_by"))
        token = credential_authenticate(raw, tokens)
    except CredentialRefused as refused:
        if refused.credential is not None and audit_refusal:
            _reject(refused.credential, refused.reason)
        return None
    if not creator_may_mint(token):
        scim_token_end_orphaned(token=token, reason="creator_lost_power")
        _reject(token, "creator_lost_power")
        return None
    return token


def creator_may_mint(token: ScimToken) -> bool:
    """Whether the person who minted the token could mint it now (an acting member holding every
    permission, as scim_token_create asks). `token` read through rbac.selectors.with_creator_role:
    no query for an owner's token, one otherwise."""
    held = creator_permissions(token)
    return held is not None and ALL_PERMS <= held


@transaction.atomic
def scim_token_end_orphaned(*, token: ScimToken, reason: str, actor: Actor | None = None) -> bool:
    """Revoke a token nobody who could mint it stands behind any more. True if it was live."""
    token = ScimToken.objects.for_org(token.org_id).select_for_update().get(pk=token.pk)
    if token.revoked_at is not None:
        return False
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    audit_record(org=token.org, actor=actor or Actor.system("credential_lifecycle"),
                 event=AuditEvent.SCIM_TOKEN_REVOKED, target=Target.of(token),
                 data={"name": token.name, "grace_seconds": 0, "reason": reason})
    return True


def scim_tokens_on_departure(*, membership, actor: Actor) -> dict[str, int]:
    """A member leaves (accounts.departures): the SCIM tokens they minted here die."""
    tokens = (ScimToken.objects.for_org(membership.org_id)
              .filter(created_by_id=membership.user_id, revoked_at__isnull=True).order_by("pk"))
    ended = sum(scim_token_end_orphaned(token=t, reason="creator_departed", actor=actor) for t in tokens)
    return {"scim_tokens_revoked": ended}


def _reject(token: ScimToken, reason: str) -> None:
    audit_record(org=token.org, actor=actor_for(token), event=AuditEvent.SCIM_AUTH_FAILED,
                 outcome=Outcome.FAILURE, target=Target.of(token), data={"reason": reason})


def request_limit() -> int:
    return settings.IAM_SCIM_RATE_LIMIT


def scim_provisions(org) -> bool:
    """Whether the org's IdP provisions its members over SCIM: a token that still works exists."""
    now = timezone.now()
    return ScimToken.objects.for_org(org).filter(credential_live_q(now)).exists()
