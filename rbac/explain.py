"""Where each of a member's effective permissions comes from, for the member's page.

The permissions themselves are the guard's (`rbac.guard.membership_standing_permissions`, over the
one definition, `rbac.selectors.ROLE_GRANTS_SQL`): this module only names, for each of them, the
grants that give it: the built-in role, a custom role held directly, a custom role granted to one of
the member's teams. It reads those grants under the same rule the definition applies (a role or a
team of another org never counts), and `sources_agree` checks that the explanation and the guard
name the same set. A fixed number of queries whatever the member holds.
"""

from dataclasses import dataclass

from django.db.models import Prefetch

from accounts.models import Membership
from core.permissions import Perm
from core.roles import BUILTIN_ROLES
from rbac.guard import membership_standing_permissions
from rbac.models import Role, TeamMembership


@dataclass(frozen=True)
class Source:
    kind: str  # "builtin" | "role" | "team"
    role_name: str
    role: Role | None = None  # the custom role (kind "role" and "team")
    team_membership: TeamMembership | None = None  # the team it comes through (kind "team")


@dataclass(frozen=True)
class PermissionWhy:
    perm: Perm
    sources: tuple[Source, ...]


@dataclass(frozen=True)
class MemberAccess:
    """A member's grants and what they add up to. `acting` False: they hold nothing now (invited,
    suspended, deprovisioned), and `permissions` are what they would hold if they could act."""

    acting: bool
    roles: list  # custom roles held directly
    team_memberships: list  # their standings in the org's teams, each team's roles prefetched
    permissions: list  # [PermissionWhy], in catalogue order
    sources_agree: bool


def member_access_explain(membership: Membership) -> MemberAccess:
    """Four queries: direct roles, team standings, their teams' roles, the guard's resolver."""
    org_id = membership.org_id
    roles = list(Role.objects.for_org(org_id).filter(members=membership).order_by("name"))
    team_memberships = list(
        TeamMembership.objects.filter(membership=membership, team__org_id=org_id)
        .select_related("team")
        .prefetch_related(Prefetch("team__roles", queryset=Role.objects.for_org(org_id).order_by("name")))
        .order_by("team__name")
    )
    found: dict[Perm, list[Source]] = {}
    builtin = Source(kind="builtin", role_name=membership.get_role_display())
    for perm in BUILTIN_ROLES.get(membership.role, ()):
        found.setdefault(perm, []).append(builtin)
    for role in roles:
        for perm in role.perms:
            found.setdefault(perm, []).append(Source(kind="role", role_name=role.name, role=role))
    for standing in team_memberships:
        for role in standing.team.roles.all():
            for perm in role.perms:
                found.setdefault(perm, []).append(
                    Source(kind="team", role_name=role.name, role=role, team_membership=standing))
    effective = membership_standing_permissions(membership)
    permissions = [PermissionWhy(perm=perm, sources=tuple(found.get(perm, ()))) for perm in Perm
                   if perm in effective]
    return MemberAccess(acting=membership.can_act, roles=roles, team_memberships=team_memberships,
                        permissions=permissions, sources_agree=set(found) == set(effective))
