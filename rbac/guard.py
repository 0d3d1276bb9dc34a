"""The guard: one `Access` per request, holding the principal's effective permissions in one org.

Effective permissions = the built-in org role ∪ custom roles held directly ∪ custom roles granted to
any team the member is in. A human costs three queries whatever the number of roles and teams
(membership with its org, every role in one query, team standings); an API key costs none beyond
its authentication. Views ask `access.has(...)`; they never compute permissions themselves.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from accounts.mfa import has_second_factor
from accounts.models import ACTING_STATUSES, ApiKey, Membership, User
from accounts.policy import org_session_denial
from audit.actors import Actor
from core.models import Organization
from core.permissions import Perm
from core.roles import TeamRole
from rbac.authentication import AgentToken
from rbac.models import TeamMembership
from rbac.selectors import memberships_permissions


@dataclass(frozen=True)
class Access:
    org: Organization
    perms: frozenset[Perm]
    user: User | None = None
    membership: Membership | None = None
    api_key: ApiKey | None = None
    agent_claims: dict | None = None
    team_roles: Mapping = field(default_factory=dict)

    def has(self, perm: Perm) -> bool:
        return perm in self.perms

    def has_all(self, perms: Iterable[Perm]) -> bool:
        return frozenset(perms) <= self.perms

    def can_manage_team(self, team_id) -> bool:
        """TEAM_WRITE org-wide, or admin/owner standing in that one team."""
        if Perm.TEAM_WRITE in self.perms:
            return True
        return self.team_roles.get(team_id) in (TeamRole.ADMIN, TeamRole.OWNER)

    @property
    def actor(self) -> Actor:
        if self.api_key is not None:
            return Actor.for_api_key(self.api_key)
        if self.agent_claims is not None:
            claims = self.agent_claims
            return Actor("agent", claims["sub"].removeprefix("agent:"), claims["client_id"])
        return Actor.for_user(self.user)

    @property
    def creator_user(self) -> User | None:
        """The human behind this principal: the user, or the user who minted the API key."""
        if self.agent_claims is not None:
            return None  # an agent names owners explicitly
        return self.user if self.api_key is None else self.api_key.created_by


def _role_perms(membership: Membership) -> frozenset[Perm]:
    return memberships_permissions(org_id=membership.org_id, roles={membership.pk: membership.role})[
        membership.pk]


def membership_permissions(membership: Membership) -> frozenset[Perm]:
    """Effective permissions of any membership (used to stop escalation against a target)."""
    if not membership.can_act:
        return frozenset()
    return _role_perms(membership)


def access_for_user(*, user: User, org_slug: str) -> Access | None:
    """None when the user is not an acting member of the org (the caller answers 404)."""
    if not user.is_authenticated or not user.is_active:
        return None
    membership = (
        Membership.objects.unscoped()  # scoped by the org slug in the same query
        .select_related("org", "org__security_policy")
        .filter(org__slug=org_slug, user=user, status__in=ACTING_STATUSES)
        .first()
    )
    if membership is None:
        return None
    team_roles = dict(
        TeamMembership.objects.filter(membership=membership).values_list("team_id", "role")
    )
    return Access(
        org=membership.org,
        perms=_role_perms(membership),
        user=user,
        membership=membership,
        team_roles=team_roles,
    )


def access_for_api_key(*, api_key: ApiKey, org_slug: str) -> Access | None:
    """An API key acts only in its own org: any other org's URL is a 404."""
    if api_key.org.slug != org_slug:
        return None
    return Access(org=api_key.org, perms=api_key.perms, api_key=api_key)


def _access_for_agent_token(token: AgentToken, org_slug: str) -> Access | None:
    # The token was verified for this org's API audience; one query resolves the org row.
    if token.claims["org"] != org_slug:
        return None
    org = Organization.objects.filter(slug=org_slug).first()
    return Access(org=org, perms=token.perms, agent_claims=token.claims) if org else None


class SessionPolicyDenied(Exception):
    """A member's session may not act in this org right now (see accounts.policy.SESSION_DENIALS)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def access_for_request(request, org_slug: str) -> Access | None:
    """Resolve once per request (API key or session user) and keep the answer on the request.

    For a browser session the org's security policy is applied here too (session age and idle
    time, MFA mandate, password age), so no org resource is reachable without it.
    """
    cache = request.__dict__.setdefault("_iam_access", {})
    if org_slug not in cache:
        key = getattr(request, "auth", None)
        if isinstance(key, ApiKey):
            cache[org_slug] = access_for_api_key(api_key=key, org_slug=org_slug)
        elif isinstance(key, AgentToken):
            cache[org_slug] = _access_for_agent_token(key, org_slug)
        else:
            cache[org_slug] = access_for_user(user=request.user, org_slug=org_slug)
    access = cache[org_slug]
    if access is not None and access.api_key is None and access.agent_claims is None:
        denial = org_session_denial(
            org=access.org, user=access.user, session=request.session,
            idle_seconds=getattr(request, "iam_idle_seconds", None),
            has_factor=lambda: has_second_factor(access.user),
        )
        if denial:
            raise SessionPolicyDenied(denial)
    return access
