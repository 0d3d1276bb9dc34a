"""SCIM Users: provisioned, changed and removed by an org's IdP, each change audited with its actor.

One service call is one request's whole transaction: it locks the row, checks If-Match against the
locked version (so two IdP requests racing on one resource cannot both win), computes the new state
(a PATCH is applied to the locked row by the protocol's `change`), bumps the version and hands the
access consequences to scim.mappings and scim.deprovisioning. People, memberships and passwords
are changed only through accounts' effect services. Refusals are domain errors (core.errors);
scim.protocol.errors turns them into RFC 7644 errors.
"""

import uuid

from django.db import IntegrityError, transaction

from accounts import services as accounts
from accounts.models import Membership, MembershipSource, MembershipStatus, User, normalize_email
from accounts.passwords import PLACEHOLDER_EMAIL_DOMAIN
from accounts.selectors import shared_with_other_org
from audit.actors import Actor
from audit.events import AuditEvent, Outcome
from audit.services import AuditAs, Target, audit_record
from core.errors import Conflict, DenialAudit, Invalid, NotFound
from core.roles import BuiltinRole
from scim import deprovisioning
from scim.indexes import address_index, multi_index
from scim.models import ScimGroup, ScimGroupMember, ScimUser
from scim.usernames import key_fits, user_name_key

USER_MODEL_FIELDS = ("user_name", "external_id", "active", "display_name", "nick_name", "profile_url",
                     "title", "user_type", "preferred_language", "locale", "time_zone", "name", "emails",
                     "phone_numbers", "addresses", "enterprise")
SCIM_NAMES = {"user_name": "userName", "external_id": "externalId", "display_name": "displayName",
              "nick_name": "nickName", "profile_url": "profileUrl", "user_type": "userType",
              "preferred_language": "preferredLanguage", "time_zone": "timezone",
              "phone_numbers": "phoneNumbers", "enterprise": "enterprise"}


def uniqueness(detail: str) -> Conflict:
    return Conflict(detail, code="uniqueness")


def missing(org, actor: Actor, model, pk, *, resource: str, method: str) -> NotFound:
    """The 404 for an id this org does not have: the same body whether it never existed or is
    another org's, but a write aimed at another org's resource is on record in the caller's org."""
    audit = None
    if method != "GET" and model.objects.unscoped().filter(pk=pk).exists():  # another org's
        audit = DenialAudit(org=org, actor=actor, event=AuditEvent.SCIM_CROSS_TENANT_DENIED,
                            target=Target(resource.lower().rstrip("s"), str(pk)),
                            data={"method": method, "resource": resource, "id": str(pk)})
    return NotFound(f"{resource.rstrip('s')} not found.", audit=audit)


def _primary_email(fields: dict) -> str:
    emails = fields["emails"]
    chosen = (next((e for e in emails if e.get("primary")), None)
              or next((e for e in emails if str(e.get("type", "")).lower() == "work"), None)
              or (emails[0] if emails else None))
    if chosen:
        return normalize_email(chosen["value"])
    if "@" in fields["user_name"]:
        return normalize_email(fields["user_name"])
    return ""


def _user_name_taken(org, key: str, exclude=None) -> bool:
    taken = ScimUser.objects.for_org(org).filter(user_name_key=key)
    if exclude is not None:
        taken = taken.exclude(pk=exclude.pk)
    return taken.exists()


def _new_user_name_key(org, user_name: str, exclude=None) -> str:
    """The key a row takes with this userName: refused when another row of the org holds it (the
    unique index refuses it too, when two requests race)."""
    key = user_name_key(user_name)
    if not key_fits(key):
        raise Invalid("userName is too long once normalised.")
    if _user_name_taken(org, key, exclude=exclude):
        raise uniqueness("userName is already in use in this organization.")
    return key


