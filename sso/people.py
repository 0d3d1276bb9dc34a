"""Who an IdP's verified answer names: the linked account, an existing account the org may claim,
or a new one (just-in-time), and the membership that lets them act in the org. Every write goes
through the cores' effect services (accounts), as SCIM's does.

Linking is on (org, issuer, subject), never on email alone. An email links an existing account
only when the IdP says it is verified and its domain is one this org has verified (the one case
where an org claims an account without the person's acceptance). Just-in-time provisioning
creates accounts only at the org's verified domains too: an IdP cannot mint accounts for
addresses its org does not own.
"""

import hashlib

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from accounts import services as accounts_services
from accounts.departures import directory_in_charge
from accounts.models import Membership, MembershipSource, MembershipStatus, User, normalize_email
from audit.actors import Actor
from audit.events import AuditEvent
from audit.services import Target, audit_record
from core.errors import ServiceError
from core.roles import BuiltinRole
from rbac import policies as rbac_policies
from rbac import services as rbac_services
from rbac.models import Role, RoleAssignment, Team, TeamMembership
from sso.domains import domain_verified_for
from sso.models import Identity
from sso.outcomes import Assertion, SsoRefused

# The roles an IdP may hand out (its default role and group mappings): never Owner.
ASSIGNABLE_ROLES = (BuiltinRole.MEMBER, BuiltinRole.VIEWER, BuiltinRole.BILLING_ADMIN)


def idp_actor(connection) -> Actor:
    return Actor.system(f"sso:{connection.slug}")


def person_for(connection, assertion: Assertion) -> tuple[User, Identity, str]:
    """(user, identity, how): how is "identity" (already linked), "email" (linked now by a
    verified email at a verified domain) or "jit" (created now). Raises SsoRefused."""
    org = connection.org
    identity = (
        Identity.objects.for_org(org)
        .select_related("user")
        .filter(issuer=assertion.issuer, subject=assertion.subject)
        .first()
    )
    if identity is not None:
        user, how = identity.user, "identity"
    else:
        user, how = _link_or_provision(connection, assertion)
        identity = Identity.objects.create(
            org=org,
            connection=connection,
            issuer=assertion.issuer,
            subject=assertion.subject,
            user=user,
            email=user.email,
        )
    if not user.is_active:
        raise SsoRefused("account_inactive", 403)
    membership = _membership_for(connection, user, created=how == "jit")
    mappings_apply(connection, membership, assertion.groups)
    return user, identity, how


def _link_or_provision(connection, assertion: Assertion) -> tuple[User, str]:
    org = connection.org
    if not assertion.email:
        raise SsoRefused("email_missing", 403)
    email = normalize_email(assertion.email)
    try:
        validate_email(email)
    except ValidationError:
        raise SsoRefused("email_missing", 403) from None
    if not assertion.email_verified:
        raise SsoRefused("email_not_verified", 403)
    domain_ok = domain_verified_for(org, email)
    existing = User.objects.filter(email=email).first()
    if existing is not None:
        if not domain_ok:
            raise SsoRefused("account_not_linked", 403)
        return existing, "email"
    if not connection.jit:
        raise SsoRefused("not_a_member", 403)
    if not domain_ok:
        raise SsoRefused("domain_not_verified", 403)
    user = accounts_services.user_create(email=email, display_name=(assertion.display_name or "")[:150])
    return user, "jit"


