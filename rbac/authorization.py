"""The rules of who may change whom: the checks every policy wrapper makes before an effect runs.

No escalation: nobody creates, edits or grants a role, mints a credential or maps a group carrying a
permission they do not hold themselves, and nobody changes a principal who holds permissions they
lack. Team standing: team admins manage their team's members, only team owners make owners, and
nobody raises their own standing. Each refusal is a ServiceError whose audit entry is written after
the caller's transaction has rolled back (audit.services.records_denials).
"""

from audit.events import AuditEvent
from audit.services import Target, cross_tenant
from core.errors import DenialAudit, Forbidden
from core.permissions import Perm
from core.roles import TeamRole
from core.tenancy import assert_same_org
from rbac.access import Access
from rbac.guard import membership_standing_permissions


def assert_in_org(access: Access, *objects) -> None:
    """Every object the caller names belongs to the caller's org: another org's is a 404, as an
    unknown id is, and the attempt is on record."""
    assert_same_org(access.org, *objects, audit=cross_tenant(access.org, access.actor))


def assert_can_grant(access: Access, perms, *, target=None, reason: str = "grant") -> None:
    missing = frozenset(perms) - access.perms
    if missing:
        raise Forbidden(
            "You cannot grant permissions you do not hold yourself.",
            code="escalation_denied",
            audit=DenialAudit(
                org=access.org, actor=access.actor, event=AuditEvent.ESCALATION_DENIED,
                target=target, data={"reason": reason, "missing": sorted(missing)},
            ),
        )


def assert_can_manage_member(access: Access, membership, *, reason: str = "manage") -> None:
    """Changing a member needs every permission the member holds or, while suspended or
    deprovisioned, would hold (a Member cannot demote, reinstate or remove an Owner)."""
    assert_can_grant(
        access, membership_standing_permissions(membership), target=Target.of(membership), reason=reason
    )


def may_manage_member(access: Access, membership) -> bool:
    return membership_standing_permissions(membership) <= access.perms


def roles_perms(roles) -> frozenset[Perm]:
    perms: set[Perm] = set()
    for role in roles:
        perms |= role.perms
    return frozenset(perms)


def assert_can_manage_team(access: Access, team) -> None:
    if not access.can_manage_team(team.pk):
        raise Forbidden(
            "You cannot manage this team.",
            audit=DenialAudit(org=access.org, actor=access.actor,
                              event=AuditEvent.PERMISSION_DENIED, target=Target.of(team),
                              data={"reason": "team_manage", "required": Perm.TEAM_WRITE.value}),
        )


def may_give_team_role(access: Access, team, role: str, membership=None) -> bool:
    """TEAM_WRITE gives any standing. Otherwise team admins manage members, only team owners make
    owners, and nobody raises their own standing (`membership`: whose standing is being set)."""
    if Perm.TEAM_WRITE in access.perms:
        return True
    mine = access.team_roles.get(team.pk)
    own = membership is not None and access.membership is not None and membership.pk == access.membership.pk
    if own or mine not in (TeamRole.ADMIN, TeamRole.OWNER):
        return False
    return role != TeamRole.OWNER or mine == TeamRole.OWNER


def assert_can_give_team_role(access: Access, team, role: str, membership=None, *,
                              reason: str = "team_role") -> None:
    if not may_give_team_role(access, team, role, membership):
        raise Forbidden(
            "You cannot give this team role.",
            code="escalation_denied",
            audit=DenialAudit(org=access.org, actor=access.actor,
                              event=AuditEvent.ESCALATION_DENIED, target=Target.of(team),
                              data={"reason": reason, "missing": [role]}),
        )


def may_act_as_team_owner(access: Access, team) -> bool:
    """TEAM_WRITE org-wide, or owner standing in that one team."""
    return Perm.TEAM_WRITE in access.perms or access.team_roles.get(team.pk) == TeamRole.OWNER


def assert_team_owner_power(access: Access, team, *, reason: str, standing=None) -> None:
    """Only owners unmake owners: deleting a team, or demoting or removing one of its owners, is
    refused to a team admin (`standing`: whose standing changes, when it is one)."""
    if standing is not None and standing.role != TeamRole.OWNER:
        return
    if not may_act_as_team_owner(access, team):
        raise Forbidden(
            "Only a team owner can do this.", code="escalation_denied",
            audit=DenialAudit(org=access.org, actor=access.actor, event=AuditEvent.ESCALATION_DENIED,
                              target=Target.of(team),
                              data={"reason": reason, "missing": [TeamRole.OWNER.value]}),
        )
