"""Group mappings: membership of a pushed group grants a built-in role, a custom role or a team
standing, applied and taken back as the directory changes.

Every grant goes through the effect services of accounts and rbac with the SCIM actor, recorded as
`scim.mapping_granted` / `scim.mapping_revoked`. A grant a mapping makes is tagged with it (the
grant's `source`, `scim.mapping:<id>`; the built-in role in `ScimUser.mapped_role`), and only tagged
grants are ever taken back: what a person granted by hand stays, whatever the directory says.
Creating and deleting a mapping are the owner's (`mapping_create`, `mapping_delete`, taking access).
"""

from django.db import transaction
from django.db.models import Q

from accounts.models import Membership
from accounts.services import membership_update
from audit.actors import Actor
from audit.events import AuditEvent
from audit.services import AuditAs, Target, audit_record, records_denials
from core.errors import Conflict, DenialAudit, Forbidden, Invalid, NotFound
from core.permissions import Perm
from core.roles import BUILTIN_ROLES, BuiltinRole, TeamRole
from rbac import services as rbac
from rbac.access import Access
from rbac.authorization import assert_can_give_team_role, assert_can_grant, assert_in_org
from rbac.models import RoleAssignment, TeamMembership
from scim.models import (
    MAPPABLE_BUILTIN_ROLES,
    MAPPING_TAG,
    GroupMapping,
    MappingKind,
    ScimGroup,
    ScimUser,
    mapping_of_tag,
    mapping_tag,
)

_TEAM_RANK = {role: rank for rank, role in enumerate(TeamRole)}  # member < admin < owner


class _Log:
    """How one membership's grant changes are recorded (as the SCIM mapping events)."""

    def __init__(self, membership: Membership):
        self.membership = membership

    def granted(self, group: str, kind: str, target: str, **extra) -> AuditAs:
        return AuditAs(event=AuditEvent.MAPPING_GRANTED, data={
            "member": str(self.membership.pk), "group": group, "kind": kind, "target": target, **extra})

    def revoked(self, group: str | None, kind: str, target: str, **extra) -> AuditAs:
        data = {"member": str(self.membership.pk), "kind": kind, "target": target, **extra}
        if group is not None:  # a built-in role is not tagged with the group that gave it
            data["group"] = group
        return AuditAs(event=AuditEvent.MAPPING_REVOKED, data=data)


@transaction.atomic
def mappings_reconcile(*, scim_user: ScimUser, actor: Actor) -> None:
    """Make the membership's mapped grants match the mappings of the groups it is in now."""
    reconcile(scim_user, actor)


def lock(scim_user: ScimUser) -> Membership:
    """Lock the ScimUser row and its membership (always in this one statement, so in one order) and
    bring the caller's instance up to date, so that its later save() cannot undo what is written
    here. Returns the locked membership, with its org and user."""
    # Only these two rows: locking the org row too would serialise all provisioning of the org.
    locked = (ScimUser.objects.for_org(scim_user.org_id).select_for_update(of=("self", "membership"))
              .select_related("membership__org", "membership__user").get(pk=scim_user.pk))
    scim_user.mapped_role, scim_user.role_before_mapping = locked.mapped_role, locked.role_before_mapping
    scim_user.membership = locked.membership
    return locked.membership


def reconcile(scim_user: ScimUser, actor: Actor, *, ignore=frozenset()) -> None:
    """`ignore`: mappings to treat as gone already (one being deleted)."""
    membership = lock(scim_user)
    mappings = []
    if membership.can_act:  # a deactivated or suspended member gets nothing from the directory
        mappings = list(GroupMapping.objects.for_org(scim_user.org_id).filter(group__members=scim_user)
                        .exclude(pk__in=ignore).select_related("group", "role", "team")
                        .order_by("created_at", "pk"))
    by_kind = {kind: [m for m in mappings if m.kind == kind] for kind in MappingKind}
    log = _Log(membership)
    _reconcile_builtin(scim_user, membership, by_kind[MappingKind.BUILTIN_ROLE], log, actor)
    _reconcile_roles(membership, by_kind[MappingKind.CUSTOM_ROLE], log, actor)
    _reconcile_teams(membership, by_kind[MappingKind.TEAM], log, actor)


def _mapped_fields_save(scim_user: ScimUser, mapped_role: str, role_before: str) -> None:
    if (scim_user.mapped_role, scim_user.role_before_mapping) != (mapped_role, role_before):
        scim_user.mapped_role, scim_user.role_before_mapping = mapped_role, role_before
        scim_user.save(update_fields=["mapped_role", "role_before_mapping"])


