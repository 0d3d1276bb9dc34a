"""Effects on people, organizations and memberships.

Each takes the `actor` it acts for (a person, an API key, an agent, an IdP's SCIM token, the system),
keeps the invariants (an org keeps an acting owner; a person the directory switched off comes back
only through the directory; every object belongs to the org), and audits inside its transaction.
Who may ask for a change is decided before, by the policy wrappers in rbac.policies (pages and the
admin API) or by an adapter's own policy (SCIM). API keys are in accounts.api_keys.
"""

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts import invitations
from accounts.departures import member_departed, member_standing_lost
from accounts.models import (
    ACTING_STATUSES,
    Membership,
    MembershipSource,
    MembershipStatus,
    PasswordHistory,
    SecurityPolicy,
    User,
    normalize_email,
)
from accounts.person_audit import person_record
from audit.actors import Actor
from audit.events import AuditEvent, Outcome
from audit.services import AuditAs, Target, audit_effect, audit_record, chain_open, records_denials
from core.errors import Conflict, DenialAudit, Invalid
from core.models import Organization
from core.org_settings import settings_apply
from core.roles import BUILTIN_ROLES, BuiltinRole


def user_get_or_create(*, email: str, password: str | None = None, display_name: str = "") -> User:
    email = normalize_email(email)
    user = User.objects.filter(email=email).first()
    if user is None:
        user = user_create(email=email, password=password, display_name=display_name)
    return user


def user_create(*, email: str, password: str | None = None, display_name: str = "", **fields) -> User:
    """A new account; without a password it cannot sign in until one is set (or by SSO)."""
    return User.objects.create_user(email, password, display_name=display_name, **fields)


