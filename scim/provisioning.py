"""What provisioning does to access: group mappings applied and taken back, deprovisioning.

Called by the SCIM protocol views (scim/protocol/) after every change to a user's groups or
`active` flag, and by the mapping pages and API. Every change is audited with the caller's actor.

A grant a mapping makes is tagged with it (`RoleAssignment.mapping`, `TeamMembership.mapping`,
`ScimUser.mapped_role` for the built-in role), and only tagged grants are ever taken back: what a
person granted by hand stays, whatever the directory says.
"""

from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import ACTING_STATUSES, ApiKey, Membership, MembershipStatus, SecurityPolicy
from accounts.services import sessions_revoke
from agents.models import Agent, AgentStatus
from agents.services import agent_owner_replace, agent_suspend_orphaned
from audit.actors import Actor
from audit.events import AuditEvent
from audit.services import Target, audit_record, records_denials
from core.errors import Conflict, DenialAudit, Forbidden, Invalid, NotFound
from core.permissions import Perm
from core.roles import BUILTIN_ROLES, BuiltinRole, TeamRole
from rbac.access import Access
from rbac.models import RoleAssignment, TeamMembership
from rbac.services import assert_can_grant
from scim.models import MAPPABLE_BUILTIN_ROLES, GroupMapping, MappingKind, ScimGroup, ScimUser

DEPROVISION_HOWS = ("deactivated", "deleted")
_TEAM_RANK = {role: rank for rank, role in enumerate(TeamRole)}  # member < admin < owner


@dataclass(frozen=True)
class DeprovisionResult:
    sessions_revoked: int
    api_keys_revoked: int
    agents_reassigned: int
    agents_suspended: int
    account_deactivated: bool


# --- Reconciling mapped grants -------------------------------------------------------------------


@dataclass(frozen=True)
class _Log:
    """Audits the grant changes of one membership."""

    org: object
    actor: Actor
    membership: Membership

    def granted(self, group: str, kind: str, target: str, **extra) -> None:
        audit_record(org=self.org, actor=self.actor, event=AuditEvent.MAPPING_GRANTED,
                     target=Target.of(self.membership),
                     data={"member": str(self.membership.pk), "group": group, "kind": kind,
                           "target": target, **extra})

    def revoked(self, group: str | None, kind: str, target: str, **extra) -> None:
        data = {"member": str(self.membership.pk), "kind": kind, "target": target, **extra}
        if group is not None:  # a built-in role is not tagged with the group that gave it
            data["group"] = group
        audit_record(org=self.org, actor=self.actor, event=AuditEvent.MAPPING_REVOKED,
                     target=Target.of(self.membership), data=data)


@transaction.atomic
def mappings_reconcile(*, scim_user: ScimUser, actor: Actor) -> None:
    """Make the membership's mapped grants match the mappings of the groups it is in now."""
    _reconcile(scim_user, actor)


def _lock(scim_user: ScimUser) -> Membership:
    """Lock the ScimUser row and its membership (always in this one statement, so in one order) and
    bring the caller's instance up to date, so that its later save() cannot undo what is written
    here. Returns the locked membership, with its org and user."""
    # Only these two rows: locking the org row too would serialise all provisioning of the org.
    locked = (ScimUser.objects.for_org(scim_user.org_id).select_for_update(of=("self", "membership"))
              .select_related("membership__org", "membership__user").get(pk=scim_user.pk))
    scim_user.mapped_role, scim_user.role_before_mapping = locked.mapped_role, locked.role_before_mapping
    scim_user.membership = locked.membership
    return locked.membership


def _reconcile(scim_user: ScimUser, actor: Actor, *, ignore=frozenset()) -> None:
    """`ignore`: mappings to treat as gone already (one being deleted)."""
    membership = _lock(scim_user)
    mappings = []
    if membership.can_act:  # a deactivated or suspended member gets nothing from the directory
        mappings = list(GroupMapping.objects.for_org(scim_user.org_id).filter(group__members=scim_user)
                        .exclude(pk__in=ignore).select_related("group", "role", "team")
                        .order_by("created_at", "pk"))
    by_kind = {kind: [m for m in mappings if m.kind == kind] for kind in MappingKind}
    log = _Log(membership.org, actor, membership)
    _reconcile_builtin(scim_user, membership, by_kind[MappingKind.BUILTIN_ROLE], log)
    _reconcile_roles(membership, by_kind[MappingKind.CUSTOM_ROLE], log)
    _reconcile_teams(membership, by_kind[MappingKind.TEAM], log)


