"""Writes to roles and teams, and the two rules that keep RBAC honest.

No escalation: nobody creates, edits or grants a role, or mints an API key, carrying a permission
they do not hold themselves, and nobody changes a principal who holds permissions they lack.
"""

from django.db import transaction

from audit.events import AuditEvent
from audit.services import Target, audit_record, records_denials
from core.errors import Conflict, DenialAudit, Forbidden, Invalid
from core.permissions import Perm
from core.roles import TeamRole
from rbac.access import Access
from rbac.guard import membership_permissions
from rbac.models import Role, RoleAssignment, Team, TeamMembership


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


def assert_can_manage_member(access: Access, membership) -> None:
    """Changing a member needs every permission the member holds (a Member cannot demote an Owner)."""
    assert_can_grant(
        access, membership_permissions(membership), target=Target.of(membership), reason="manage"
    )


def validate_permissions(values) -> list[Perm]:
    known = Perm._value2member_map_
    unknown = [v for v in values if v not in known]
    if unknown:
        raise Invalid(
            "Unknown permissions.", fields={"permissions": [f"Unknown permission: {v}" for v in unknown]}
        )
    return sorted({known[v] for v in values})


def _roles_perms(roles) -> frozenset[Perm]:
    perms: set[Perm] = set()
    for role in roles:
        perms |= role.perms
    return frozenset(perms)


@records_denials
@transaction.atomic
def role_create(*, access: Access, name: str, permissions, description: str = "") -> Role:
    perms = validate_permissions(permissions)
    assert_can_grant(access, perms, reason="role_create")
    if Role.objects.for_org(access.org).filter(name=name).exists():
        raise Conflict("A role with this name already exists.", code="duplicate",
                       fields={"name": ["A role with this name already exists."]})
    role = Role.objects.create(
        org=access.org, name=name, description=description, permissions=[p.value for p in perms]
    )
    audit_record(org=access.org, actor=access.actor, event=AuditEvent.ROLE_CREATED,
                 target=Target.of(role), data={"name": name, "permissions": role.permissions})
    return role


@records_denials
@transaction.atomic
def role_update(*, access: Access, role: Role, name=None, description=None, permissions=None) -> Role:
    # Editing a role that is already more powerful than you would let you hand its power around.
    assert_can_grant(access, role.perms, target=Target.of(role), reason="role_edit")
    previous = list(role.permissions)
    if permissions is not None:
        perms = validate_permissions(permissions)
        assert_can_grant(access, perms, target=Target.of(role), reason="role_edit")
        role.permissions = [p.value for p in perms]
    if name is not None and name != role.name:
        if Role.objects.for_org(access.org).filter(name=name).exclude(pk=role.pk).exists():
            raise Conflict("A role with this name already exists.", code="duplicate",
                           fields={"name": ["A role with this name already exists."]})
        role.name = name
    if description is not None:
        role.description = description
    role.save()
    audit_record(org=access.org, actor=access.actor, event=AuditEvent.ROLE_UPDATED,
                 target=Target.of(role),
                 data={"name": role.name, "permissions": role.permissions,
                       "previous_permissions": previous})
    return role


@records_denials
@transaction.atomic
def role_delete(*, access: Access, role: Role) -> None:
    assert_can_grant(access, role.perms, target=Target.of(role), reason="role_delete")
    target = Target.of(role)
    name = role.name
    role.delete()
    audit_record(org=access.org, actor=access.actor, event=AuditEvent.ROLE_DELETED,
                 target=target, data={"name": name})


@records_denials
@transaction.atomic
def member_custom_roles_set(*, access: Access, membership, roles) -> None:
    """Replace a member's custom roles; every role added or removed must be within the actor's."""
    assert_can_manage_member(access, membership)
    current = set(Role.objects.for_org(access.org).filter(members=membership))
    wanted = set(roles)
    added, removed = wanted - current, current - wanted
    assert_can_grant(access, _roles_perms(added | removed), target=Target.of(membership))
    RoleAssignment.objects.filter(membership=membership, role__in=removed).delete()
    RoleAssignment.objects.bulk_create(RoleAssignment(membership=membership, role=r) for r in added)
    if added or removed:
        audit_record(org=access.org, actor=access.actor, event=AuditEvent.MEMBER_ROLES_CHANGED,
                     target=Target.of(membership),
                     data={"added": sorted(r.name for r in added),
                           "removed": sorted(r.name for r in removed)})


@records_denials
@transaction.atomic
def team_create(*, access: Access, name: str, description: str = "", roles=()) -> Team:
    if Team.objects.for_org(access.org).filter(name=name).exists():
        raise Conflict("A team with this name already exists.", code="duplicate",
                       fields={"name": ["A team with this name already exists."]})
    assert_can_grant(access, _roles_perms(roles), reason="team_roles")
    team = Team.objects.create(org=access.org, name=name, description=description)
    team.roles.set(roles)
    audit_record(org=access.org, actor=access.actor, event=AuditEvent.TEAM_CREATED,
                 target=Target.of(team), data={"name": name})
    return team


