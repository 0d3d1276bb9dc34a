from core.errors import NotFound
from core.permissions import perms_from_strings
from core.roles import BUILTIN_ROLES
from rbac.models import Role, RoleAssignment, TeamMembership


def roles_in_org(org, ids) -> list[Role]:
    """Roles named in a request body; an id from another org is a 404, like one in the path."""
    wanted = set(ids)
    roles = list(Role.objects.for_org(org).filter(pk__in=wanted))
    if len(roles) != len(wanted):
        raise NotFound("Role not found.")
    return roles


def memberships_permissions(*, org_id, roles: dict) -> dict:
    """Effective permissions of memberships of one org ({membership id: built-in role} in, {id:
    frozenset} out): the built-in role, custom roles held directly, custom roles of their teams.

    One query however many memberships, roles and teams; roles of another org never count. The
    guard, agent grants and the access-review export all resolve permissions here.
    """
    if not roles:
        return {}
    granted = {pk: set(BUILTIN_ROLES[role]) for pk, role in roles.items()}
    direct = RoleAssignment.objects.filter(membership_id__in=granted, role__org_id=org_id).values_list(
        "membership_id", "role__permissions")
    via_teams = TeamMembership.objects.filter(
        membership_id__in=granted, team__roles__org_id=org_id).values_list(
        "membership_id", "team__roles__permissions")
    for membership_id, permissions in direct.union(via_teams, all=True):
        granted[membership_id] |= perms_from_strings(permissions or [])
    return {pk: frozenset(perms) for pk, perms in granted.items()}