def _mapped_fields_save(scim_user: ScimUser, mapped_role: str, role_before: str) -> None:
    if (scim_user.mapped_role, scim_user.role_before_mapping) != (mapped_role, role_before):
        scim_user.mapped_role, scim_user.role_before_mapping = mapped_role, role_before
        scim_user.save(update_fields=["mapped_role", "role_before_mapping"])


def _role_set(membership: Membership, role: str) -> None:
    membership.role = role
    membership.save(update_fields=["role"])


def _reconcile_builtin(scim_user: ScimUser, membership: Membership, mappings, log: _Log) -> None:
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
            previous = membership.role
            _role_set(membership, wanted)
            log.granted(granting[wanted].group.display_name, MappingKind.BUILTIN_ROLE, wanted,
                        previous_role=previous)
        _mapped_fields_save(scim_user, wanted, role_before)
    elif scim_user.mapped_role:
        restored = scim_user.role_before_mapping or BuiltinRole.MEMBER
        # Someone who changed the role by hand since the mapping set it made the later decision.
        if membership.role == scim_user.mapped_role and restored != membership.role:
            _role_set(membership, restored)
            log.revoked(None, MappingKind.BUILTIN_ROLE, scim_user.mapped_role, restored_role=restored)
        _mapped_fields_save(scim_user, "", "")


def _reconcile_roles(membership: Membership, mappings, log: _Log) -> None:
    wanted: dict = {}  # role id -> the mappings granting it, oldest first
    for mapping in mappings:
        wanted.setdefault(mapping.role_id, []).append(mapping)
    held = {a.role_id: a for a in RoleAssignment.objects.filter(membership=membership)
            .select_related("role", "mapping__group")}
    for role_id, granting in wanted.items():
        assignment = held.get(role_id)
        if assignment is None:
            RoleAssignment.objects.create(membership=membership, role=granting[0].role, mapping=granting[0])
            log.granted(granting[0].group.display_name, MappingKind.CUSTOM_ROLE, granting[0].role.name)
        elif assignment.mapping_id is not None and assignment.mapping_id not in {m.pk for m in granting}:
            # Still granted, now by another group: retagged, not audited (access does not change).
            assignment.mapping = granting[0]
            assignment.save(update_fields=["mapping"])
    for role_id, assignment in held.items():
        if assignment.mapping_id is not None and role_id not in wanted:
            assignment.delete()
            log.revoked(assignment.mapping.group.display_name, MappingKind.CUSTOM_ROLE, assignment.role.name)


def _reconcile_teams(membership: Membership, mappings, log: _Log) -> None:
    best: dict = {}  # team id -> the mapping giving the highest standing (the oldest among equals)
    for mapping in mappings:
        current = best.get(mapping.team_id)
        if current is None or _TEAM_RANK[mapping.team_role] > _TEAM_RANK[current.team_role]:
            best[mapping.team_id] = mapping
    held = {tm.team_id: tm for tm in TeamMembership.objects.filter(membership=membership)
            .select_related("team", "mapping__group")}
    for team_id, mapping in best.items():
        standing = held.get(team_id)
        if standing is None:
            TeamMembership.objects.create(team=mapping.team, membership=membership, role=mapping.team_role,
                                          mapping=mapping)
            log.granted(mapping.group.display_name, MappingKind.TEAM, mapping.team.name,
                        team_role=mapping.team_role)
            continue
        if standing.mapping_id is None:
            continue  # a standing given by hand is left as it is
        equals = {m.pk for m in mappings if m.team_id == team_id and m.team_role == mapping.team_role}
        if standing.role != mapping.team_role or standing.mapping_id not in equals:
            previous = standing.role
            standing.role, standing.mapping = mapping.team_role, mapping
            standing.save(update_fields=["role", "mapping"])
            if previous != mapping.team_role:
                log.granted(mapping.group.display_name, MappingKind.TEAM, mapping.team.name,
                            team_role=mapping.team_role, previous_role=previous)
    for team_id, standing in held.items():
        if standing.mapping_id is not None and team_id not in best:
            standing.delete()
            log.revoked(standing.mapping.group.display_name, MappingKind.TEAM, standing.team.name)


