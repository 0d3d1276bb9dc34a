"""Writes behind the SCIM protocol: users and groups, each change audited with the SCIM actor.

Each function runs in one transaction, locks the row it changes, checks `If-Match` against the
locked version (so two IdP requests racing on one resource cannot both win), bumps `version`, and
hands access consequences to scim.provisioning (group mappings, deprovisioning, reactivation).
"""

import uuid

from django.db import IntegrityError, transaction
from django.db.models.functions import Lower
from django.utils import timezone

from accounts import services as accounts
from accounts.models import Membership, MembershipSource, MembershipStatus, User, normalize_email
from accounts.passwords import PLACEHOLDER_EMAIL_DOMAIN
from accounts.selectors import shared_with_other_org
from audit.actors import Actor
from audit.events import AuditEvent, Outcome
from audit.services import AuditAs, Target, audit_record
from core.errors import Conflict, Invalid
from core.roles import BuiltinRole
from scim import deprovisioning, mappings
from scim.models import GroupMapping, ScimGroup, ScimGroupMember, ScimUser
from scim.protocol.errors import ScimError, not_found
from scim.protocol.ids import id_key, uuid_or_none
from scim.protocol.resources import address_index, etag, multi_index

AUDITED_IDS = 100  # member ids listed in one audit entry; the counts are always exact

USER_MODEL_FIELDS = ("user_name", "external_id", "active", "display_name", "nick_name", "profile_url",
                     "title", "user_type", "preferred_language", "locale", "time_zone", "name", "emails",
                     "phone_numbers", "addresses", "enterprise")
SCIM_NAMES = {"user_name": "userName", "external_id": "externalId", "display_name": "displayName",
              "nick_name": "nickName", "profile_url": "profileUrl", "user_type": "userType",
              "preferred_language": "preferredLanguage", "time_zone": "timezone",
              "phone_numbers": "phoneNumbers", "enterprise": "enterprise"}


def check_version(obj, if_match: str | None) -> None:
    """RFC 7644 §3.14: a stale `If-Match` is 412 and changes nothing. `*` matches anything."""
    if if_match is None:
        return
    tags = [t.strip() for t in if_match.split(",")]
    current = etag(obj.version)
    if "*" not in tags and current not in tags and current.removeprefix("W/") not in tags:
        raise ScimError(412, "The resource has changed since that version.")


def _touch(obj) -> None:
    obj.version += 1
    obj.updated_at = timezone.now()


# --- users ------------------------------------------------------------------------------------------

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


def _user_name_taken(org, user_name: str, exclude=None) -> bool:
    taken = ScimUser.objects.for_org(org).annotate(l=Lower("user_name")).filter(l=user_name.lower())
    if exclude is not None:
        taken = taken.exclude(pk=exclude.pk)
    return taken.exists()


def _uniqueness(detail: str) -> ScimError:
    return ScimError(409, detail, "uniqueness")


def _assign(scim_user: ScimUser, fields: dict) -> list[str]:
    changed = []
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
            raise ScimError(400, "This account's password is not managed by this organization.",
                            "mutability")
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
            raise ScimError(400, "The password does not meet the policy: " + " ".join(messages),
                            "invalidValue")
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
        raise _uniqueness("This person or userName was just provisioned by another request.")


@transaction.atomic
def _user_create(*, org, actor: Actor, fields: dict) -> ScimUser:
    if _user_name_taken(org, fields["user_name"]):
        raise _uniqueness("userName is already in use in this organization.")
    email = _primary_email(fields)
    user = User.objects.filter(email=email).first() if email else None
    linked = user is not None
    if user is None:
        # No address at all: a placeholder in the reserved .invalid domain; such an account can
        # only ever sign in by single sign-on.
        email = email or f"scim+{uuid.uuid4().hex}@{PLACEHOLDER_EMAIL_DOMAIN}"
        user = accounts.user_get_or_create(email=email, display_name=fields["display_name"][:150],
                                           scim_managed_by=org)
    membership = Membership.objects.for_org(org).select_for_update().filter(user=user).first()
    if membership is not None and ScimUser.objects.for_org(org).filter(membership=membership).exists():
        raise _uniqueness("This person is already provisioned in this organization.")
    created = AuditAs(within=AuditEvent.SCIM_USER_CREATED)  # written below, naming the link
    if membership is None:
        membership = accounts.membership_create(org=org, user=user, role=BuiltinRole.MEMBER, actor=actor,
                                                status=MembershipStatus.INVITED, source=MembershipSource.SCIM)
    else:
        accounts.membership_adopt(membership=membership, source=MembershipSource.SCIM, actor=actor,
                                  audit_as=created)
    scim_user = ScimUser(org=org, membership=membership)
    _assign(scim_user, fields)
    scim_user.save()
    # After the membership exists, so that this org's password policy applies.
    if fields.get("password"):
        _set_password(user, org, actor, fields["password"], strict=False)
    if membership.status == MembershipStatus.INVITED and user.has_usable_password():
        accounts.membership_update(membership=membership, status=MembershipStatus.ACTIVE, actor=actor,
                                   audit_as=created)
    active = fields["active"] is not False
    if active:
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
    _deprovision(scim_user, actor, "deactivated")


