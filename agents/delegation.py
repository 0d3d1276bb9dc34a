"""Delegations: a person's approval that an agent acts for them, and what it may carry now.

A delegation is created when a person approves a device authorization (agents.device). It
bounds every token issued under it, and each issuance (the device code's, every refresh, every
exchange of a token descended from it) re-reads its standing in one statement: the delegation row,
the person's membership and account, and their permissions of the moment from rbac's one
definition of role grants. So the scope a token gets is at most

    the person's permissions now ∩ the agent's grant ∩ its owners' power ∩ the connection's scopes
    ∩ what the person approved,

and a person who loses a permission narrows every delegation at the next issuance. Revoking a
delegation (the person, the agent's owners, admins; the person leaving, being suspended or
deprovisioned, or, as the org's policy says, ending their last session) writes one cutoff that
kills every token carrying its id at the next verification, and ends its refresh tokens.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.core.cache import cache
from django.db import connection, models, transaction
from django.utils import timezone

from accounts.models import ACTING_STATUSES, UserSession
from agents import revocation
from agents.grants import delegable_scopes
from agents.models import Delegation, DelegationStatus, DeviceAuthorization, RefreshToken
from agents.selectors import _STATUSES, _db_time, _db_uuid, _from_db_time, _json, _uuid
from audit.actors import Actor
from audit.events import AuditEvent
from audit.services import Target, audit_record
from core.credentials import credential_presented
from core.secrets import secret_matches
from rbac.selectors import ROLE_GRANTS_SQL, permissions_of

logger = logging.getLogger(__name__)

# One statement: the delegation, whether its person can act in its org now (membership and
# account), whether they have a live session (for orgs whose policy ends delegations with it), and
# their role-derived permissions (one row per granted role; rbac's definition).
_STANDING_SQL = """
        SELECT d.status, d.expires_at, d.scopes, d.audience, d.agent_id, d.user_id, d.org_id,
               CASE WHEN m.status IN """ + _STATUSES + """ AND u.is_active THEN 1 ELSE 0 END,
               m.role, COALESCE(p.delegations_end_with_session, %s),
               CASE WHEN EXISTS (SELECT 1 FROM accounts_usersession us
                                  WHERE us.user_id = d.user_id AND us.expire_date > %s) THEN 1 ELSE 0 END,
               r.permissions
          FROM agents_delegation d
          LEFT JOIN accounts_membership m ON m.id = d.membership_id AND m.org_id = d.org_id
          LEFT JOIN accounts_user u ON u.id = m.user_id
          LEFT JOIN agents_agentpolicy p ON p.org_id = d.org_id
          LEFT JOIN (""" + ROLE_GRANTS_SQL + """) r ON r.membership_id = m.id
         WHERE d.id = %s AND d.org_id = %s