def _affected_by(group: ScimGroup):
    """The ScimUsers whose grants may depend on `group`, in a stable order (locks are taken in it)."""
    users = ScimUser.objects.for_org(group.org_id)
    if group.pk is None or not ScimGroup.objects.for_org(group.org_id).filter(pk=group.pk).exists():
        # Deleted: its member rows and tagged grants went with it. A built-in role carries no tag,
        # so everyone who still holds a mapped one is checked.
        return users.exclude(mapped_role="").order_by("pk")
    tagged = (Q(membership__roleassignment__mapping__group=group)
              | Q(membership__team_memberships__mapping__group=group))
    return users.filter(Q(groups=group) | tagged).distinct().order_by("pk")


@transaction.atomic
def group_reconcile(*, group: ScimGroup, actor: Actor) -> None:
    """`mappings_reconcile` for every member of `group` (after its mappings change).

    Also reconciles whoever still holds a grant tagged by one of the group's mappings. After the
    group is deleted, pass the deleted instance: mapped built-in roles are then taken back (custom
    role and team grants went with the group's mappings, by cascade).
    """
    for scim_user in list(_affected_by(group)):
        _reconcile(scim_user, actor)


# --- Deprovisioning ------------------------------------------------------------------------------


@records_denials
@transaction.atomic
def deprovision(*, scim_user: ScimUser, actor: Actor, how: str) -> DeprovisionResult:
    """End the user's access to this org (how: "deactivated" | "deleted").

    Raises Conflict (code "last_owner") when the member is the org's only acting owner; its denial
    audit is written after the rollback by the outermost `records_denials`, or by whoever catches it
    outside the transaction (a caller inside a transaction of its own rolls this entry back too).
    """
    if how not in DEPROVISION_HOWS:
        raise ValueError(f"how must be one of {DEPROVISION_HOWS}")
    membership = _lock(scim_user)
    _assert_not_last_owner(membership, actor)
    org, user = membership.org, membership.user
    # Only an acting membership becomes deprovisioned: a suspension an admin made stays one, so
    # that the directory reactivating the user later cannot lift it (reactivate lifts only this).
    newly = membership.status in ACTING_STATUSES
    if newly:
        membership.status = MembershipStatus.DEPROVISIONED
        membership.save(update_fields=["status"])
    _active_set(scim_user, False)
    _reconcile(scim_user, actor)  # no longer acting: every mapped grant is taken back
    # Sessions belong to the person, not the org, and the guard refuses this membership on every
    # request anyway. So they end only when the person can act in no org any more: otherwise one
    # org's directory, by toggling `active`, could log someone out of another org again and again.
    acting_elsewhere = user.memberships.filter(status__in=ACTING_STATUSES).exclude(pk=membership.pk).exists()
    sessions = 0 if acting_elsewhere else sessions_revoke(user=user, reason="deprovisioned", actor=actor)
    keys = _api_keys_revoke(org, user, actor)
    reassigned, suspended = _agents_release(org, membership, actor)
    deactivated = False
    if user.is_active and not acting_elsewhere:
        user.is_active = False
        user.save(update_fields=["is_active"])
        deactivated = True
    result = DeprovisionResult(sessions, keys, reassigned, suspended, deactivated)
    if newly or sessions or keys or reassigned or suspended or deactivated:
        audit_record(org=org, actor=actor, event=AuditEvent.DEPROVISIONED, target=Target.of(membership),
                     data={"member": str(membership.pk), "how": how, "sessions_revoked": sessions,
                           "api_keys_revoked": keys, "agents_reassigned": reassigned,
                           "agents_suspended": suspended, "account_deactivated": deactivated})
    return result


def _assert_not_last_owner(membership: Membership, actor: Actor) -> None:
    """A directory may never leave the org without an acting owner (as accounts.services refuses a
    person the same)."""
    if membership.role != BuiltinRole.OWNER or not membership.can_act:
        return  # an owner who cannot act already counts for nothing: taking them away changes nothing
    # The acting owners are locked so that two concurrent deprovisionings of the last two owners
    # cannot each see the other one and both go ahead.
    owners = set(Membership.objects.for_org(membership.org).select_for_update()
                 .filter(role=BuiltinRole.OWNER, status__in=ACTING_STATUSES).values_list("pk", flat=True))
    if owners <= {membership.pk}:
        raise Conflict("An organization must keep at least one owner.", code="last_owner",
                       audit=DenialAudit(org=membership.org, actor=actor,
                                         event=AuditEvent.LAST_OWNER_PROTECTED, target=Target.of(membership),
                                         data={"action": "scim_deprovision"}))