def _assign(scim_user: ScimUser, fields: dict) -> list[str]:
    changed = []
    if scim_user.user_name != fields["user_name"]:  # the caller has checked the new key
        scim_user.user_name_key = user_name_key(fields["user_name"])
    for field in USER_MODEL_FIELDS:
        if getattr(scim_user, field) != fields[field]:
            changed.append(SCIM_NAMES.get(field, field))
            setattr(scim_user, field, fields[field])
    scim_user.email_index = multi_index(scim_user.emails)
    scim_user.phone_index = multi_index(scim_user.phone_numbers)
    scim_user.address_index = address_index(scim_user.addresses)
    return changed


def _set_password(user: User, org, actor: Actor, password: str, *, strict: bool) -> bool:
    """Set a password an IdP sent; True when it changed.

    A password the account already has changes nothing (Okta repeats it in every PUT). An explicit
    change (`strict`: a PATCH naming the password) that the policy refuses, or that targets an
    account another org shares, is a 400. In a create or a full PUT the same password is left out
    and the refusal audited instead: Okta sends a random placeholder password with every create,
    even when it does not sync passwords, and refusing the user for it would stop provisioning.
    """
    # A person's password is theirs across every org. Only the org whose SCIM created the account
    # may set it, and only while the account is in no other org; asked first, so that nothing
    # about an account this org does not manage (such as whether a guess is its password) leaks.
    if user.scim_managed_by_id != org.pk or shared_with_other_org(user, org):
        if strict:
            raise Invalid("This account's password is not managed by this organization.",
                          code="password_not_managed")
        _password_ignored(org, actor, user, ["not_managed_here"])
        return False
    if user.has_usable_password() and user.check_password(password):
        return False
    try:
        with transaction.atomic():
            accounts.password_set(user=user, new_password=password, reason="scim")
    except Invalid as exc:
        messages = [m for values in (exc.fields or {}).values() for m in values]
        if strict:
            raise Invalid("The password does not meet the policy: " + " ".join(messages),
                          code="password_policy")
        _password_ignored(org, actor, user, [exc.code or "password_rejected"])
        return False
    return True


def _password_ignored(org, actor: Actor, user: User, reasons: list[str]) -> None:
    audit_record(org=org, actor=actor, event=AuditEvent.PASSWORD_REJECTED, outcome=Outcome.DENIED,
                 target=Target.of(user), data={"reasons": reasons})


def user_create(*, org, actor: Actor, fields: dict) -> ScimUser:
    try:
        return _user_create(org=org, actor=actor, fields=fields)
    except IntegrityError:  # a concurrent request created the same person or userName first
        raise uniqueness("This person or userName was just provisioned by another request.")


@transaction.atomic
def _user_create(*, org, actor: Actor, fields: dict) -> ScimUser:
    _new_user_name_key(org, fields["user_name"])
    email = _primary_email(fields)
    user = User.objects.filter(email=email).first() if email else None
    linked = user is not None
    if user is None:
        # No address at all: a placeholder in the reserved .invalid domain; such an account can
        # only ever sign in by single sign-on.
        email = email or f"scim+{uuid.uuid4().hex}@{PLACEHOLDER_EMAIL_DOMAIN}"
        user = accounts.user_create(email=email, display_name=fields["display_name"][:150],
                                    scim_managed_by=org)
    membership = Membership.objects.for_org(org).select_for_update().filter(user=user).first()
    if membership is not None and ScimUser.objects.for_org(org).filter(membership=membership).exists():
        raise uniqueness("This person is already provisioned in this organization.")
    created = AuditAs(within=AuditEvent.SCIM_USER_CREATED)  # written below, naming the link
    if membership is None:
        # An account this org's IdP just created is the org's own: active at once. One that existed
        # already is someone's: they are invited and join only when they accept (consent).
        status = MembershipStatus.INVITED if linked else MembershipStatus.ACTIVE
        membership = accounts.membership_create(org=org, user=user, role=BuiltinRole.MEMBER, actor=actor,
                                                status=status, source=MembershipSource.SCIM)
    else:
        accounts.membership_adopt(membership=membership, source=MembershipSource.SCIM, actor=actor,
                                  audit_as=created)
    scim_user = ScimUser(org=org, membership=membership)
    _assign(scim_user, fields)
    scim_user.save()
    # After the membership exists, so that this org's password policy applies.
    if fields.get("password"):
        _set_password(user, org, actor, fields["password"], strict=False)
    active = fields["active"] is not False
    if active and (not linked or membership.can_act):
        # Switching an account on is for its own org's directory, or one the person has joined:
        # a pending invitation gives this org no say over the account.
        accounts.user_activate(user=user)
    audit_record(org=org, actor=actor, event=AuditEvent.SCIM_USER_CREATED, target=Target.of(scim_user),
                 data={"user_name": scim_user.user_name, "external_id": scim_user.external_id,
                       "email": user.email, "linked": linked})
    if not active:
        _deactivate(scim_user, actor)
    return scim_user