def _assert_can_manage_team(access: Access, team: Team) -> None:
    if not access.can_manage_team(team.pk):
        raise Forbidden(
            "You cannot manage this team.",
            audit=DenialAudit(org=access.org, actor=access.actor,
                              event=AuditEvent.PERMISSION_DENIED, target=Target.of(team),
                              data={"reason": "team_manage", "required": Perm.TEAM_WRITE.value}),
        )


@records_denials
@transaction.atomic
def team_update(*, access: Access, team: Team, name=None, description=None, roles=None) -> Team:
    _assert_can_manage_team(access, team)
    fields = []
    if name is not None and name != team.name:
        if Team.objects.for_org(access.org).filter(name=name).exclude(pk=team.pk).exists():
            raise Conflict("A team with this name already exists.", code="duplicate",
                           fields={"name": ["A team with this name already exists."]})
        team.name = name
        fields.append("name")
    if description is not None:
        team.description = description
        fields.append("description")
    team.save()
    data = {"fields": fields}
    if roles is not None:
        # Granting a role to a team grants it to every member: the same no-escalation rule applies.
        current = set(team.roles.all())
        changed = current ^ set(roles)
        assert_can_grant(access, _roles_perms(changed), target=Target.of(team), reason="team_roles")
        team.roles.set(roles)
        data["roles"] = sorted(r.name for r in roles)
    audit_record(org=access.org, actor=access.actor, event=AuditEvent.TEAM_UPDATED,
                 target=Target.of(team), data=data)
    return team


@records_denials
@transaction.atomic
def team_delete(*, access: Access, team: Team) -> None:
    _assert_can_manage_team(access, team)
    target, name = Target.of(team), team.name
    team.delete()
    audit_record(org=access.org, actor=access.actor, event=AuditEvent.TEAM_DELETED,
                 target=target, data={"name": name})


def _assert_can_set_team_role(access: Access, team: Team, role: str, membership) -> None:
    if Perm.TEAM_WRITE in access.perms:
        return
    mine = access.team_roles.get(team.pk)
    own = access.membership is not None and membership.pk == access.membership.pk
    # Team admins manage members; only team owners make owners; nobody raises their own standing.
    if own or (role == TeamRole.OWNER and mine != TeamRole.OWNER):
        raise Forbidden(
            "You cannot give this team role.",
            code="escalation_denied",
            audit=DenialAudit(org=access.org, actor=access.actor,
                              event=AuditEvent.ESCALATION_DENIED, target=Target.of(team),
                              data={"reason": "team_role", "missing": [role]}),
        )


@records_denials
@transaction.atomic
def team_member_add(*, access: Access, team: Team, membership, role: str = TeamRole.MEMBER):
    _assert_can_manage_team(access, team)
    _assert_can_set_team_role(access, team, role, membership)
    # Joining a team grants the team's roles, so the actor must hold them.
    assert_can_grant(access, _roles_perms(team.roles.all()), target=Target.of(team),
                     reason="team_member_add")
    if TeamMembership.objects.filter(team=team, membership=membership).exists():
        raise Conflict("Already a member of this team.", code="duplicate")
    tm = TeamMembership.objects.create(team=team, membership=membership, role=role)
    audit_record(org=access.org, actor=access.actor, event=AuditEvent.TEAM_MEMBER_ADDED,
                 target=Target.of(team), data={"member": str(membership.pk), "role": role})
    return tm


@records_denials
@transaction.atomic
def team_member_update(*, access: Access, team_membership: TeamMembership, role: str):
    team = team_membership.team
    _assert_can_manage_team(access, team)
    _assert_can_set_team_role(access, team, role, team_membership.membership)
    previous = team_membership.role
    team_membership.role = role
    team_membership.save(update_fields=["role"])
    audit_record(org=access.org, actor=access.actor, event=AuditEvent.TEAM_MEMBER_UPDATED,
                 target=Target.of(team),
                 data={"member": str(team_membership.membership_id), "role": role,
                       "previous_role": previous})
    return team_membership


@records_denials
@transaction.atomic
def team_member_remove(*, access: Access, team_membership: TeamMembership) -> None:
    team = team_membership.team
    _assert_can_manage_team(access, team)
    member = str(team_membership.membership_id)
    team_membership.delete()
    audit_record(org=access.org, actor=access.actor, event=AuditEvent.TEAM_MEMBER_REMOVED,
                 target=Target.of(team), data={"member": member})