def account_claim(*, user: User, org, actor: Actor) -> None:
    """The person accepted another org's invitation from the mailed link: if one org's SCIM created
    the account, that org stops managing it and its password is cleared, with every session.

    Otherwise an org could create an account for someone else's address, set its password, and sign
    in wherever the real person is later added. The person sets their own password on the same
    page (accounts.invitations).
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
    chain_open(org=org)
    actor = actor or Actor.for_user(owner)
    audit_record(org=org, actor=actor, event=AuditEvent.ORG_CREATED, target=Target.of(org),
                 data={"slug": slug, "name": name})
    # The owner creates the org for themselves: no other org's claim on the account is at stake.
    _membership_insert(org=org, user=owner, role=BuiltinRole.OWNER, actor=actor,
                       source=MembershipSource.MANUAL, status=MembershipStatus.ACTIVE)
    return org


@records_denials
@transaction.atomic
def membership_create(*, org, user: User, role: str, actor: Actor, source: str = MembershipSource.MANUAL,
                      status: str = MembershipStatus.INVITED, invited_by: User | None = None) -> Membership:
    """Add a person to the org. By default they are invited: the membership waits for their consent
    (accounts.invitations mails the link) and grants nothing until then. Only a caller that owns
    the account outright (an org's own SCIM creating it, bootstrap, the demo) makes it active."""
    if role not in BUILTIN_ROLES:
        raise Invalid("Unknown role.", fields={"role": ["Unknown role."]})
    if Membership.objects.for_org(org).filter(user=user).exists():
        raise Conflict("This person is already a member.", code="duplicate",
                       fields={"email": ["Already a member of this organization."]})
    membership = _membership_insert(org=org, user=user, role=role, actor=actor, source=source, status=status)
    if status == MembershipStatus.INVITED:
        invitations.invitation_send(membership=membership, actor=actor, invited_by=invited_by)
    return membership


def _membership_insert(*, org, user: User, role: str, actor: Actor, source: str, status: str) -> Membership:
    membership = Membership.objects.create(org=org, user=user, role=role, source=source, status=status)
    audit_record(org=org, actor=actor, event=AuditEvent.MEMBER_ADDED, target=Target.of(membership),
                 data={"email": user.email, "role": role, "source": source, "status": status})
    return membership


def _assert_not_last_owner(membership: Membership, actor: Actor, action: str) -> None:
    """An org never loses its last acting owner, whoever asks (an admin, a directory)."""
    if membership.role != BuiltinRole.OWNER or not membership.can_act:
        return  # an owner who cannot act already counts for nothing: taking them away changes nothing
    # Locked, so that two concurrent demotions (or deprovisionings) of the last two owners cannot
    # each see the other one and both go ahead.
    owners = set(Membership.objects.for_org(membership.org_id).select_for_update()
                 .filter(role=BuiltinRole.OWNER, status__in=ACTING_STATUSES).values_list("pk", flat=True))
    if owners <= {membership.pk}:
        raise Conflict("An organization must keep at least one owner.", code="last_owner",
                       audit=DenialAudit(org=membership.org, actor=actor,
                                         event=AuditEvent.LAST_OWNER_PROTECTED,
                                         target=Target.of(membership), data={"action": action}))


@records_denials
@transaction.atomic
def membership_update(*, membership: Membership, actor: Actor, role: str | None = None,
                      status: str | None = None, audit_as: AuditAs | None = None) -> Membership:
    """Change a member's built-in role and/or status (active, suspended, ...): one audit entry."""
    data = {}
    if role is not None and role != membership.role:
        if role not in BUILTIN_ROLES:
            raise Invalid("Unknown role.", fields={"role": ["Unknown role."]})
        _assert_not_last_owner(membership, actor, "demote")
        data.update(role=role, previous_role=membership.role)
        membership.role = role
    if status is not None and status != membership.status:
        if membership.status == MembershipStatus.INVITED:
            # Only the person makes an invitation a membership (accounts.invitations).
            raise Invalid("This person has not accepted the invitation yet.", code="not_accepted",
                          fields={"status": ["The invitation is still pending."]})
        if status not in ACTING_STATUSES:
            _assert_not_last_owner(membership, actor, "suspend")
        elif membership.deactivated_by_directory:
            # The IdP is the source of truth for this person: an admin lifting a suspension must not
            # bring back someone the directory has switched off.
            raise Invalid("The identity provider has deactivated this person; reactivate them there.",
                          code="directory_deactivated",
                          fields={"status": ["Deactivated by the identity provider (SCIM)."]})
        data.update(status=status, previous_status=membership.status)
        stops_acting = membership.status in ACTING_STATUSES and status not in ACTING_STATUSES
        membership.status = status
        if stops_acting:
            member_standing_lost(membership=membership, actor=actor, reason=f"person_{status}")
    if data:
        membership.save(update_fields=["role", "status"])
        audit_effect(org=membership.org, actor=actor, event=AuditEvent.MEMBER_UPDATED,
                     target=Target.of(membership), data=data, audit_as=audit_as)
    return membership


@records_denials
@transaction.atomic
def membership_remove(*, membership: Membership, actor: Actor) -> None:
    """Take a person out of the org, with every credential they made or hold here."""
    _assert_not_last_owner(membership, actor, "remove")
    member_departed(membership=membership, actor=actor)
    org, target, email, role = membership.org, Target.of(membership), membership.user.email, membership.role
    membership.delete()
    audit_record(org=org, actor=actor, event=AuditEvent.MEMBER_REMOVED, target=target,
                 data={"email": email, "role": role})


@transaction.atomic
def membership_adopt(*, membership: Membership, source: str, actor: Actor, audit_as: AuditAs) -> Membership:
    """A directory takes over an existing membership (an IdP links a person added by hand, or one it
    deprovisioned before): it becomes the directory's. A deprovisioned one is active again (the
    person accepted it once); a pending invitation stays pending."""
    _membership_lock(membership)
    data = {"source": source, "previous_source": membership.source}
    membership.source = source
    if membership.status == MembershipStatus.DEPROVISIONED:
        data.update(status=MembershipStatus.ACTIVE, previous_status=membership.status)
        membership.status = MembershipStatus.ACTIVE
    membership.deactivated_by_directory = False
    membership.save(update_fields=["source", "status", "deactivated_by_directory"])
    audit_effect(org=membership.org, actor=actor, event=AuditEvent.MEMBER_UPDATED,
                 target=Target.of(membership), data=data, audit_as=audit_as)
    return membership


def _membership_lock(membership: Membership) -> Membership:
    locked = Membership.objects.for_org(membership.org_id).select_for_update().get(pk=membership.pk)
    membership.status, membership.role = locked.status, locked.role
    membership.deactivated_by_directory = locked.deactivated_by_directory
    return membership


@transaction.atomic
def membership_directory_deactivate(*, membership: Membership, actor: Actor, audit_as: AuditAs,
                                    action: str = "scim_deprovision") -> bool:
    """The org's directory switches this member off: they stop acting in the org now and only the
    directory can bring them back. True when they were acting until now.

    Only an acting membership becomes deprovisioned: a suspension an admin made stays one, so the
    directory reactivating the person later cannot lift it. The org's last acting owner cannot be
    deprovisioned (Conflict, audited as `action`). The caller records the change (`audit_as`).
    """
    _membership_lock(membership)
    _assert_not_last_owner(membership, actor, action)
    previous = membership.status
    newly = previous in ACTING_STATUSES
    if newly:
        membership.status = MembershipStatus.DEPROVISIONED
    membership.deactivated_by_directory = True
    membership.save(update_fields=["status", "deactivated_by_directory"])
    audit_effect(org=membership.org, actor=actor, event=AuditEvent.MEMBER_UPDATED,
                 target=Target.of(membership),
                 data={"status": membership.status, "previous_status": previous},
                 audit_as=audit_as)
    return newly


@transaction.atomic
def membership_directory_reactivate(*, membership: Membership, actor: Actor, audit_as: AuditAs) -> bool:
    """The directory gives the member back their membership (and the account, if it was switched off
    for want of any acting membership). An admin's suspension stays. True when anything changed."""
    _membership_lock(membership)
    changed = membership.deactivated_by_directory or membership.status == MembershipStatus.DEPROVISIONED
    if membership.status == MembershipStatus.DEPROVISIONED:
        membership.status = MembershipStatus.ACTIVE
    membership.deactivated_by_directory = False
    membership.save(update_fields=["status", "deactivated_by_directory"])
    user = membership.user
    if membership.can_act and not user.is_active:
        user.is_active = True
        user.save(update_fields=["is_active"])
        changed = True
    if changed:
        audit_effect(org=membership.org, actor=actor, event=AuditEvent.MEMBER_UPDATED,
                     target=Target.of(membership), data={"status": membership.status}, audit_as=audit_as)
    return changed


def acting_elsewhere(membership: Membership) -> bool:
    """Whether the person can still act in another org than this membership's."""
    return (Membership.objects.unscoped()  # the person's memberships in every org
            .filter(user_id=membership.user_id,
                    status__in=ACTING_STATUSES).exclude(pk=membership.pk).exists())


@transaction.atomic
def user_deactivate(*, user: User) -> bool:
    """Switch the account off (no sign-in anywhere); the caller records why. True if it was on."""
    if not user.is_active:
        return False
    user.is_active = False
    user.save(update_fields=["is_active"])
    return True


@transaction.atomic
def user_activate(*, user: User) -> bool:
    if user.is_active:
        return False
    user.is_active = True
    user.save(update_fields=["is_active"])
    return True


def login_record_success(*, user: User, method: str = "password") -> None:
    """A completed login, audited. It joins no org: pending invitations wait for an answer."""
    person_record(user=user, event=AuditEvent.LOGIN_SUCCEEDED, data={"method": method})


def login_record_failure(*, reason: str, method: str = "password", user: User | None = None) -> None:
    # Login events belong to no org (the platform chain); data never holds the email or password.
    # A known account's orgs see the attempt on it (the actor stays anonymous: anyone can type an
    # address); an unknown address is the platform's alone.
    person_record(user=user, actor=Actor.anonymous(), event=AuditEvent.LOGIN_FAILED, outcome=Outcome.FAILURE,
                  data={"reason": reason, "method": method}, queued=True)


def logout_record(*, user: User) -> None:
    audit_record(org=None, actor=Actor.for_user(user), event=AuditEvent.LOGOUT)


HISTORY_KEPT = 24  # the most any policy may ask for


@transaction.atomic
def sessions_revoke(*, user: User, reason: str, except_key: str | None = None,
                    actor: Actor | None = None) -> int:
    """End the user's sessions (all, or all but one). They fail on their very next request."""
    sessions = user.sessions.all()
    if except_key:
        sessions = sessions.exclude(session_key=except_key)
    count, _ = sessions.delete()
    if count:
        person_record(user=user, actor=actor, event=AuditEvent.SESSION_REVOKED,
                      data={"reason": reason, "count": count})
    return count


@transaction.atomic
def sessions_revoke_matching(*, user: User, matches, reason: str, actor: Actor | None = None) -> int:
    """End the user's sessions whose key `matches(key)` accepts (an IdP's back-channel logout
    names its sessions by a hash of the key, never the key)."""
    keys = [key for key in user.sessions.values_list("session_key", flat=True) if matches(key)]
    if not keys:
        return 0
    count, _ = user.sessions.filter(session_key__in=keys).delete()
    if count:
        person_record(user=user, actor=actor, event=AuditEvent.SESSION_REVOKED,
                      data={"reason": reason, "count": count})
    return count


@records_denials
@transaction.atomic
def member_sessions_end(*, membership: Membership, actor: Actor) -> int:
    """An admin's "sign out everywhere" for a member: every session of the person loses this org
    until they prove who they are again. Only when this org manages the account (its SCIM created
    it) do the sessions themselves end. Returns the number of sessions affected."""
    if membership.status == MembershipStatus.INVITED:
        raise Conflict("This person has not accepted the invitation; they have no sessions here.",
                       code="not_accepted")
    user = membership.user
    if user.scim_managed_by_id == membership.org_id:
        count = sessions_revoke(user=user, reason="admin_revoke", actor=actor)
        scope = "account"
    else:
        now = timezone.now()
        Membership.objects.for_org(membership.org_id).filter(pk=membership.pk).update(sessions_not_before=now)
        membership.sessions_not_before = now
        count = user.sessions.filter(expire_date__gt=now).count()
        scope = "org"
    audit_record(org=membership.org, actor=actor, event=AuditEvent.MEMBER_SESSIONS_ENDED,
                 target=Target.of(membership), data={"scope": scope, "sessions_revoked": count})
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
    "password_max_age_days", "mfa_required", "lockout_threshold", "lockout_minutes", "sso_required",
    "sso_break_glass",
)

# Whether an org can sign its members in through SSO (an enabled connection): the SSO app adds its
# check in ready(). With none, "SSO required" cannot be switched on (nobody could sign in).
SSO_READY: list = []


@records_denials
@transaction.atomic
def security_policy_set(*, org, actor: Actor, **changes) -> SecurityPolicy:
    """Change the org's security policy; takes effect on each member's next request or login."""
    policy = SecurityPolicy.objects.for_org(org).select_for_update().first() or SecurityPolicy(org=org)
    if changes.get("sso_required") and not policy.sso_required and not any(ready(org) for ready in SSO_READY):
        message = "Set up and enable a single sign-on connection first: nobody could sign in."
        raise Conflict(message, code="sso_not_ready", fields={"sso_required": [message]},
                       audit=DenialAudit(org=org, actor=actor, event=AuditEvent.POLICY_DENIED,
                                         target=Target.of(org), data={"reason": "sso_not_ready"}))
    changed = settings_apply(policy, changes, POLICY_FIELDS)
    audit_record(org=org, actor=actor, event=AuditEvent.POLICY_CHANGED, target=Target.of(org),
                 data={"fields": sorted(changed), "previous": changed})
    return policy
