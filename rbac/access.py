"""What one principal may do in one org (`Access`), and the base of every non-human principal.

The guard (rbac.guard) builds an `Access` per request; views and policy wrappers ask it. A
non-human caller (an API key, an agent's token) is a `ServicePrincipal` that resolves its own.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from audit.actors import Actor
from core.models import Organization
from core.permissions import Perm
from core.roles import TeamRole


@dataclass(frozen=True)
class Access:
    org: Organization
    perms: frozenset[Perm]
    actor: Actor
    # The human in a browser session (None for API keys and agents).
    user: object = None
    membership: object = None
    team_roles: Mapping = field(default_factory=dict)
    # The human behind the principal: the session's user, or the member who minted the API key.
    # An agent names its owners explicitly, so it has none.
    creator_user: object = None

    @property
    def interactive(self) -> bool:
        """A person at a browser: the org's session policy and re-authentication apply."""
        return self.user is not None

    def has(self, perm: Perm) -> bool:
        return perm in self.perms

    def has_all(self, perms: Iterable[Perm]) -> bool:
        return frozenset(perms) <= self.perms

    def can_manage_team(self, team_id) -> bool:
        """TEAM_WRITE org-wide, or admin/owner standing in that one team."""
        if Perm.TEAM_WRITE in self.perms:
            return True
        return self.team_roles.get(team_id) in (TeamRole.ADMIN, TeamRole.OWNER)


class ServicePrincipal:
    """`request.user` for a non-human caller: authenticated, but never a User row.

    Subclasses resolve what they may do in one org (`access_in`); None means not in that org (404).
    """

    is_authenticated = True
    is_anonymous = False
    is_active = True
    pk = None

    def access_in(self, org_slug: str) -> Access | None:
        raise NotImplementedError