def _deprovision(scim_user: ScimUser, actor: Actor, how: str) -> None:
    try:
        deprovisioning.deprovision(scim_user=scim_user, actor=actor, how=how)
    except Conflict as exc:  # the org's last owner: the whole request is refused, nothing changes
        error = ScimError(409, exc.detail, "mutability")
        error.denial = exc.audit  # written by the view once the transaction has rolled back
        raise error


def user_locked(org, pk) -> ScimUser:
    scim_user = (ScimUser.objects.for_org(org).select_for_update().select_related("membership__user")
                 .filter(pk=pk).first())
    if scim_user is None:
        raise not_found("User")
    return scim_user


@transaction.atomic
def user_replace(*, org, actor: Actor, pk, fields: dict, if_match: str | None, method: str) -> ScimUser:
    scim_user = user_locked(org, pk)
    check_version(scim_user, if_match)
    if (fields["user_name"].lower() != scim_user.user_name.lower()
            and _user_name_taken(org, fields["user_name"], exclude=scim_user)):
        raise _uniqueness("userName is already in use in this organization.")
    was_active = scim_user.is_active
    changed = _assign(scim_user, fields)
    if fields.get("password") and _set_password(scim_user.membership.user, org, actor, fields["password"],
                                                strict=method == "PATCH"):
        changed.append("password")
    if not changed:
        return scim_user
    _touch(scim_user)
    try:
        with transaction.atomic():
            scim_user.save()
    except IntegrityError:
        raise _uniqueness("userName is already in use in this organization.")
    audit_record(org=org, actor=actor, event=AuditEvent.SCIM_USER_UPDATED, target=Target.of(scim_user),
                 data={"user_name": scim_user.user_name, "fields": sorted(changed), "method": method})
    if was_active and not scim_user.is_active:
        _deactivate(scim_user, actor)
    elif scim_user.is_active and not was_active:
        deprovisioning.reactivate(scim_user=scim_user, actor=actor)
    return scim_user


@transaction.atomic
def user_delete(*, org, actor: Actor, pk, if_match: str | None) -> None:
    # Groups first, then the user: the order group updates take them in, so the two cannot deadlock.
    groups = list(ScimGroup.objects.for_org(org).filter(members__pk=pk).select_for_update().order_by("pk"))
    scim_user = user_locked(org, pk)
    check_version(scim_user, if_match)
    _deprovision(scim_user, actor, "deleted")
    ScimGroupMember.objects.filter(user=scim_user).delete()
    for group in groups:
        _touch(group)
        group.save(update_fields=["version", "updated_at"])
    audit_record(org=org, actor=actor, event=AuditEvent.SCIM_USER_DELETED, target=Target.of(scim_user),
                 data={"user_name": scim_user.user_name})
    scim_user.delete()


# --- groups -----------------------------------------------------------------------------------------

def _group_name_taken(org, name: str, exclude=None) -> bool:
    taken = ScimGroup.objects.for_org(org).annotate(l=Lower("display_name")).filter(l=name.lower())
    if exclude is not None:
        taken = taken.exclude(pk=exclude.pk)
    return taken.exists()


def members_resolve(org, actor: Actor, ids) -> list[ScimUser]:
    """The org's users with these ids; 404 (the same body as for a missing user) for any other,
    marked for the audit log when the id is another org's."""
    wanted, parsed = list(dict.fromkeys(str(i) for i in ids)), {}
    for raw in wanted:
        parsed[raw] = uuid_or_none(raw)
        if parsed[raw] is None:
            raise not_found("Member")
    found = {str(u.pk): u for u in ScimUser.objects.for_org(org).filter(pk__in=list(parsed.values()))}
    for raw, value in parsed.items():
        if str(value) not in found:
            error = not_found("Member")
            if ScimUser.objects.unscoped().filter(pk=value).exists():  # another org's user
                error.cross_tenant = ("member", raw)  # audited by the view, after the rollback
            raise error
    return [found[str(parsed[raw])] for raw in wanted]


def _known_users(org, ids) -> list[ScimUser]:
    valid = [parsed for parsed in map(uuid_or_none, ids) if parsed]
    return list(ScimUser.objects.for_org(org).filter(pk__in=valid))


def _members_change(org, actor: Actor, group: ScimGroup, add: list[ScimUser], remove: list[ScimUser],
                    displays: dict | None = None):
    displays = displays or {}
    add_ids = {u.pk for u in add} - set(ScimGroupMember.objects.filter(group=group).values_list(
        "user_id", flat=True).filter(user_id__in=[u.pk for u in add]))
    added = [u for u in add if u.pk in add_ids]
    ScimGroupMember.objects.bulk_create(
        [ScimGroupMember(group=group, user=u, display=displays.get(str(u.pk), "")) for u in added],
        ignore_conflicts=True)
    removed_ids = set(ScimGroupMember.objects.filter(group=group, user_id__in=[u.pk for u in remove])
                      .values_list("user_id", flat=True))
    ScimGroupMember.objects.filter(group=group, user_id__in=removed_ids).delete()
    removed = [u for u in remove if u.pk in removed_ids]
    if GroupMapping.objects.for_org(org).filter(group=group).exists():  # else no grant can change
        for scim_user in {u.pk: u for u in added + removed}.values():
            mappings.mappings_reconcile(scim_user=scim_user, actor=actor)
    return added, removed


