"""SCIM Groups: created, changed and removed by an org's IdP, with their members; each change audited.

As in scim.users, one service call is one request's transaction and lock. Adding someone to a group
or taking them out reconciles the grants of the group's mappings (scim.mappings), but only when the
group has any, so an IdP pushing thousands of members to an unmapped group pays nothing for it.
"""

from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.db.models.functions import Lower

from audit.actors import Actor
from audit.events import AuditEvent
from audit.services import Target, audit_record
from core.errors import DenialAudit, NotFound
from scim import mappings
from scim.ids import id_key, uuid_or_none
from scim.models import GroupMapping, ScimGroup, ScimGroupMember, ScimUser
from scim.users import missing, uniqueness

AUDITED_IDS = 100  # member ids listed in one audit entry; the counts are always exact


@dataclass(frozen=True)
class GroupChange:
    """A whole new Group (PUT), or the result of a PATCH's operations: its fields, then its members as
    (id, display) pairs. With `replace` the members become (replace ∪ add) − remove, in that order;
    without it `add` are added and `remove` (ids) taken out."""

    fields: dict
    replace: list | None = None
    add: list = field(default_factory=list)
    remove: list = field(default_factory=list)


def _group_name_taken(org, name: str, exclude=None) -> bool:
    taken = ScimGroup.objects.for_org(org).annotate(l=Lower("display_name")).filter(l=name.lower())
    if exclude is not None:
        taken = taken.exclude(pk=exclude.pk)
    return taken.exists()


def members_resolve(org, actor: Actor, ids, *, method: str) -> list[ScimUser]:
    """The org's users with these ids; 404 (the same body as for a missing user) for any other,
    recorded in the audit log when the id is another org's."""
    wanted, parsed = list(dict.fromkeys(str(i) for i in ids)), {}
    for raw in wanted:
        parsed[raw] = uuid_or_none(raw)
        if parsed[raw] is None:
            raise NotFound("Member not found.")
    found = {str(u.pk): u for u in ScimUser.objects.for_org(org).filter(pk__in=list(parsed.values()))}
    for raw, value in parsed.items():
        if str(value) not in found:
            audit = None
            if ScimUser.objects.unscoped().filter(pk=value).exists():  # another org's user
                audit = DenialAudit(org=org, actor=actor, event=AuditEvent.SCIM_CROSS_TENANT_DENIED,
                                    target=Target("scim_user", raw[:64]),
                                    data={"method": method, "resource": "member", "id": raw[:64]})
            raise NotFound("Member not found.", audit=audit)
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
        raise uniqueness("A group with this displayName was just created by another request.")


@transaction.atomic
def _group_create(*, org, actor: Actor, fields: dict) -> ScimGroup:
    if _group_name_taken(org, fields["display_name"]):
        raise uniqueness("A group with this displayName exists.")
    members = members_resolve(org, actor, [i for i, _ in fields["members"]], method="POST")
    try:
        with transaction.atomic():
            group = ScimGroup.objects.create(org=org, display_name=fields["display_name"],
                                             external_id=fields["external_id"])
    except IntegrityError:
        raise uniqueness("A group with this displayName exists.")
    _members_change(org, actor, group, members, [], _displays(fields["members"]))
    audit_record(org=org, actor=actor, event=AuditEvent.SCIM_GROUP_CREATED, target=Target.of(group),
                 data={"display_name": group.display_name, "members": len(members)})
    return group


def group_locked(org, actor: Actor, pk, method: str) -> ScimGroup:
    group = ScimGroup.objects.for_org(org).select_for_update().filter(pk=pk).first()
    if group is None:
        raise missing(org, actor, ScimGroup, pk, resource="Groups", method=method)
    return group


@transaction.atomic
def group_update(*, org, actor: Actor, pk, change, accepts, method: str) -> ScimGroup:
    """PUT and PATCH: `change(locked group)` gives the GroupChange (for a PATCH, the operations applied
    to the locked row), and `accepts` reads If-Match."""
    group = group_locked(org, actor, pk, method)
    group.version_check(accepts)
    wanted: GroupChange = change(group)
    fields, changed = wanted.fields, []
    if fields["display_name"] != group.display_name:
        if _group_name_taken(org, fields["display_name"], exclude=group):
            raise uniqueness("A group with this displayName exists.")
        group.display_name = fields["display_name"]
        changed.append("displayName")
    if fields["external_id"] != group.external_id:
        group.external_id = fields["external_id"]
        changed.append("externalId")
    add, remove, replace = wanted.add, [id_key(i) for i in wanted.remove], wanted.replace
    displays = _displays(add + (replace or []))
    if replace is not None:
        # The new member set is (replacement ∪ added) − removed, in the order PATCH gave them.
        wanted_ids = [i for i, _ in replace + add if id_key(i) not in set(remove)]
        members = members_resolve(org, actor, list(dict.fromkeys(wanted_ids)), method=method)
        member_pks = {u.pk for u in members}
        current = ScimUser.objects.for_org(org).filter(scimgroupmember__group=group)
        to_add, to_remove = members, [u for u in current if u.pk not in member_pks]
    else:
        to_add = members_resolve(org, actor, [i for i, _ in add], method=method)
        # Removing someone who is not (or no longer) a member, or not a user here, changes nothing:
        # IdPs retry removals, sometimes after the user is gone.
        to_remove = _known_users(org, remove) if remove else []
    added, removed = _members_change(org, actor, group, to_add, to_remove, displays)
    if not changed and not added and not removed:
        return group
    group.touch()
    try:
        with transaction.atomic():
            group.save()
    except IntegrityError:
        raise uniqueness("A group with this displayName exists.")
    audit_record(org=org, actor=actor, event=AuditEvent.SCIM_GROUP_UPDATED, target=Target.of(group),
                 data={"display_name": group.display_name, "added": _ids(added), "removed": _ids(removed),
                       "fields": changed, "method": method})
    return group


@transaction.atomic
def group_delete(*, org, actor: Actor, pk, accepts) -> None:
    group = group_locked(org, actor, pk, "DELETE")
    group.version_check(accepts)
    members = list(ScimUser.objects.for_org(org).filter(scimgroupmember__group=group))
    mapped = GroupMapping.objects.for_org(org).filter(group=group).exists()
    ScimGroupMember.objects.filter(group=group).delete()
    for scim_user in members if mapped else ():  # mapped grants go, each audited, before the mappings
        mappings.mappings_reconcile(scim_user=scim_user, actor=actor)
    audit_record(org=org, actor=actor, event=AuditEvent.SCIM_GROUP_DELETED, target=Target.of(group),
                 data={"display_name": group.display_name, "members": len(members)})
    group.delete()
