"""Writes to users, organizations, memberships and org API keys. Each one is audited."""

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import (
    ACTING_STATUSES,
    ApiKey,
    Membership,
    MembershipSource,
    MembershipStatus,
    PasswordHistory,
    SecurityPolicy,
    User,
    normalize_email,
)
from audit.actors import Actor
from audit.events import AuditEvent, Outcome
from audit.models import AuditChain, chain_key
from audit.services import Target, audit_record, records_denials
from core.errors import Conflict, DenialAudit, Invalid
from core.models import Organization
from core.roles import BUILTIN_ROLES, BuiltinRole
from core.secrets import credential_mint
from rbac.access import Access
from rbac.services import (
    assert_can_grant,
    assert_can_manage_member,
    member_custom_roles_set,
    validate_permissions,
)


def user_get_or_create(*, email: str, password: str | None = None, display_name: str = "") -> User:
    email = normalize_email(email)
    user = User.objects.filter(email=email).first()
    if user is None:
        user = User.objects.create_user(email, password, display_name=display_name)
    return user


def account_claim(*, user: User, org, actor: Actor) -> None:
    """Another org is taking this account in (a member added, an IdP linking it): if one org's SCIM
    created it, that org stops managing it and its password is cleared, with every session.

    Otherwise an org could create an account for someone else's address, set its password, and sign
    in wherever the real person is later added. The person sets their own password by reset.
    """
    if user.scim_managed_by_id is None or user.scim_managed_by_id == org.pk:
        return
    cleared = user.has_usable_password()
    user.scim_managed_by = None
    user.set_unusable_password()
    user.save(update_fields=["scim_managed_by", "password"])
    revoked = sessions_revoke(user=user, reason="account_claimed", actor=actor)
    audit_record(org=org, actor=actor, event=AuditEvent.ACCOUNT_RELEASED, target=Target.of(user),
                 data={"email": user.email, "password_cleared": cleared, "sessions_revoked": revoked})


@transaction.atomic
def org_create(*, slug: str, name: str, owner: User, actor: Actor | None = None) -> Organization:
    """Create an org with `owner` as its first Owner."""
    if Organization.objects.filter(slug=slug).exists():
        raise Conflict("An organization with this slug already exists.", code="duplicate",
                       fields={"slug": ["Already taken."]})
    org = Organization(slug=slug, name=name)
    org.full_clean()
    org.save()
    AuditChain.objects.create(chain=chain_key(org))
    membership = Membership.objects.create(org=org, user=owner, role=BuiltinRole.OWNER)
    actor = actor or Actor.for_user(owner)
    audit_record(org=org, actor=actor, event=AuditEvent.ORG_CREATED, target=Target.of(org),
                 data={"slug": slug, "name": name})
    audit_record(org=org, actor=actor, event=AuditEvent.MEMBER_ADDED, target=Target.of(membership),
                 data={"email": owner.email, "role": BuiltinRole.OWNER, "source": "manual",
                       "status": membership.status})
    return org


@records_denials
@transaction.atomic
def member_add(*, access: Access, email: str, role: str = BuiltinRole.MEMBER, custom_roles=(),
               source: str = MembershipSource.MANUAL) -> Membership:
    """Add a person to the org. Someone who has no account yet is invited (no usable password)."""
    assert_can_grant(access, BUILTIN_ROLES[role], reason="member_add")
    user = user_get_or_create(email=email)
    if Membership.objects.for_org(access.org).filter(user=user).exists():
        raise Conflict("This person is already a member.", code="duplicate",
                       fields={"email": ["Already a member of this organization."]})
    account_claim(user=user, org=access.org, actor=access.actor)
    status = MembershipStatus.ACTIVE if user.has_usable_password() else MembershipStatus.INVITED
    membership = Membership.objects.create(
        org=access.org, user=user, role=role, source=source, status=status
    )
    audit_record(org=access.org, actor=access.actor, event=AuditEvent.MEMBER_ADDED,
                 target=Target.of(membership),
                 data={"email": user.email, "role": role, "source": source, "status": status})
    if custom_roles:
        member_custom_roles_set(access=access, membership=membership, roles=custom_roles)
    return membership


def _directory_deactivated(membership: Membership) -> bool:
    scim = getattr(membership, "scim", None)  # scim.ScimUser, when an IdP provisions this member
    return scim is not None and scim.active is False


def _acting_owners(org):
    # Locked so that two concurrent demotions cannot each see the other owner and both succeed.
    return list(
        Membership.objects.for_org(org)
        .select_for_update()
        .filter(role=BuiltinRole.OWNER, status__in=ACTING_STATUSES)
        .values_list("pk", flat=True)
    )


