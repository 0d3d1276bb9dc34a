"""What the directory switching a person off (or on again) does to their access in this org.

Deprovisioning ends the membership here (never in another org), takes back every mapped grant, ends
the person's sessions when this was the last org they could act in, ends every credential they made
or hold here (accounts.departures: API keys, agents' secrets by the org's policy, SCIM tokens), and
switches the account off when no acting membership remains. Each step is an effect service of the
app that owns it, with the SCIM actor; the whole is recorded as one `member.deprovisioned` entry
naming every consequence.
"""

from dataclasses import dataclass

from django.db import transaction

from accounts import services as accounts
from accounts.departures import member_departed
from accounts.models import MembershipStatus
from audit.actors import Actor
from audit.events import AuditEvent
from audit.services import AuditAs, Target, audit_record, records_denials
from scim.mappings import lock, reconcile
from scim.models import ScimUser

DEPROVISION_HOWS = ("deactivated", "deleted")


@dataclass(frozen=True)
class DeprovisionResult:
    sessions_revoked: int
    api_keys_revoked: int
    agents_reassigned: int
    agents_suspended: int
    account_deactivated: bool
    scim_tokens_revoked: int = 0


@records_denials
@transaction.atomic
def deprovision(*, scim_user: ScimUser, actor: Actor, how: str) -> DeprovisionResult:
    """End the user's access to this org (how: "deactivated" | "deleted").

    Raises Conflict (code "last_owner") when the member is the org's only acting owner; its denial
    audit is written after the rollback by the outermost `records_denials`, or by whoever catches it
    outside the transaction (a caller inside a transaction of its own rolls this entry back too).
    """
    if how not in DEPROVISION_HOWS:
        raise ValueError(f"how must be one of {DEPROVISION_HOWS}")
    membership = lock(scim_user)
    org, user = membership.org, membership.user
    pending = membership.status == MembershipStatus.INVITED
    summary = AuditAs(within=AuditEvent.DEPROVISIONED)
    newly = accounts.membership_directory_deactivate(membership=membership, actor=actor, audit_as=summary)
    _active_set(scim_user, False)
    reconcile(scim_user, actor)  # no longer acting: every mapped grant is taken back
    if pending:
        # The person never accepted: this org has no say over their account, sessions or the
        # credentials they hold elsewhere. The directory's decision stays on the invitation.
        return DeprovisionResult(0, 0, 0, 0, False)
    # Sessions belong to the person, not the org, and the guard refuses this membership on every
    # request anyway. So they end only when the person can act in no org any more: otherwise one
    # org's directory, by toggling `active`, could log someone out of another org again and again.
    elsewhere = accounts.acting_elsewhere(membership)
    sessions = 0 if elsewhere else accounts.sessions_revoke(user=user, reason="deprovisioned", actor=actor)
    # Every credential the person made or holds here (API keys, agents' secrets, SCIM tokens).
    gone = member_departed(membership=membership, actor=actor)
    deactivated = not elsewhere and accounts.user_deactivate(user=user)
    result = DeprovisionResult(sessions, gone["api_keys_revoked"], gone["agents_reassigned"],
                               gone["agents_suspended"], deactivated, gone["scim_tokens_revoked"])
    if newly or sessions or deactivated or any(gone.values()):
        audit_record(org=org, actor=actor, event=AuditEvent.DEPROVISIONED, target=Target.of(membership),
                     data={"member": str(membership.pk), "how": how, "sessions_revoked": sessions,
                           **gone, "account_deactivated": deactivated})
    return result


def _active_set(scim_user: ScimUser, active: bool) -> bool:
    """The SCIM `active` flag, written by itself (the caller's other unsaved changes stay theirs)."""
    scim_user.active = active
    return ScimUser.objects.for_org(scim_user.org_id).filter(pk=scim_user.pk).exclude(
        active=active).update(active=active) > 0


@transaction.atomic
def reactivate(*, scim_user: ScimUser, actor: Actor) -> None:
    """Give a deactivated user their membership back (base role, then mapped grants).

    Only a deprovisioned membership is reactivated: a suspension an admin made stays until an admin
    lifts it. Agents and API keys taken away on deprovisioning are not given back.
    """
    membership = lock(scim_user)
    summary = AuditAs(within=AuditEvent.SCIM_USER_REACTIVATED)
    changed = accounts.membership_directory_reactivate(membership=membership, actor=actor, audit_as=summary)
    if scim_user.active is False:  # unassigned (None) already counts as active: leave it unassigned
        changed = _active_set(scim_user, True) or changed
    if changed:
        audit_record(org=membership.org, actor=actor, event=AuditEvent.SCIM_USER_REACTIVATED,
                     target=Target.of(membership), data={"user_name": scim_user.user_name})
    reconcile(scim_user, actor)