def _reconcile_builtin(scim_user: ScimUser, membership: Membership, mappings, log: _Log,
                       actor: Actor) -> None:
    granting: dict[str, GroupMapping] = {}
    for mapping in mappings:
        granting.setdefault(mapping.builtin_role, mapping)
    wanted = next((role for role in MAPPABLE_BUILTIN_ROLES if role in granting), None)
    if membership.role == BuiltinRole.OWNER:
        # Ownership is given by a person and never changed by a directory; a mapping that applied
        # before someone made this member an owner has lapsed.
        _mapped_fields_save(scim_user, "", "")
        return
    if wanted is not None:
        role_before = scim_user.role_before_mapping if scim_user.mapped_role else membership.role
        if membership.role != wanted:
            audit_as = log.granted(granting[wanted].group.display_name, MappingKind.BUILTIN_ROLE, wanted,
                                   previous_role=membership.role)
            membership_update(membership=membership, role=wanted, actor=actor, audit_as=audit_as)
        _mapped_fields_save(scim_user, wanted, role_before)
    elif scim_user.mapped_role:
        restored = scim_user.role_before_mapping or BuiltinRole.MEMBER
        # Someone who changed the role by hand since the mapping set it made the later decision.
        if membership.role == scim_user.mapped_role and restored != membership.role:
            audit_as = log.revoked(None, MappingKind.BUILTIN_ROLE, scim_user.mapped_role,
                                   restored_role=restored)
            membership_update(membership=membership, role=restored, actor=actor, audit_as=audit_as)
        _mapped_fields_save(scim_user, "", "")


def _group_names(org_id, grants) -> dict:
    """The display name of the group behind each tagged grant (mappings already gone have none)."""
    ids = {mapping_of_tag(g.source) for g in grants} - {None}
    found = GroupMapping.objects.for_org(org_id).filter(pk__in=ids).select_related("group")
    return {str(m.pk): m.group.display_name for m in found}


def _reconcile_roles(membership: Membership, mappings, log: _Log, actor: Actor) -> None:
    wanted: dict = {}  # role id -> the mappings granting it, oldest first
    for mapping in mappings:
        wanted.setdefault(mapping.role_id, []).append(mapping)
    held = {a.role_id: a for a in RoleAssignment.objects.filter(membership=membership).select_related("role")}
    names = _group_names(membership.org_id, held.values())
    for role_id, granting in wanted.items():
        assignment = held.get(role_id)
        first = granting[0]
        if assignment is None:
            rbac.role_grant(membership=membership, role=first.role, actor=actor, source=mapping_tag(first),
                            audit_as=log.granted(first.group.display_name, MappingKind.CUSTOM_ROLE,
                                                 first.role.name))
        elif mapping_of_tag(assignment.source) not in (None, *(str(m.pk) for m in granting)):
            # Still granted, now by another group: retagged, not audited (access does not change).
            rbac.role_grant_retag(assignment=assignment, source=mapping_tag(first))
    for role_id, assignment in held.items():
        mapping_id = mapping_of_tag(assignment.source)
        if mapping_id is not None and role_id not in wanted:
            rbac.role_revoke(assignment=assignment, actor=actor, audit_as=log.revoked(
                names.get(mapping_id), MappingKind.CUSTOM_ROLE, assignment.role.name))


def _reconcile_teams(membership: Membership, mappings, log: _Log, actor: Actor) -> None:
    best: dict = {}  # team id -> the mapping giving the highest standing (the oldest among equals)
    for mapping in mappings:
        current = best.get(mapping.team_id)
        if current is None or _TEAM_RANK[mapping.team_role] > _TEAM_RANK[current.team_role]:
            best[mapping.team_id] = mapping
    standings = TeamMembership.objects.filter(membership=membership).select_related("team")
    held = {tm.team_id: tm for tm in standings}
    names = _group_names(membership.org_id, held.values())
    for team_id, mapping in best.items():
        standing = held.get(team_id)
        group, team_name, role = mapping.group.display_name, mapping.team.name, mapping.team_role
        if standing is None:
            rbac.team_standing_add(team=mapping.team, membership=membership, role=role, actor=actor,
                                   source=mapping_tag(mapping),
                                   audit_as=log.granted(group, MappingKind.TEAM, team_name, team_role=role))
            continue
        if mapping_of_tag(standing.source) is None:
            continue  # a standing given by hand is left as it is
        equals = {str(m.pk) for m in mappings if m.team_id == team_id and m.team_role == role}
        if standing.role != role or mapping_of_tag(standing.source) not in equals:
            audit_as = log.granted(group, MappingKind.TEAM, team_name, team_role=role,
                                   previous_role=standing.role)
            rbac.team_standing_set(standing=standing, role=role, source=mapping_tag(mapping), actor=actor,
                                   audit_as=audit_as)
    for team_id, standing in held.items():
        mapping_id = mapping_of_tag(standing.source)
        if mapping_id is not None and team_id not in best:
            rbac.team_standing_remove(standing=standing, actor=actor, audit_as=log.revoked(
                names.get(mapping_id), MappingKind.TEAM, standing.team.name))