def _deactivate(scim_user: ScimUser, actor: Actor) -> None:
    audit_record(org=scim_user.org, actor=actor, event=AuditEvent.SCIM_USER_DEACTIVATED,
                 target=Target.of(scim_user), data={"user_name": scim_user.user_name, "how": "active_false"})
    deprovisioning.deprovision(scim_user=scim_user, actor=actor, how="deactivated")


def user_locked(org, actor: Actor, pk, method: str) -> ScimUser:
    scim_user = (ScimUser.objects.for_org(org).select_for_update().select_related("membership__user")
                 .filter(pk=pk).first())
    if scim_user is None:
        raise missing(org, actor, ScimUser, pk, resource="Users", method=method)
    return scim_user


@transaction.atomic
def user_update(*, org, actor: Actor, pk, change, accepts, method: str) -> ScimUser:
    """PUT and PATCH: `change(locked user)` gives the whole new User (for a PATCH, the operations
    applied to the locked row; for a PUT, the body), and `accepts` reads If-Match."""
    scim_user = user_locked(org, actor, pk, method)
    scim_user.version_check(accepts)
    fields = change(scim_user)
    # An unchanged userName is never checked again, so a row left without a key by scim 0009 (it
    # collided with an older one) can still be changed, deactivated above all.
    if fields["user_name"] != scim_user.user_name:
        _new_user_name_key(org, fields["user_name"], exclude=scim_user)
    was_active = scim_user.is_active
    changed = _assign(scim_user, fields)
    if fields.get("password") and _set_password(scim_user.membership.user, org, actor, fields["password"],
                                                strict=method == "PATCH"):
        changed.append("password")
    if not changed:
        return scim_user
    scim_user.touch()
    try:
        with transaction.atomic():
            scim_user.save()
    except IntegrityError:
        raise uniqueness("userName is already in use in this organization.")
    audit_record(org=org, actor=actor, event=AuditEvent.SCIM_USER_UPDATED, target=Target.of(scim_user),
                 data={"user_name": scim_user.user_name, "fields": sorted(changed), "method": method})
    if was_active and not scim_user.is_active:
        _deactivate(scim_user, actor)
    elif scim_user.is_active and not was_active:
        deprovisioning.reactivate(scim_user=scim_user, actor=actor)
    return scim_user


@transaction.atomic
def user_delete(*, org, actor: Actor, pk, accepts) -> None:
    # Groups first, then the user: the order group updates take them in, so the two cannot deadlock.
    groups = list(ScimGroup.objects.for_org(org).filter(members__pk=pk).select_for_update().order_by("pk"))
    scim_user = user_locked(org, actor, pk, "DELETE")
    scim_user.version_check(accepts)
    # The directory's decision outlives the SCIM row: an admin may remove the membership, but only
    # the directory (provisioning the person again) brings them back.
    deprovisioning.deprovision(scim_user=scim_user, actor=actor, how="deleted")
    ScimGroupMember.objects.filter(user=scim_user).delete()
    for group in groups:
        group.touch()
        group.save(update_fields=["version", "updated_at"])
    audit_record(org=org, actor=actor, event=AuditEvent.SCIM_USER_DELETED, target=Target.of(scim_user),
                 data={"user_name": scim_user.user_name})
    scim_user.delete()