"""  # noqa: S608 (constants only)


@dataclass(frozen=True)
class Standing:
    """A delegation as an issuance sees it now."""

    delegation_id: uuid.UUID
    agent_id: uuid.UUID
    user_id: uuid.UUID | None
    audience: str
    approved: frozenset  # the scopes the person approved
    person_perms: frozenset  # the person's permissions now (empty while they cannot act)
    expires_at: object
    refusal: str | None  # why nothing may be issued under it now, or None

    @property
    def subject(self) -> str:
        return f"user:{self.user_id}"

    def scopes_for(self, agent_scopes, connection_scopes, owners: list) -> set:
        """What a token under this delegation may carry now (see the module's docstring)."""
        offered = set(self.approved) & set(agent_scopes) & set(connection_scopes)
        return delegable_scopes(offered, owners) & delegable_scopes(offered, [self.person_perms])


def delegation_standing(delegation_id, org_id, now=None) -> Standing | None:
    """The delegation's standing now, or None when it is not one of this org's. One query."""
    now = now or timezone.now()
    try:
        pk = uuid.UUID(str(delegation_id))
    except ValueError:
        return None
    params = [*[str(s) for s in ACTING_STATUSES], False, _db_time(now), _db_uuid(pk), _db_uuid(org_id)]
    with connection.cursor() as cursor:
        cursor.execute(_STANDING_SQL, params)
        rows = cursor.fetchall()
    if not rows:
        return None
    status, expires_at, scopes, audience, agent_id, user_id, _org, acting, role, bound, session, _ = rows[0]
    expires_at = _from_db_time(expires_at)
    perms = permissions_of(role, [r[-1] for r in rows if r[-1] is not None]) if acting else frozenset()
    refusal = None
    if status != DelegationStatus.ACTIVE:
        refusal = "delegation_revoked"
    elif expires_at <= now:
        refusal = "delegation_expired"
    elif not acting:
        refusal = "person_inactive"
    elif bound and not session:
        refusal = "person_signed_out"
    return Standing(
        pk,
        _uuid(agent_id),
        _uuid(user_id) if user_id else None,
        audience,
        frozenset(_json(scopes)),
        perms,
        expires_at,
        refusal,
    )


def delegation_registered(delegation: Delegation) -> None:
    """Tell the fast store a new delegation holds no cutoff, so its tokens' first verifications
    need no query (a lost key is read back from the database, as for every cutoff)."""
    try:
        cache.add(f"rv:dlg:{delegation.pk}", revocation.NO_CUTOFF, revocation.NEGATIVE_TTL)
    except Exception:  # only a cache fill; the first verification reads the database instead
        logger.warning("could not write a new delegation's revocation key", exc_info=True)


@transaction.atomic
def delegation_create(
    *,
    agent,
    membership,
    audience: str,
    scopes,
    lifetime_seconds: int,
    actor: Actor,
    device_authorization=None,
) -> Delegation:
    """Record a person's approval (the caller has bounded the scopes and the lifetime)."""
    now = timezone.now()
    delegation = Delegation.objects.create(
        org_id=agent.org_id,
        agent=agent,
        user_id=membership.user_id,
        membership=membership,
        person_email=membership.user.email,
        audience=audience,
        scopes=sorted(scopes),
        created_at=now,
        expires_at=now + timedelta(seconds=lifetime_seconds),
    )
    audit_record(
        org=agent.org,
        actor=actor,
        event=AuditEvent.DELEGATION_GRANTED,
        target=Target.of(delegation),
        data={
            "agent": str(agent.pk),
            "person": str(membership.user_id),
            "audience": audience,
            "scopes": sorted(scopes),
            "expires_at": delegation.expires_at.isoformat(),
            "device_authorization": str(device_authorization.pk) if device_authorization else None,
        },
    )
    transaction.on_commit(lambda: delegation_registered(delegation))
    return delegation


@transaction.atomic
def delegation_revoke(*, delegation: Delegation, actor: Actor, reason: str) -> bool:
    """End a delegation: every token issued under it dies at its next verification (one cutoff),
    its refresh tokens end, and nothing more is issued under it. False if it had already ended."""
    delegation = Delegation.objects.for_org(delegation.org_id).select_for_update().get(pk=delegation.pk)
    if delegation.status != DelegationStatus.ACTIVE:
        return False
    now = timezone.now()
    delegation.status, delegation.revoked_at, delegation.revoked_reason = (
        DelegationStatus.REVOKED,
        now,
        reason,
    )
    delegation.save(update_fields=["status", "revoked_at", "revoked_reason"])
    ended = (
        RefreshToken.objects.for_org(delegation.org_id)
        .filter(delegation=delegation, revoked_at__isnull=True)
        .update(revoked_at=now)
    )
    revocation.cut_off("dlg", str(delegation.pk))
    audit_record(
        org=delegation.org,
        actor=actor,
        event=AuditEvent.DELEGATION_REVOKED,
        target=Target.of(delegation),
        data={
            "agent": str(delegation.agent_id),
            "person": str(delegation.user_id) if delegation.user_id else None,
            "reason": reason,
            "refresh_tokens": ended,
        },
    )
    return True


def live_delegations(queryset, now=None):
    return queryset.filter(status=DelegationStatus.ACTIVE, expires_at__gt=now or timezone.now())


@transaction.atomic
def delegations_end_for_member(*, membership, actor: Actor, reason: str) -> int:
    """Revoke every live delegation a member granted in their org (they leave, are suspended or
    deprovisioned). Returns how many ended."""
    ended = 0
    for delegation in live_delegations(
        Delegation.objects.for_org(membership.org_id).filter(membership=membership)
    ).order_by("created_at"):
        ended += delegation_revoke(delegation=delegation, actor=actor, reason=reason)
    return ended


def delegations_on_departure(*, membership, actor: Actor) -> dict[str, int]:
    """The departure handler (accounts.departures) for delegations."""
    return {
        "delegations_revoked": delegations_end_for_member(
            membership=membership, actor=actor, reason="person_departed"
        )
    }


def delegations_on_standing_lost(*, membership, actor: Actor, reason: str) -> dict[str, int]:
    """The handler for a member who stops acting (suspended, deprovisioned by the directory)."""
    return {
        "delegations_revoked": delegations_end_for_member(membership=membership, actor=actor, reason=reason)
    }


@transaction.atomic
def delegations_end_with_sessions(*, user_id) -> int:
    """The person's last session ended: in every org whose policy says so, their delegations end."""
    now = timezone.now()
    bound = list(
        live_delegations(Delegation.objects.unscoped(), now)  # the person's, in every org
        .filter(user_id=user_id, org__agent_policy__delegations_end_with_session=True)
        .select_related("org")
        .order_by("created_at")
    )
    if not bound or UserSession.objects.filter(user_id=user_id, expire_date__gt=now).exists():
        return 0
    ended = 0
    for delegation in bound:
        ended += delegation_revoke(
            delegation=delegation, actor=Actor.system("sessions ended"), reason="person_signed_out"
        )
    return ended


@transaction.atomic
def delegations_on_account_recovered(*, user, actor: Actor) -> dict[str, int]:
    """A password reset: every live delegation the person granted, in every org, ends."""
    ended = 0
    for delegation in live_delegations(Delegation.objects.unscoped()  # the person's, in every org
                                       .filter(user_id=user.pk)).select_related("org").order_by("created_at"):
        ended += delegation_revoke(delegation=delegation, actor=actor, reason="password_reset")
    return {"delegations_revoked": ended}


def session_ended(sender, instance, **kwargs) -> None:
    """A session row went (post_delete): once that commits, end the person's delegations in the
    orgs whose policy binds them to a live session, if it was their last. A session that merely
    expires has no row deleted; issuance refuses then by the session's timestamp instead
    (`delegation_standing`: `person_signed_out`)."""
    user_id = instance.user_id
    if user_id is None:
        return
    transaction.on_commit(lambda: delegations_end_with_sessions(user_id=user_id))


# Refresh tokens --------------------------------------------------------------------------------


def refresh_mint(*, delegation_id, agent_id, org_id, user_id, expires_at) -> str:
    """A new refresh token of the delegation's family (shown once, stored as its keyed hash)."""
    fields, display = RefreshToken.mint()
    RefreshToken.objects.create(
        org_id=org_id,
        delegation_id=delegation_id,
        agent_id=agent_id,
        created_by_id=user_id,
        expires_at=expires_at,
        **fields,
    )
    return display


def refresh_find(presented) -> RefreshToken | None:
    """The refresh token row a presented token names, if its secret matches (any org, any agent:
    the caller checks they are the authenticated agent's)."""
    row = (
        RefreshToken.objects.unscoped()  # the token names its row; the caller checks org and agent
        .select_related("delegation")
        .filter(lookup_id=presented.lookup_id)
        .first()
    )
    if row is None or not secret_matches(presented.secret, row.secret_hash, row.hash_kid):
        return None
    return row


def refresh_take(row: RefreshToken) -> bool:
    """Spend the token: one conditional UPDATE, so of two uses of one token exactly one wins, and
    none once the token or its delegation has been revoked meanwhile."""
    now = timezone.now()
    # The token's own conditions must sit in the UPDATE's WHERE, not in a joined subquery: a filter
    # across the relation makes Django write `WHERE id IN (SELECT ... JOIN ...)`, whose rows come from
    # the statement's snapshot, so PostgreSQL's re-check after a concurrent winner commits would still
    # see the token unspent and both uses would win. The delegation's status goes in as a subquery on
    # its own table, which keeps the UPDATE on one table.
    active = Delegation.objects.for_org(row.org_id).filter(status=DelegationStatus.ACTIVE).values("pk")
    return bool(
        RefreshToken.objects.for_org(row.org_id)
        .filter(pk=row.pk, spent_at__isnull=True, revoked_at__isnull=True, delegation_id__in=active)
        .update(spent_at=now, last_used_at=now)
    )


def refresh_spent(row: RefreshToken) -> bool:
    return RefreshToken.objects.for_org(row.org_id).filter(pk=row.pk, spent_at__isnull=False).exists()


def delegation_of(org_id, delegation_id) -> Delegation | None:
    return Delegation.objects.for_org(org_id).filter(pk=delegation_id).select_related("org").first()


def refresh_token_revoke(*, agent, raw: str) -> bool:
    """RFC 7009 for a refresh token: the agent gives up the delegation it belongs to, which ends the
    whole family and every access token under it (§2.1). Another agent's token, or anything that
    is not one of ours, changes nothing (the endpoint answers 200 either way)."""
    presented = credential_presented(raw or "", RefreshToken.PREFIX)
    row = presented and refresh_find(presented)
    if not row or row.agent_id != agent.pk or row.org_id != agent.org.pk:
        return False
    return delegation_revoke(delegation=row.delegation, actor=Actor.for_agent(agent),
                             reason="refresh_token_revoked")


KEPT_AFTER_END = timedelta(days=1)


def delegation_records_prune(*, now=None) -> int:
    """Delete device requests and refresh tokens that can no longer do anything: expired, spent or
    revoked more than a day ago (a system job over every org). Nothing depends on it running: each
    is refused by its own timestamps. Delegations themselves are kept: they are the record of who
    let which agent act for them."""
    now = now or timezone.now()
    cutoff = now - KEPT_AFTER_END
    lapsed = (DeviceAuthorization.objects.unscoped()  # a system job over every org
              .filter(status="approved", expires_at__lte=now, delegation__status=DelegationStatus.ACTIVE)
              .select_related("delegation__org"))
    for authorization in lapsed:  # approved, never claimed: the approval ends with its code
        delegation_revoke(delegation=authorization.delegation, actor=Actor.system("device authorization"),
                          reason="device_code_expired")
    devices, _ = DeviceAuthorization.objects.unscoped().filter(expires_at__lte=cutoff).delete()  # every org
    tokens, _ = (RefreshToken.objects.unscoped()  # a system job over every org
                 .filter(models.Q(expires_at__lte=cutoff) | models.Q(spent_at__lte=cutoff)
                         | models.Q(revoked_at__lte=cutoff)).delete())
    return devices + tokens