def _assert_not_last_owner(access: Access, membership: Membership, action: str) -> None:
    if membership.role != BuiltinRole.OWNER or not membership.can_act:
        return
    if set(_acting_owners(access.org)) <= {membership.pk}:
        raise Conflict(
            "An organization must keep at least one owner.",
            code="last_owner",
            audit=DenialAudit(org=access.org, actor=access.actor,
                              event=AuditEvent.LAST_OWNER_PROTECTED,
                              target=Target.of(membership), data={"action": action}),
        )


@records_denials
@transaction.atomic
def member_update(*, access: Access, membership: Membership, role: str | None = None,
                  status: str | None = None, custom_roles=None) -> Membership:
    assert_can_manage_member(access, membership)
    data = {}
    if role is not None and role != membership.role:
        assert_can_grant(access, BUILTIN_ROLES[role], target=Target.of(membership))
        _assert_not_last_owner(access, membership, "demote")
        data.update(role=role, previous_role=membership.role)
        membership.role = role
    if status is not None and status != membership.status:
        if status not in ACTING_STATUSES:
            _assert_not_last_owner(access, membership, "suspend")
        elif _directory_deactivated(membership):
            # The IdP is the source of truth for this person: an admin lifting a suspension must not
            # bring back someone the directory has switched off.
            raise Invalid("The identity provider has deactivated this person; reactivate them there.",
                          code="directory_deactivated",
                          fields={"status": ["Deactivated by the identity provider (SCIM)."]})
        data.update(status=status, previous_status=membership.status)
        membership.status = status
    if data:
        membership.save(update_fields=["role", "status"])
        audit_record(org=access.org, actor=access.actor, event=AuditEvent.MEMBER_UPDATED,
                     target=Target.of(membership), data=data)
    if custom_roles is not None:
        member_custom_roles_set(access=access, membership=membership, roles=custom_roles)
    return membership


@records_denials
@transaction.atomic
def member_remove(*, access: Access, membership: Membership) -> None:
    assert_can_manage_member(access, membership)
    _assert_not_last_owner(access, membership, "remove")
    target, email, role = Target.of(membership), membership.user.email, membership.role
    membership.delete()
    audit_record(org=access.org, actor=access.actor, event=AuditEvent.MEMBER_REMOVED,
                 target=target, data={"email": email, "role": role})


@records_denials
@transaction.atomic
def api_key_create(*, access: Access, name: str, permissions, expires_at=None) -> tuple[ApiKey, str]:
    """Mint an org API key. Returns the key and its secret, which is never available again."""
    perms = validate_permissions(permissions)
    if not perms:
        raise Invalid("Choose at least one permission.",
                      fields={"permissions": ["Choose at least one permission."]})
    if expires_at is not None and expires_at <= timezone.now():
        raise Invalid("The expiry must be in the future.",
                      fields={"expires_at": ["The expiry must be in the future."]})
    assert_can_grant(access, perms, reason="api_key_create")
    minted = credential_mint(ApiKey.PREFIX)
    key = ApiKey.objects.create(
        org=access.org, name=name, lookup_id=minted.lookup_id, secret_hash=minted.secret_hash,
        hash_kid=minted.hash_kid, permissions=[p.value for p in perms],
        created_by=access.creator_user, expires_at=expires_at,
    )
    audit_record(org=access.org, actor=access.actor, event=AuditEvent.API_KEY_CREATED,
                 target=Target.of(key),
                 data={"name": name, "permissions": key.permissions, "expires_at": expires_at})
    return key, minted.display


@records_denials
@transaction.atomic
def api_key_revoke(*, access: Access, key: ApiKey) -> ApiKey:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit_record(org=access.org, actor=access.actor, event=AuditEvent.API_KEY_REVOKED,
                     target=Target.of(key), data={"name": key.name})
    return key


def login_record_success(*, user: User, method: str = "password") -> None:
    """A completed login: invited memberships become active, and the login is audited."""
    # Most logins have nothing to activate: a plain read answers that in one round trip, and only
    # then is a transaction with row locks opened.
    if user.memberships.filter(status=MembershipStatus.INVITED).exists():
        _memberships_activate(user)
    audit_record(org=None, actor=Actor.for_user(user), event=AuditEvent.LOGIN_SUCCEEDED,
                 data={"method": method})


@transaction.atomic
def _memberships_activate(user: User) -> None:
    invited = user.memberships.select_for_update().select_related("org").filter(
        status=MembershipStatus.INVITED)
    for membership in invited:
        membership.status = MembershipStatus.ACTIVE
        membership.save(update_fields=["status"])
        audit_record(org=membership.org, actor=Actor.for_user(user), event=AuditEvent.MEMBER_UPDATED,
                     target=Target.of(membership),
                     data={"status": MembershipStatus.ACTIVE, "previous_status": MembershipStatus.INVITED})


