"""Where human authorization flows down into agent credentials.

An agent's grant (scopes and audiences) may never exceed what its owners hold. A scope that names a
catalogue permission (the agent calling our own API) needs that permission; a downstream service's
scope needs `connection:use`. Every owner must hold what the grant needs (the grant is the
intersection over owners), checked when the grant is set and again at every token issuance, so an
owner who loses a permission narrows the agent at once.
"""

from django.db.models import F

from accounts.models import ACTING_STATUSES
from rbac.models import RoleAssignment, TeamMembership
from rbac.permissions import Perm, perms_from_strings
from rbac.roles import BUILTIN_ROLES


def scope_needs(scope: str) -> Perm:
    return Perm._value2member_map_.get(scope) or Perm.CONNECTION_USE


def owners_permissions(agent) -> list[frozenset]:
    """Each acting owner's effective permissions: two queries however many owners and roles."""
    owners = list(agent.owners.filter(status__in=ACTING_STATUSES).values_list("id", "role"))
    if not owners:
        return []
    granted = {pk: set(BUILTIN_ROLES[role]) for pk, role in owners}
    direct = RoleAssignment.objects.filter(membership_id__in=granted).values_list(
        "membership_id", F("role__permissions"))
    via_teams = TeamMembership.objects.filter(membership_id__in=granted).exclude(
        team__roles=None).values_list("membership_id", F("team__roles__permissions"))
    for membership_id, permissions in direct.union(via_teams, all=True):
        granted[membership_id] |= perms_from_strings(permissions or [])
    return [frozenset(p) for p in granted.values()]


def delegable_scopes(scopes, owner_perms: list[frozenset]) -> set[str]:
    """The scopes every owner may hand to the agent (none when the agent has no acting owner)."""
    if not owner_perms:
        return set()
    return {s for s in scopes if all(scope_needs(s) in perms for perms in owner_perms)}
