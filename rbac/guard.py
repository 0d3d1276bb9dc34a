"""The guard: one `Access` per request, holding the principal's effective permissions in one org.

Effective permissions = the built-in org role ∪ custom roles held directly ∪ custom roles granted to
any team the member is in. A human costs three queries whatever the number of roles and teams
(membership with its org, every role in one query, team standings); an API key costs none beyond
its authentication. Views ask `access.has(...)`; they never compute permissions themselves.
"""

from accounts.mfa import has_second_factor
from accounts.models import ACTING_STATUSES, Membership, User
from accounts.policy import org_session_denial
from audit.actors import Actor
from core.permissions import Perm
from core.tenancy import org_scope_enter
from rbac.access import Access, ServicePrincipal
from rbac.models import TeamMembership
from rbac.selectors import memberships_permissions


def _role_perms(membership: Membership) -> frozenset[Perm]:
    return memberships_permissions(org_id=membership.org_id, roles={membership.pk: membership.role})[
        membership.pk]


def membership_permissions(membership: Membership) -> frozenset[Perm]:
    """Effective permissions of any membership now: none while it cannot act."""
    if not membership.can_act:
        return frozenset()
    return _role_perms(membership)


def membership_standing_permissions(membership: Membership) -> frozenset[Perm]:
    """The permissions a membership holds, or would hold if it could act: what changing this person
    is judged by, so that a suspended owner is still an owner to whoever would reinstate or remove
    them."""
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
        TeamMembership.objects.unscoped()  # the standings of the membership just found in this org
        .filter(membership=membership, team__org_id=membership.org_id).values_list("team_id", "role")
    )
    return Access(
        org=membership.org,
        perms=_role_perms(membership),
        actor=Actor.for_user(user),
        user=user,
        membership=membership,
        team_roles=team_roles,
        creator_user=user,
    )


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
        principal = request.user
        if isinstance(principal, ServicePrincipal):
            cache[org_slug] = principal.access_in(org_slug)
        else:
            cache[org_slug] = access_for_user(user=request.user, org_slug=org_slug)
    access = cache[org_slug]
    if access is not None:
        # From here on the request acts in this org: any query an org filter was forgotten on is
        # limited to it, and one reaching for another org's rows raises.
        org_scope_enter(access.org)
    if access is not None and access.interactive:
        denial = org_session_denial(
            org=access.org, user=access.user, session=request.session,
            idle_seconds=getattr(request, "iam_idle_seconds", None),
            has_factor=lambda: has_second_factor(access.user),
            not_before=access.membership.sessions_not_before, role=access.membership.role,
        )
        if denial:
            raise SessionPolicyDenied(denial)
    return access