def _membership_for(connection, user: User, *, created: bool) -> Membership:
    org = connection.org
    membership = Membership.objects.for_org(org).filter(user=user).first()
    if membership is None:
        if not connection.jit:
            raise SsoRefused("not_a_member", 403)
        if directory_in_charge(org):
            # SCIM decides who is a member: signing in must not bring back someone it removed.
            raise SsoRefused("not_provisioned", 403)
        role = connection.default_role if connection.default_role in ASSIGNABLE_ROLES else BuiltinRole.MEMBER
        membership = accounts_services.membership_create(
            org=org,
            user=user,
            role=role,
            actor=idp_actor(connection),
            source=MembershipSource.SSO,
            status=MembershipStatus.ACTIVE,
        )
        audit_record(
            org=org,
            actor=idp_actor(connection),
            event=AuditEvent.SSO_JIT_PROVISIONED,
            target=Target.of(membership),
            data={"connection": connection.slug, "email": user.email, "role": role},
        )
        return membership
    if membership.deactivated_by_directory:
        raise SsoRefused("membership_inactive", 403)
    if membership.status == MembershipStatus.INVITED:
        # Signing in through the org's own IdP as this person answers the invitation.
        try:
            return rbac_policies.invitation_accept_signed_in(user=user, membership=membership)
        except ServiceError as exc:
            raise SsoRefused("membership_inactive", 403, detail=exc.detail) from None
    if not membership.can_act:
        raise SsoRefused("membership_inactive", 403)
    return membership


def sessions_end(*, connection, user_id, key_hashes: set) -> int:
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        return 0
    return accounts_services.sessions_revoke_matching(
        user=user,
        matches=lambda key: hashlib.sha256(key.encode()).hexdigest() in key_hashes,
        reason="idp_logout",
        actor=idp_actor(connection),
    )


# --- group mappings ------------------------------------------------------------------------------


def mapping_source(connection) -> str:
    """The tag on the grants this connection's mappings made: only the connection takes them back."""
    return f"sso.mapping:{connection.pk}"


def mappings_apply(connection, membership: Membership, groups) -> None:
    """Bring the member's grants from this IdP in line with the groups it sent at this sign-in:
    custom roles and team standings the mappings name are granted (tagged with the connection),
    those the connection granted for groups no longer sent are taken back, and a membership the
    IdP created gets the built-in role of the first mapping that matches (else the default role).
    A membership a person or SCIM made keeps its built-in role; Owner is never given or taken."""
    mappings = connection.group_mappings or []
    if not mappings and membership.source != MembershipSource.SSO:
        return
    sent = {g for g in groups if isinstance(g, str)}
    matched = [m for m in mappings if m["group"] in sent]
    actor, tag = idp_actor(connection), mapping_source(connection)
    if membership.source == MembershipSource.SSO and membership.role != BuiltinRole.OWNER:
        roles = [m["role"] for m in matched if "role" in m]
        target = roles[0] if roles else connection.default_role
        if target in ASSIGNABLE_ROLES and target != membership.role:
            accounts_services.membership_update(membership=membership, actor=actor, role=target)
    _custom_roles_apply(membership, {m["custom_role"] for m in matched if "custom_role" in m}, actor, tag)
    _teams_apply(
        membership, {m["team"]: m.get("team_role", "member") for m in matched if "team" in m}, actor, tag
    )


def _custom_roles_apply(membership, wanted: set, actor, tag: str) -> None:
    held = {
        str(a.role_id): a for a in RoleAssignment.objects.filter(membership=membership).select_related("role")
    }
    for role in Role.objects.for_org(membership.org).filter(pk__in=wanted - set(held)):
        rbac_services.role_grant(membership=membership, role=role, actor=actor, source=tag)
    for role_id, assignment in held.items():
        if assignment.source == tag and role_id not in wanted:
            rbac_services.role_revoke(assignment=assignment, actor=actor)


def _teams_apply(membership, wanted: dict, actor, tag: str) -> None:
    held = {
        str(s.team_id): s for s in TeamMembership.objects.filter(membership=membership).select_related("team")
    }
    for team in Team.objects.for_org(membership.org).filter(pk__in=set(wanted) - set(held)):
        rbac_services.team_standing_add(
            team=team, membership=membership, role=wanted[str(team.pk)], actor=actor, source=tag
        )
    for team_id, standing in held.items():
        if standing.source != tag:
            continue  # a person (or SCIM) put them there: not this connection's to change
        if team_id not in wanted:
            rbac_services.team_standing_remove(standing=standing, actor=actor)
        elif standing.role != wanted[team_id]:
            rbac_services.team_standing_set(standing=standing, role=wanted[team_id], actor=actor)