def _holders_of_orphaned_grants(org_id) -> set:
    """Memberships holding a grant tagged with a mapping that no longer exists."""
    existing = {mapping_tag(pk) for pk in GroupMapping.objects.for_org(org_id).values_list("pk", flat=True)}
    holders = set()
    for model in (RoleAssignment, TeamMembership):
        tagged = model.objects.filter(membership__org_id=org_id, source__startswith=MAPPING_TAG)
        holders |= {pk for pk, source in tagged.values_list("membership_id",
                                                            "source") if source not in existing}
    return holders


def affected_by(group: ScimGroup):
    """The ScimUsers whose grants may depend on `group`, in a stable order (locks are taken in it)."""
    users = ScimUser.objects.for_org(group.org_id)
    if group.pk is None or not ScimGroup.objects.for_org(group.org_id).filter(pk=group.pk).exists():
        # Deleted, with its member rows and mappings: what its mappings granted is tagged with
        # mappings that no longer exist, and a mapped built-in role carries no tag at all.
        orphaned = _holders_of_orphaned_grants(group.org_id)
        return users.filter(~Q(mapped_role="") | Q(membership_id__in=orphaned)).order_by("pk")
    tags = [mapping_tag(pk) for pk in group.mappings.values_list("pk", flat=True)]
    tagged = Q(membership__roleassignment__source__in=tags) | Q(membership__team_memberships__source__in=tags)
    return users.filter(Q(groups=group) | tagged).distinct().order_by("pk")


@transaction.atomic
def group_reconcile(*, group: ScimGroup, actor: Actor) -> None:
    """`mappings_reconcile` for every member of `group` (after its mappings change).

    Also reconciles whoever still holds a grant tagged by one of the group's mappings. After the
    group is deleted, pass the deleted instance: the grants its mappings made are taken back.
    """
    for scim_user in list(affected_by(group)):
        reconcile(scim_user, actor)


# --- creating and deleting mappings (the owner's) ----------------------------------------------------


_NEEDS = {
    MappingKind.BUILTIN_ROLE: {"builtin_role"},
    MappingKind.CUSTOM_ROLE: {"role"},
    MappingKind.TEAM: {"team", "team_role"},
}


def _assert_scim_write(access: Access, target: Target | None = None) -> None:
    if not access.has(Perm.SCIM_WRITE):
        raise Forbidden("You cannot change provisioning.", audit=DenialAudit(
            org=access.org, actor=access.actor, event=AuditEvent.PERMISSION_DENIED, target=target,
            data={"reason": "scim_mapping", "required": Perm.SCIM_WRITE.value}))


def _shape_errors(kind, builtin_role, role, team, team_role) -> dict:
    if kind not in _NEEDS:
        return {"kind": ["Choose builtin_role, custom_role or team."]}
    given = {"builtin_role": bool(builtin_role), "role": role is not None, "team": team is not None,
             "team_role": bool(team_role)}
    errors = {}
    for name, present in given.items():
        if present != (name in _NEEDS[kind]):
            errors[name] = ["Required for this kind."] if not present else ["Not used by this kind."]
    if "builtin_role" not in errors and builtin_role and builtin_role not in BUILTIN_ROLES:
        errors["builtin_role"] = ["Unknown built-in role."]
    if "team_role" not in errors and team_role and team_role not in TeamRole.values:
        errors["team_role"] = ["Unknown team role."]
    return errors


def _mapping_perms(kind, builtin_role, role, team) -> frozenset[Perm]:
    """Every permission a member of the group would receive through this mapping."""
    if kind == MappingKind.BUILTIN_ROLE:
        return BUILTIN_ROLES[builtin_role]
    if kind == MappingKind.CUSTOM_ROLE:
        return frozenset(role.perms)
    perms: set[Perm] = set()
    for team_role in team.roles.all():
        perms |= team_role.perms
    return frozenset(perms)


