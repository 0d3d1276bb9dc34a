"""Effects on custom roles, teams and the grants they make.

Each takes the `actor` it acts for, checks that every object it is handed belongs to the same org,
and audits inside its transaction. Whether the caller may ask is decided first: by rbac.policies for
the pages and the admin API, by an adapter's own policy for SCIM group mappings. A grant carries its
`source`: "" when a person gave it, or the adapter's tag (only the adapter takes such grants back).
"""

from django.db import transaction

from audit.actors import Actor
from audit.events import AuditEvent
from audit.services import AuditAs, Target, audit_effect, audit_record, cross_tenant, records_denials
from core.errors import Conflict, Invalid
from core.permissions import perms_validate
from core.roles import TeamRole
from core.tenancy import assert_same_org
from rbac.models import Role, RoleAssignment, Team, TeamMembership

# --- custom roles ----------------------------------------------------------------------------------


def _role_name_taken(org, name: str, exclude=None) -> bool:
    taken = Role.objects.for_org(org).filter(name=name)
    return (taken.exclude(pk=exclude.pk) if exclude else taken).exists()


def _duplicate_role() -> Conflict:
    return Conflict("A role with this name already exists.", code="duplicate",
                    fields={"name": ["A role with this name already exists."]})


@records_denials
@transaction.atomic
def role_create(*, org, name: str, permissions, actor: Actor, description: str = "") -> Role:
    perms = perms_validate(permissions)
    if _role_name_taken(org, name):
        raise _duplicate_role()
    role = Role.objects.create(org=org, name=name, description=description,
                               permissions=[p.value for p in perms])
    audit_record(org=org, actor=actor, event=AuditEvent.ROLE_CREATED, target=Target.of(role),
                 data={"name": name, "permissions": role.permissions})
    return role


@records_denials
@transaction.atomic
def role_update(*, role: Role, actor: Actor, name=None, description=None, permissions=None) -> Role:
    previous = list(role.permissions)
    if permissions is not None:
        role.permissions = [p.value for p in perms_validate(permissions)]
    if name is not None and name != role.name:
        if _role_name_taken(role.org_id, name, exclude=role):
            raise _duplicate_role()
        role.name = name
    if description is not None:
        role.description = description
    role.save()
    audit_record(org=role.org, actor=actor, event=AuditEvent.ROLE_UPDATED, target=Target.of(role),
                 data={"name": role.name, "permissions": role.permissions, "previous_permissions": previous})
    return role


@transaction.atomic
def role_delete(*, role: Role, actor: Actor) -> None:
    org, target, name = role.org, Target.of(role), role.name
    role.delete()
    audit_record(org=org, actor=actor, event=AuditEvent.ROLE_DELETED, target=target, data={"name": name})


# --- grants of custom roles -----------------------------------------------------------------------


@records_denials
@transaction.atomic
def membership_custom_roles_set(*, membership, roles, actor: Actor) -> tuple[set, set]:
    """Replace the custom roles a member holds directly. Returns (added, removed)."""
    assert_same_org(membership.org, *roles, audit=cross_tenant(membership.org, actor))
    current = set(Role.objects.for_org(membership.org_id).filter(members=membership))
    wanted = set(roles)
    added, removed = wanted - current, current - wanted
    RoleAssignment.objects.filter(membership=membership, role__in=removed).delete()
    RoleAssignment.objects.bulk_create(RoleAssignment(membership=membership, role=r) for r in added)
    if added or removed:
        audit_record(org=membership.org, actor=actor, event=AuditEvent.MEMBER_ROLES_CHANGED,
                     target=Target.of(membership),
                     data={"added": sorted(r.name for r in added),
                           "removed": sorted(r.name for r in removed)})
    return added, removed


@records_denials
@transaction.atomic
def role_grant(*, membership, role: Role, actor: Actor, source: str = "",
               audit_as: AuditAs | None = None) -> RoleAssignment:
    """Give one member one custom role (tagged with `source`)."""
    assert_same_org(membership.org, role, audit=cross_tenant(membership.org, actor))
    assignment = RoleAssignment.objects.create(membership=membership, role=role, source=source)
    audit_effect(org=membership.org, actor=actor, event=AuditEvent.MEMBER_ROLES_CHANGED,
                 target=Target.of(membership), data={"added": [role.name], "removed": []}, audit_as=audit_as)
    return assignment


def role_grant_retag(*, assignment: RoleAssignment, source: str) -> None:
    """The same grant, now made by another source of the same adapter: access does not change, so
    nothing is audited."""
    assignment.source = source
    assignment.save(update_fields=["source"])