def login_record_failure(*, reason: str, method: str = "password") -> None:
    # Login events belong to no org (the platform chain); data never holds the email or password.
    audit_record(org=None, actor=Actor.anonymous(), event=AuditEvent.LOGIN_FAILED,
                 outcome=Outcome.FAILURE, data={"reason": reason, "method": method})


def logout_record(*, user: User) -> None:
    audit_record(org=None, actor=Actor.for_user(user), event=AuditEvent.LOGOUT)


HISTORY_KEPT = 24  # the most any policy may ask for


def sessions_revoke(*, user: User, reason: str, except_key: str | None = None,
                    actor: Actor | None = None) -> int:
    """End the user's sessions (all, or all but one). They fail on their very next request."""
    sessions = user.sessions.all()
    if except_key:
        sessions = sessions.exclude(session_key=except_key)
    count, _ = sessions.delete()
    if count:
        audit_record(org=None, actor=actor or Actor.for_user(user), event=AuditEvent.SESSION_REVOKED,
                     target=Target.of(user), data={"reason": reason, "count": count})
    return count


@records_denials
@transaction.atomic
def password_set(*, user: User, new_password: str, reason: str,
                 keep_session_key: str | None = None) -> int:
    """Set a new password under the strictest org policy; ends every other session.

    Returns the number of sessions ended. The previous hash joins the history (for no-reuse).
    """
    try:
        validate_password(new_password, user)
    except ValidationError as exc:
        codes = sorted({e.code or "invalid" for e in exc.error_list})
        raise Invalid(
            "Choose a different password.", code=codes[0] if len(codes) == 1 else "password_rejected",
            fields={"new_password": list(exc.messages)},
            audit=DenialAudit(org=None, actor=Actor.for_user(user), event=AuditEvent.PASSWORD_REJECTED,
                              target=Target.of(user), data={"reasons": codes}),
        )
    if user.has_usable_password():
        PasswordHistory.objects.create(user=user, password=user.password)
        stale = user.password_history.order_by("-created_at").values_list("pk", flat=True)[HISTORY_KEPT:]
        PasswordHistory.objects.filter(pk__in=list(stale)).delete()
    user.set_password(new_password)
    user.password_changed_at = timezone.now()
    user.save(update_fields=["password", "password_changed_at"])
    revoked = sessions_revoke(user=user, reason=reason, except_key=keep_session_key)
    audit_record(org=None, actor=Actor.for_user(user), event=AuditEvent.PASSWORD_CHANGED,
                 target=Target.of(user), data={"sessions_revoked": revoked, "reason": reason})
    return revoked


POLICY_FIELDS = (
    "session_absolute_minutes", "session_idle_minutes", "password_min_length", "password_require_lower",
    "password_require_upper", "password_require_digit", "password_require_symbol", "password_history",
    "password_max_age_days", "mfa_required", "lockout_threshold", "lockout_minutes",
    "agent_token_ttl_seconds", "secret_overlap_max_seconds", "token_alg",
    "deprovision_agents", "deprovision_fallback_owner",
)


@records_denials
@transaction.atomic
def policy_update(*, access: Access, **changes) -> SecurityPolicy:
    """Change the org's security policy; takes effect on each member's next request or login."""
    unknown = set(changes) - set(POLICY_FIELDS)
    if unknown:
        raise Invalid("Unknown policy settings.", fields={k: ["Unknown setting."] for k in sorted(unknown)})
    fallback = changes.get("deprovision_fallback_owner")
    if fallback is not None and (fallback.org_id != access.org.pk or not fallback.can_act):
        message = "Choose an active member of this organization."
        raise Invalid(message, fields={"deprovision_fallback_owner": [message]})
    policy = SecurityPolicy.objects.select_for_update().filter(org=access.org).first()
    policy = policy or SecurityPolicy(org=access.org)
    previous = {name: getattr(policy, name) for name in changes}
    for name, value in changes.items():
        setattr(policy, name, value)
    try:
        policy.full_clean(exclude=["org"])
    except ValidationError as exc:
        raise Invalid("Invalid policy.", fields=exc.message_dict)
    policy.updated_at = timezone.now()
    policy.save()
    changed = sorted(name for name in changes if previous[name] != changes[name])
    audit_record(org=access.org, actor=access.actor, event=AuditEvent.POLICY_CHANGED,
                 target=Target.of(access.org),
                 data={"fields": changed, "previous": {k: previous[k] for k in changed}})
    return policy


@records_denials
def member_sessions_revoke(*, access: Access, membership: Membership) -> int:
    """An admin ends every session of a member (e.g. a lost laptop). Only within one's own power."""
    assert_can_manage_member(access, membership)
    return sessions_revoke(user=membership.user, reason="admin_revoke", actor=access.actor)