def _active_set(scim_user: ScimUser, active: bool) -> bool:
    """The SCIM `active` flag, written by itself (the caller's other unsaved changes stay theirs)."""
    scim_user.active = active
    return ScimUser.objects.for_org(scim_user.org_id).filter(pk=scim_user.pk).exclude(
        active=active).update(active=active) > 0


def _api_keys_revoke(org, user, actor: Actor) -> int:
    """Revoke the org's API keys the user created: they hold power the user no longer has."""
    keys = list(ApiKey.objects.for_org(org).select_for_update()
                .filter(created_by=user, revoked_at__isnull=True).order_by("pk"))
    now = timezone.now()
    for key in keys:
        key.revoked_at = now
        key.save(update_fields=["revoked_at"])
        audit_record(org=org, actor=actor, event=AuditEvent.API_KEY_REVOKED, target=Target.of(key),
                     data={"name": key.name})
    return len(keys)


def _fallback_owner(org, leaving: Membership) -> Membership | None:
    """The policy's fallback owner when the policy says "reassign" and that member can act."""
    policy = SecurityPolicy.objects.for_org(org).first()
    if policy is None or policy.deprovision_agents != "reassign" or not policy.deprovision_fallback_owner_id:
        return None
    fallback = Membership.objects.for_org(org).filter(pk=policy.deprovision_fallback_owner_id).first()
    if fallback is None or fallback.pk == leaving.pk or not fallback.can_act:
        return None
    return fallback


def _agents_release(org, membership: Membership, actor: Actor) -> tuple[int, int]:
    """Take the member off every agent they own here; apply the policy to agents left unowned.

    Returns (reassigned, suspended).
    """
    agents = list(Agent.objects.for_org(org).filter(owners=membership).order_by("pk"))
    fallback = _fallback_owner(org, membership) if agents else None
    reassigned = suspended = 0
    for agent in agents:
        owned = (agent.status == AgentStatus.REVOKED
                 or agent.owners.exclude(pk=membership.pk).filter(status__in=ACTING_STATUSES).exists())
        if owned:
            agent_owner_replace(agent=agent, leaving=membership, actor=actor)
        elif fallback is not None:
            agent_owner_replace(agent=agent, leaving=membership, actor=actor, successor=fallback)
            reassigned += 1
        else:
            agent_owner_replace(agent=agent, leaving=membership, actor=actor)
            agent_suspend_orphaned(agent=agent, actor=actor)
            suspended += 1
    return reassigned, suspended


@transaction.atomic
def reactivate(*, scim_user: ScimUser, actor: Actor) -> None:
    """Give a deactivated user their membership back (base role, then mapped grants).

    Only a deprovisioned membership is reactivated: a suspension an admin made stays until an admin
    lifts it. Agents and API keys taken away on deprovisioning are not given back.
    """
    membership = _lock(scim_user)
    changed = False
    if membership.status == MembershipStatus.DEPROVISIONED:
        membership.status = MembershipStatus.ACTIVE
        membership.save(update_fields=["status"])
        changed = True
    if scim_user.active is False:  # unassigned (None) already counts as active: leave it unassigned
        changed = _active_set(scim_user, True) or changed
    user = membership.user
    if membership.can_act and not user.is_active:
        user.is_active = True
        user.save(update_fields=["is_active"])
        changed = True
    if changed:
        audit_record(org=membership.org, actor=actor, event=AuditEvent.SCIM_USER_REACTIVATED,
                     target=Target.of(membership), data={"user_name": scim_user.user_name})
    _reconcile(scim_user, actor)


# --- Mappings ------------------------------------------------------------------------------------


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


def _assert_can_map_team(access: Access, team, team_role: str) -> None:
    """Mapping a group into a team adds members like a team admin does: the same rule applies."""
    if Perm.TEAM_WRITE in access.perms:
        return
    mine = access.team_roles.get(team.pk)
    if mine == TeamRole.OWNER or (mine == TeamRole.ADMIN and team_role != TeamRole.OWNER):
        return
    raise Forbidden("You cannot give this team standing.", code="escalation_denied", audit=DenialAudit(
        org=access.org, actor=access.actor, event=AuditEvent.ESCALATION_DENIED, target=Target.of(team),
        data={"reason": "mapping_team", "missing": [team_role]}))


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
        _assert_can_map_team(access, team, team_role)
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
    # audited) or handed to another mapping before the row's deletion would cascade to it.
    for scim_user in list(_affected_by(mapping.group)):
        _reconcile(scim_user, access.actor, ignore={mapping.pk})
    mapping.delete()