def _mapping_data(mapping: GroupMapping) -> dict:
    target = mapping.builtin_role or (mapping.role.name if mapping.role_id else mapping.team.name)
    return {"group": mapping.group.display_name, "kind": mapping.kind, "target": target}


def _group_lock(org, pk) -> ScimGroup | None:
    """Lock the group row first, as a SCIM group update does before it changes members and
    reconciles them. A mapping write then waits for a concurrent update and sees the members it
    added; otherwise a member added meanwhile keeps a grant from a deleted mapping (or misses one
    from a new mapping)."""
    return ScimGroup.objects.for_org(org).select_for_update().filter(pk=pk).first()


@records_denials
@transaction.atomic
def mapping_create(*, access: Access, group: ScimGroup, kind: str, builtin_role: str = "", role=None,
                   team=None, team_role: str = "") -> GroupMapping:
    """Map membership of `group` to one grant, and apply it to the group's members now."""
    _assert_scim_write(access)
    for obj, what in ((group, "SCIM group"), (role, "Role"), (team, "Team")):
        if obj is not None and obj.org_id != access.org.pk:
            raise NotFound(f"{what} not found.")
    errors = _shape_errors(kind, builtin_role, role, team, team_role)
    if group is None:
        errors["group"] = ["Choose a group."]
    if errors:
        raise Invalid("Invalid mapping.", fields=errors)
    group = _group_lock(access.org, group.pk)
    if group is None:
        raise NotFound("SCIM group not found.")
    if kind == MappingKind.BUILTIN_ROLE and builtin_role not in MAPPABLE_BUILTIN_ROLES:
        # Only the owner role is outside the list: ownership is given by a person, not a directory.
        raise Invalid("A group cannot make anyone an owner.", code="owner_not_mappable",
                      fields={"builtin_role": ["A group cannot make anyone an owner."]},
                      audit=DenialAudit(org=access.org, actor=access.actor,
                                        event=AuditEvent.ESCALATION_DENIED, target=Target.of(group),
                                        data={"reason": "mapping_owner"}))
    if kind == MappingKind.TEAM:
        # Mapping a group into a team adds members like a team admin does: the same rule applies.
        assert_can_give_team_role(access, team, team_role, reason="mapping_team")
    assert_can_grant(access, _mapping_perms(kind, builtin_role, role, team), target=Target.of(group),
                     reason="mapping_create")
    same = GroupMapping.objects.for_org(access.org).filter(group=group, kind=kind, builtin_role=builtin_role,
                                                           role=role, team=team)
    if same.exists():
        raise Conflict("This group already has this mapping.", code="duplicate",
                       fields={"group": ["This group already has this mapping."]})
    mapping = GroupMapping.objects.create(org=access.org, group=group, kind=kind, builtin_role=builtin_role,
                                          role=role, team=team, team_role=team_role,
                                          created_by=access.creator_user)
    data = _mapping_data(mapping)
    if team_role:
        data["team_role"] = team_role
    audit_record(org=access.org, actor=access.actor, event=AuditEvent.GROUP_MAPPING_CREATED,
                 target=Target.of(mapping), data=data)
    group_reconcile(group=group, actor=access.actor)
    return mapping


@records_denials
@transaction.atomic
def mapping_delete(*, access: Access, mapping: GroupMapping) -> None:
    """Delete the mapping; the grants it made are taken back (unless another mapping still gives them)."""
    assert_in_org(access, mapping)
    group = _group_lock(access.org, mapping.group_id)
    if group is not None:
        mapping = (GroupMapping.objects.for_org(access.org).select_for_update(of=("self",))
                   .select_related("group", "role", "team").filter(pk=mapping.pk, group=group).first())
    if group is None or mapping is None:
        raise NotFound("Mapping not found.")
    _assert_scim_write(access, target=Target.of(mapping))
    # Taking grants away from a group's members is changing those members: within one's own power.
    assert_can_grant(access, _mapping_perms(mapping.kind, mapping.builtin_role, mapping.role, mapping.team),
                     target=Target.of(mapping), reason="mapping_delete")
    audit_record(org=access.org, actor=access.actor, event=AuditEvent.GROUP_MAPPING_DELETED,
                 target=Target.of(mapping), data=_mapping_data(mapping))
    # Reconciled as if the mapping were gone already, so that each grant it made is taken back (and
    # audited) or handed to another mapping before the row is deleted.
    for scim_user in list(affected_by(mapping.group)):
        reconcile(scim_user, access.actor, ignore={mapping.pk})
    mapping.delete()
