"""Reads about one member for the member pages: their sessions, their audit trail in the org, and
what removing them would do to the credentials accounts keeps (API keys). One query each."""

from django.db.models import Q
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import ApiKey, Membership, MembershipStatus, WebAuthnCredential
from audit.models import AuditEntry

TRAIL_ROWS = 20
SESSION_ROWS = 20


def second_factor_enrolled() -> Q:
    """Memberships whose person has a confirmed second factor (an authenticator app or a passkey)."""
    return (Q(user__in=TOTPDevice.objects.filter(confirmed=True).values("user"))
            | Q(user__in=WebAuthnCredential.objects.filter(confirmed=True).values("user")))


MFA_FILTERS = ("none", "enrolled")


def member_filter(*, role="", status="", source="", mfa="") -> Q:
    """The members lists' filters (the page's and the API's) as one condition: by built-in role,
    status, how they joined, and whether they have a second factor (`mfa`: none or enrolled)."""
    match = Q(**{name: value for name, value in (("role", role), ("status", status), ("source", source))
                 if value})
    if mfa == "none":
        match &= ~second_factor_enrolled()
    elif mfa == "enrolled":
        match &= second_factor_enrolled()
    return match


def member_audit_trail(membership: Membership, limit: int = TRAIL_ROWS) -> list:
    """The org's latest entries where the member is the actor or the target, newest first. A pending
    invitation shows only what was done to the membership: the account is not the org's to follow."""
    about = Q(target_type="membership", target_id=str(membership.pk))
    if membership.status != MembershipStatus.INVITED:
        person = str(membership.user_id)
        about |= Q(actor_type="human", actor_id=person) | Q(target_type="user", target_id=person)
    return list(AuditEntry.objects.for_org(membership.org_id).filter(about).order_by("-seq")[:limit])


def member_sessions(membership: Membership, limit: int = SESSION_ROWS) -> list:
    """The person's unexpired browser sessions (a session is the person's, in every org they act in),
    most recently seen first. Never their keys."""
    return list(membership.user.sessions.filter(expire_date__gt=timezone.now())
                .order_by("-last_seen_at")[:limit])


def api_keys_live_made_by(membership: Membership) -> int:
    """The live API keys the member made in the org: what their leaving revokes
    (accounts.api_keys.api_keys_revoke_created_by)."""
    return (ApiKey.objects.for_org(membership.org_id)
            .filter(created_by_id=membership.user_id, revoked_at__isnull=True).count())


def member_session_count(membership: Membership) -> int:
    """How many unexpired browser sessions the person has (in every org they act in)."""
    return membership.user.sessions.filter(expire_date__gt=timezone.now()).count()
