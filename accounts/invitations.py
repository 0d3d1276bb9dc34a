"""Invitations: a membership someone else created is the person's to accept.

Adding an address to an org (by hand, or by an IdP linking an account that already exists) makes an
`invited` membership and mails the person a single-use, expiring link. Until they accept, the
membership grants nothing, applies none of the org's policy, shows nothing of the account beyond the
address typed, and cannot end their sessions (accounts.models.ACTING_STATUSES holds only `active`).
They accept from the link (setting a first password there if they have none) or, signed in, from the
banner every page shows; they may also decline. Admins resend or cancel.

An account created by another org's SCIM carries a password that org's IdP chose: accepting it by
being signed in would let that org's admin join this org as the person. Such an account accepts only
from the emailed link, which proves the mailbox, and accepting releases it (account_claim).

Links are stored as the SHA-256 of 32 random bytes (as reset links are) and consumed by one
conditional UPDATE, so two parallel acceptances get exactly one success.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import Invitation, Membership, MembershipStatus, User
from accounts.tasks import account_mail_send
from audit.actors import Actor
from audit.events import AuditEvent
from audit.services import Target, audit_record, records_denials
from core.errors import Conflict, DenialAudit, Invalid, NotFound, ServiceError
from core.secrets import link_secret, link_secret_hash


def ttl_seconds() -> int:
    return getattr(settings, "IAM_INVITATION_TTL_SECONDS", 7 * 24 * 3600)


class InvitationRejected(ServiceError):
    """The link is unknown, used, expired or cancelled. `code` is the audited reason."""

    status = 400


def invitation_link(raw: str) -> str:
    # From configuration only: a forged Host must never steer the link elsewhere.
    return settings.IAM_CANONICAL_ORIGIN.rstrip("/") + reverse("accounts:invitation", kwargs={"token": raw})


# --- sending --------------------------------------------------------------------------------------


@transaction.atomic
def invitation_send(*, membership: Membership, actor: Actor, invited_by=None) -> Invitation:
    """(Re)issue the membership's link and mail it: a new secret, a new expiry; an older link dies."""
    if membership.status != MembershipStatus.INVITED:
        raise Conflict("This person has already accepted.", code="not_invited")
    raw, digest = link_secret()
    now = timezone.now()
    expires = now + timedelta(seconds=ttl_seconds())
    invitation = Invitation.objects.for_org(membership.org_id).filter(membership=membership).first()
    resend = invitation is not None
    if invitation is None:
        invitation = Invitation(org_id=membership.org_id, membership=membership, invited_by=invited_by,
                                created_at=now, sent_count=0)
    if invited_by is not None:  # whoever sends it now is the person who stands behind it
        invitation.invited_by = invited_by
    invitation.token_hash, invitation.sent_at, invitation.expires_at = digest, now, expires
    invitation.sent_count += 1
    invitation.used_at = None
    invitation.save()
    email = membership.user.email
    audit_record(org=membership.org, actor=actor, event=AuditEvent.INVITATION_SENT,
                 target=Target.of(membership),
                 data={"email": email, "role": membership.role, "expires_at": expires, "resend": resend})
    body = (
        f"You have been invited to join {membership.org.name} on Agent IAM.\n\n"
        f"Accept the invitation here within {ttl_seconds() // 86400 or 1} days:\n{invitation_link(raw)}\n\n"
        "The link works once. If you do not know this organization, ignore this mail: nothing changes "
        "until you accept.\n"
    )
    subject = f"You are invited to {membership.org.name}"
    # Queued once the invitation is committed: a rolled-back request mails nothing.
    transaction.on_commit(lambda: account_mail_send.delay(email, subject, body))
    return invitation


@records_denials
@transaction.atomic
def invitation_cancel(*, membership: Membership, actor: Actor) -> None:
    """Withdraw a pending invitation: the membership goes, as if it had never been offered."""
    membership = _locked(membership)
    if membership.status != MembershipStatus.INVITED:
        raise Conflict("This person has already accepted; remove the member instead.", code="not_invited")
    email = membership.user.email
    org, target = membership.org, Target.of(membership)
    membership.delete()
    audit_record(org=org, actor=actor, event=AuditEvent.INVITATION_CANCELLED, target=target,
                 data={"email": email})


# --- the person's answer --------------------------------------------------------------------------


def invitation_rejected(reason: str, invitation: Invitation | None = None) -> InvitationRejected:
    user = invitation.membership.user if invitation else None
    return InvitationRejected(
        "This invitation link has expired or has already been used.", code=reason,
        audit=DenialAudit(org=invitation.membership.org if invitation else None,
                          actor=Actor.for_user(user) if user else Actor.anonymous(),
                          event=AuditEvent.INVITATION_REJECTED,
                          target=Target.of(invitation.membership) if invitation else None,
                          data={"reason": reason}),
    )


def _find(raw: str) -> Invitation:
    invitation = (Invitation.objects.unscoped()  # the link names its own org
                  .select_related("membership__user", "membership__org")
                  .filter(token_hash=link_secret_hash(raw)).first() if raw else None)
    if invitation is None:
        raise invitation_rejected("unknown")
    if invitation.used_at is not None or invitation.membership.status != MembershipStatus.INVITED:
        raise invitation_rejected("used", invitation)
    if invitation.expires_at <= timezone.now() or not invitation.membership.user.is_active:
        raise invitation_rejected("expired", invitation)
    if invitation.membership.deactivated_by_directory:  # the org's IdP switched the person off since
        raise invitation_rejected("directory_deactivated", invitation)
    return invitation


@records_denials
def invitation_check(*, raw: str) -> Invitation:
    """The invitation a link is good for, or InvitationRejected (audited) when it is not."""
    return _find(raw)