def _displays(members: list[tuple[str, str]]) -> dict:
    return {str(i).lower(): display for i, display in members if display}


def _ids(users: list[ScimUser]) -> list[str]:
    return [str(u.pk) for u in users[:AUDITED_IDS]]


def group_create(*, org, actor: Actor, fields: dict) -> ScimGroup:
    try:
        return _group_create(org=org, actor=actor, fields=fields)
    except IntegrityError:
        raise _uniqueness("A group with this displayName was just created by another request.")


@transaction.atomic
def _group_create(*, org, actor: Actor, fields: dict) -> ScimGroup:
    if _group_name_taken(org, fields["display_name"]):
        raise _uniqueness("A group with this displayName exists.")
    members = members_resolve(org, actor, [i for i, _ in fields["members"]])
    try:
        with transaction.atomic():
            group = ScimGroup.objects.create(org=org, display_name=fields["display_name"],
                                             external_id=fields["external_id"])
    except IntegrityError:
        raise _uniqueness("A group with this displayName exists.")
    _members_change(org, actor, group, members, [], _displays(fields["members"]))
    audit_record(org=org, actor=actor, event=AuditEvent.SCIM_GROUP_CREATED, target=Target.of(group),
                 data={"display_name": group.display_name, "members": len(members)})
    return group


def group_locked(org, pk) -> ScimGroup:
    group = ScimGroup.objects.for_org(org).select_for_update().filter(pk=pk).first()
    if group is None:
        raise not_found("Group")
    return group


@transaction.atomic
def group_update(*, org, actor: Actor, pk, fields: dict, if_match: str | None, method: str,
                 replace_members: list | None = None, add: list | None = None, remove: list | None = None,
                 remove_all: bool = False) -> ScimGroup:
    """PUT (replace_members) and PATCH: with `replace_members` the members become
    (replace_members ∪ add) − remove; without it `add` are added and `remove` removed."""
    group = group_locked(org, pk)
    check_version(group, if_match)
    changed = []
    if fields["display_name"] != group.display_name:
        if _group_name_taken(org, fields["display_name"], exclude=group):
            raise _uniqueness("A group with this displayName exists.")
        group.display_name = fields["display_name"]
        changed.append("displayName")
    if fields["external_id"] != group.external_id:
        group.external_id = fields["external_id"]
        changed.append("externalId")
    if remove_all:  # older callers; the same as replacing the members with none
        replace_members = []
    add, remove = add or [], [id_key(i) for i in remove or []]
    displays = _displays(add + (replace_members or []))
    if replace_members is not None:
        # The new member set is (replacement ∪ added) − removed, in the order PATCH gave them.
        wanted_ids = [i for i, _ in replace_members + add if id_key(i) not in set(remove)]
        wanted = members_resolve(org, actor, list(dict.fromkeys(wanted_ids)))
        wanted_pks = {u.pk for u in wanted}
        current = ScimUser.objects.for_org(org).filter(scimgroupmember__group=group)
        to_add, to_remove = wanted, [u for u in current if u.pk not in wanted_pks]
    else:
        to_add = members_resolve(org, actor, [i for i, _ in add])
        # Removing someone who is not (or no longer) a member, or not a user here, changes nothing:
        # IdPs retry removals, sometimes after the user is gone.
        to_remove = _known_users(org, remove) if remove else []
    added, removed = _members_change(org, actor, group, to_add, to_remove, displays)
    if not changed and not added and not removed:
        return group
    _touch(group)
    try:
        with transaction.atomic():
            group.save()
    except IntegrityError:
        raise _uniqueness("A group with this displayName exists.")
    audit_record(org=org, actor=actor, event=AuditEvent.SCIM_GROUP_UPDATED, target=Target.of(group),
                 data={"display_name": group.display_name, "added": _ids(added), "removed": _ids(removed),
                       "fields": changed, "method": method})
    return group


@transaction.atomic
def group_delete(*, org, actor: Actor, pk, if_match: str | None) -> None:
    group = group_locked(org, pk)
    check_version(group, if_match)
    members = list(ScimUser.objects.for_org(org).filter(scimgroupmember__group=group))
    mapped = GroupMapping.objects.for_org(org).filter(group=group).exists()
    ScimGroupMember.objects.filter(group=group).delete()
    for scim_user in members if mapped else ():  # mapped grants go, each audited, before the mappings
        mappings.mappings_reconcile(scim_user=scim_user, actor=actor)
    audit_record(org=org, actor=actor, event=AuditEvent.SCIM_GROUP_DELETED, target=Target.of(group),
                 data={"display_name": group.display_name, "members": len(members)})
    group.delete()