@transaction.atomic
def role_revoke(*, assignment: RoleAssignment, actor: Actor, audit_as: AuditAs | None = None) -> None:
    membership, name = assignment.membership, assignment.role.name
    assignment.delete()
    audit_effect(org=membership.org, actor=actor, event=AuditEvent.MEMBER_ROLES_CHANGED,
                 target=Target.of(membership), data={"added": [], "removed": [name]}, audit_as=audit_as)


# --- teams -----------------------------------------------------------------------------------------


def _team_name_taken(org, name: str, exclude=None) -> bool:
    taken = Team.objects.for_org(org).filter(name=name)
    return (taken.exclude(pk=exclude.pk) if exclude else taken).exists()


def _duplicate_team() -> Conflict:
    return Conflict("A team with this name already exists.", code="duplicate",
                    fields={"name": ["A team with this name already exists."]})


@records_denials
@transaction.atomic
def team_create(*, org, name: str, actor: Actor, description: str = "", roles=()) -> Team:
    assert_same_org(org, *roles, audit=cross_tenant(org, actor))
    if _team_name_taken(org, name):
        raise _duplicate_team()
    team = Team.objects.create(org=org, name=name, description=description)
    team.roles.set(roles)
    audit_record(org=org, actor=actor, event=AuditEvent.TEAM_CREATED, target=Target.of(team),
                 data={"name": name})
    return team


@records_denials
@transaction.atomic
def team_update(*, team: Team, actor: Actor, name=None, description=None, roles=None) -> Team:
    fields = []
    if name is not None and name != team.name:
        if _team_name_taken(team.org_id, name, exclude=team):
            raise _duplicate_team()
        team.name = name
        fields.append("name")
    if description is not None:
        team.description = description
        fields.append("description")
    team.save()
    data = {"fields": fields}
    if roles is not None:
        assert_same_org(team.org, *roles, audit=cross_tenant(team.org, actor))
        team.roles.set(roles)
        data["roles"] = sorted(r.name for r in roles)
    audit_record(org=team.org, actor=actor, event=AuditEvent.TEAM_UPDATED, target=Target.of(team), data=data)
    return team


@transaction.atomic
def team_delete(*, team: Team, actor: Actor) -> None:
    org, target, name = team.org, Target.of(team), team.name
    team.delete()
    audit_record(org=org, actor=actor, event=AuditEvent.TEAM_DELETED, target=target, data={"name": name})


# --- team standings ---------------------------------------------------------------------------------


@records_denials
@transaction.atomic
def team_standing_add(*, team: Team, membership, role: str, actor: Actor, source: str = "",
                      audit_as: AuditAs | None = None) -> TeamMembership:
    """Put a member in a team with a standing (member, admin, owner), tagged with `source`."""
    assert_same_org(team.org, membership, audit=cross_tenant(team.org, actor))
    if role not in TeamRole.values:
        raise Invalid("Unknown team role.", fields={"role": ["Unknown team role."]})
    if TeamMembership.objects.filter(team=team, membership=membership).exists():
        raise Conflict("Already a member of this team.", code="duplicate")
    standing = TeamMembership.objects.create(team=team, membership=membership, role=role, source=source)
    audit_effect(org=team.org, actor=actor, event=AuditEvent.TEAM_MEMBER_ADDED, target=Target.of(team),
                 data={"member": str(membership.pk), "role": role}, audit_as=audit_as)
    return standing


@transaction.atomic
def team_standing_set(*, standing: TeamMembership, role: str, actor: Actor, source: str | None = None,
                      audit_as: AuditAs | None = None) -> TeamMembership:
    """Change a member's standing in a team (and, for an adapter, which of its sources gives it)."""
    previous = standing.role
    standing.role = role
    if source is not None:
        standing.source = source
    standing.save(update_fields=["role", "source"])
    if previous != role or audit_as is None:  # a person's change is on record even when it changes nothing
        audit_effect(org=standing.team.org, actor=actor, event=AuditEvent.TEAM_MEMBER_UPDATED,
                     target=Target.of(standing.team),
                     data={"member": str(standing.membership_id), "role": role, "previous_role": previous},
                     audit_as=audit_as)
    return standing


@transaction.atomic
def team_standing_remove(*, standing: TeamMembership, actor: Actor, audit_as: AuditAs | None = None) -> None:
    team, member = standing.team, str(standing.membership_id)
    standing.delete()
    audit_effect(org=team.org, actor=actor, event=AuditEvent.TEAM_MEMBER_REMOVED, target=Target.of(team),
                 data={"member": member}, audit_as=audit_as)