def needs_password(invitation: Invitation) -> bool:
    """Whether accepting from the link must also set the account's first password: the account has
    none, or its only password was set by another org's IdP (and goes when it is released)."""
    user, org_id = invitation.membership.user, invitation.membership.org_id
    claimed = user.scim_managed_by_id is not None and user.scim_managed_by_id != org_id
    return claimed or not user.has_usable_password()


@records_denials
@transaction.atomic
def invitation_accept(*, raw: str, new_password: str | None = None) -> Membership:
    """Accept from the emailed link. Returns the now active membership."""
    from accounts import services  # services imports this module for membership_create

    invitation = _find(raw)
    must_set = needs_password(invitation)
    if must_set and not new_password:
        raise Invalid("Choose a password for your account.", code="password_required",
                      fields={"new_password": ["Choose a password for your account."]})
    if not _consume(invitation):
        raise invitation_rejected("used", invitation)
    membership = invitation.membership
    user = membership.user
    actor = Actor.for_user(user)
    services.account_claim(user=user, org=membership.org, actor=actor)
    if must_set:
        services.password_set(user=user, new_password=new_password, reason="invitation")
    return _activate(membership, actor, via="link")


@records_denials
@transaction.atomic
def invitation_accept_signed_in(*, user: User, membership: Membership) -> Membership:
    """Accept from the banner, signed in as the invited account."""
    membership = _mine(user, membership)
    if user.scim_managed_by_id is not None and user.scim_managed_by_id != membership.org_id:
        raise Invalid("Accept this invitation from the link we mailed you.", code="link_required")
    if membership.deactivated_by_directory:
        raise Conflict("The organization's identity provider has switched you off there.",
                       code="directory_deactivated")
    invitation = Invitation.objects.for_org(membership.org_id).filter(membership=membership).first()
    if invitation is not None and not _consume(invitation):
        raise Conflict("This invitation was already answered.", code="not_invited")
    return _activate(membership, Actor.for_user(user), via="signed_in")


@records_denials
@transaction.atomic
def invitation_decline_link(*, raw: str) -> None:
    """Decline from the emailed link: the membership goes."""
    invitation = _find(raw)
    if not _consume(invitation):
        raise invitation_rejected("used", invitation)
    _decline(_locked(invitation.membership))


@records_denials
@transaction.atomic
def invitation_decline(*, user: User, membership: Membership) -> None:
    """The person says no, signed in: the membership goes. An account another org's SCIM manages
    answers only from the mailed link (that org's admins may know its password)."""
    membership = _mine(user, membership)
    if user.scim_managed_by_id is not None and user.scim_managed_by_id != membership.org_id:
        raise Invalid("Answer this invitation from the link we mailed you.", code="link_required")
    _decline(membership)


def _decline(membership: Membership) -> None:
    user = membership.user
    org, target, email = membership.org, Target.of(membership), user.email
    membership.delete()
    audit_record(org=org, actor=Actor.for_user(user), event=AuditEvent.INVITATION_DECLINED, target=target,
                 data={"email": email})


def _mine(user: User, membership: Membership) -> Membership:
    """The caller's own pending invitation (anyone else's is not found)."""
    if membership.user_id != user.pk:
        raise NotFound("No such invitation.")
    membership = _locked(membership)
    if membership.status != MembershipStatus.INVITED:
        raise Conflict("This invitation was already answered.", code="not_invited")
    return membership


def _locked(membership: Membership) -> Membership:
    return Membership.objects.for_org(membership.org_id).select_for_update().select_related(
        "user", "org").get(pk=membership.pk)


def _consume(invitation: Invitation) -> bool:
    """One conditional UPDATE: of parallel acceptances exactly one changes the row."""
    now = timezone.now()
    return Invitation.objects.for_org(invitation.org_id).filter(
        pk=invitation.pk, used_at__isnull=True, expires_at__gt=now).update(used_at=now) == 1


def _activate(membership: Membership, actor: Actor, *, via: str) -> Membership:
    membership = _locked(membership)
    membership.status = MembershipStatus.ACTIVE
    membership.save(update_fields=["status"])
    audit_record(org=membership.org, actor=actor, event=AuditEvent.MEMBER_UPDATED,
                 target=Target.of(membership),
                 data={"status": MembershipStatus.ACTIVE, "previous_status": MembershipStatus.INVITED})
    audit_record(org=membership.org, actor=actor, event=AuditEvent.INVITATION_ACCEPTED,
                 target=Target.of(membership), data={"email": membership.user.email, "via": via})
    return membership


# --- reads ----------------------------------------------------------------------------------------


def invitations_pending_for(user) -> list[Membership]:
    """The person's unanswered invitations, for the banner. One query. An account another org's
    SCIM manages sees none there: those are answered from the mailed link only, and that org's
    admins, who may know the account's password, must not read or answer them."""
    if not getattr(user, "is_authenticated", False):
        return []
    pending = (Membership.objects.unscoped()  # the person's own memberships in every org
               .filter(user=user, status=MembershipStatus.INVITED).select_related("org")
               .order_by("created_at"))
    if user.scim_managed_by_id is not None:
        pending = pending.filter(org_id=user.scim_managed_by_id)
    return list(pending)


def invitation_of(user, pk) -> Membership | None:
    """One of the person's own memberships by id (another person's is not found)."""
    return (Membership.objects.unscoped()  # the caller's own memberships in every org
            .select_related("org", "user").filter(pk=pk, user=user).first())


def invitation_for(membership: Membership) -> Invitation | None:
    return Invitation.objects.for_org(membership.org_id).filter(membership=membership).first()
