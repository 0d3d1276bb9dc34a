"""Policy wrappers for agents, connections, runs and the org's agent settings: what the admin pages
and the admin API call. Each takes the caller's `Access`, checks what the caller may do, then calls
one effect service (agents.services, .rotation, .runs, .policy) with the caller as actor."""

from django.db import transaction

from accounts.models import ACTING_STATUSES, Membership
from agents import delegation as delegation_effects
from agents import rotation, runs, services
from agents.grants import scope_needs
from agents.policy import agent_policy_set
from audit.actors import Actor
from audit.events import AuditEvent
from audit.services import records_denials
from core.errors import DenialAudit, Forbidden, Invalid, NotFound
from core.permissions import Perm
from rbac.access import Access
from rbac.authorization import assert_can_manage_member, assert_in_org


def _own_membership(access: Access) -> Membership | None:
    """The caller's membership: the person's, or that of the member who made the calling API key."""
    if access.membership is not None:
        return access.membership
    creator = access.creator_user
    return Membership.objects.for_org(access.org).filter(user=creator).first() if creator else None


def _owners(access: Access, owner) -> list[Membership]:
    """The named owner, or by default the human behind the caller (the user, or the member who
    created the calling API key). Naming someone else needs the power to manage them: an owner
    answers for the agent, and its fate follows theirs."""
    me = _own_membership(access)
    if owner is not None:
        if owner.org_id != access.org.pk or owner.status not in ACTING_STATUSES:
            raise Invalid("The owner must be an active member.", fields={"owner": ["Not an active member."]})
        if me is None or owner.pk != me.pk:
            assert_can_manage_member(access, owner, reason="agent_owner")
        return [owner]
    if me is None:
        raise Invalid("Name an owner for the agent.", fields={"owner": ["Required for this caller."]})
    return [me]


def _assert_can_change_owners(access: Access, agent, owners) -> None:
    """Replacing an agent's owners is allowed to one of its current owners (who may add only people
    they can manage, besides themselves) or to someone who can manage every old and new owner."""
    old, new = set(agent.owners.all()), set(owners)
    if old == new:
        return
    me = _own_membership(access)
    if me is not None and me.can_act and me in old:
        judged = new - old - {me}
    else:
        judged = old | new
    for membership in sorted(judged, key=lambda m: str(m.pk)):
        assert_can_manage_member(access, membership, reason="agent_owners")


def _assert_can_hand_out(access: Access, scopes, owners) -> None:
    """The caller and every owner must be able to hand out each scope: no escalation by naming a
    more powerful owner, and no agent stronger than the people accountable for it."""
    missing = {scope_needs(s) for s in scopes} - access.perms
    missing |= services.owners_missing(scopes, owners)
    if missing:
        raise Forbidden(
            "The agent's grant would exceed what you or its owners hold.", code="escalation_denied",
            audit=DenialAudit(org=access.org, actor=access.actor, event=AuditEvent.ESCALATION_DENIED,
                              data={"reason": "agent_grant", "missing": sorted(missing)}),
        )


@records_denials
@transaction.atomic
def agent_create(*, access: Access, name: str, scopes, audiences, owner=None):
    """Register an agent (owned by `owner`, or by the caller). Returns it and its first secret."""
    owners = _owners(access, owner)
    scopes, audiences = services.grant_shape(access.org, scopes, audiences)
    _assert_can_hand_out(access, scopes, owners)
    return services.agent_create(org=access.org, name=name, scopes=scopes, audiences=audiences, owners=owners,
                                 actor=access.actor, created_by=access.creator_user)


@records_denials
@transaction.atomic
def agent_grant_update(*, access: Access, agent, scopes=None, audiences=None, owners=None):
    assert_in_org(access, agent, *(owners or ()))
    wanted_owners = owners if owners is not None else list(agent.owners.all())
    if not wanted_owners:
        raise Invalid("An agent needs at least one owner.", fields={"owners": ["Required."]})
    if owners is not None:
        _assert_can_change_owners(access, agent, owners)
    new_scopes, _ = services.grant_shape(access.org, agent.scopes if scopes is None else scopes,
                                         agent.audiences if audiences is None else audiences)
    _assert_can_hand_out(access, new_scopes, wanted_owners)
    return services.agent_grant_update(agent=agent, actor=access.actor, scopes=scopes, audiences=audiences,
                                       owners=owners)


def assert_not_itself(access: Access, agent) -> None:
    """An agent never changes what its own trust score reads, nor its own standing."""
    if access.actor.type == "agent" and access.actor.id == str(agent.pk):
        raise Forbidden("An agent may not change its own trust inputs or status.", code="self_change")


def _assert_owner_resumes(access: Access, agent) -> None:
    """A contained agent comes back only through one of its owners."""
    person = access.user or access.creator_user
    if person is None or not agent.owners.filter(user=person).exists():
        raise Forbidden("Only the agent's owners can resume an agent contained for its trust score.",
                        code="owner_required")


@records_denials
def agent_set_status(*, access: Access, agent, status: str):
    assert_in_org(access, agent)
    assert_not_itself(access, agent)
    if status == "active" and agent.contained_at is not None:
        _assert_owner_resumes(access, agent)
    return services.agent_status_set(agent=agent, status=status, actor=access.actor)


@records_denials
def agent_revoke(*, access: Access, agent):
    assert_in_org(access, agent)
    return services.agent_revoke(agent=agent, actor=access.actor)


@records_denials
def agent_secret_rotate(*, access: Access, agent, overlap_seconds: int | None = None):
    assert_in_org(access, agent)
    return rotation.agent_secret_rotate(agent=agent, actor=access.actor, overlap_seconds=overlap_seconds,
                                        created_by=access.creator_user)


@records_denials
def agent_secret_end_previous(*, access: Access, agent) -> int:
    assert_in_org(access, agent)
    return rotation.agent_secret_end_previous(agent=agent, actor=access.actor)


@records_denials
def connection_create(*, access: Access, name: str, audience: str, scopes):
    return services.connection_create(org=access.org, name=name, audience=audience, scopes=scopes,
                                      actor=access.actor, created_by=access.creator_user)


@records_denials
def connection_update(*, access: Access, connection, name: str | None = None, scopes=None,
                      min_trust: int | None = None):
    """`min_trust` is a trust setting: it also takes trust:write."""
    assert_in_org(access, connection)
    if min_trust is not None and not access.has(Perm.TRUST_WRITE):
        raise Forbidden("Changing a connection's minimum trust score needs trust:write.")
    return services.connection_update(connection=connection, actor=access.actor, name=name, scopes=scopes,
                                      min_trust=min_trust)


@records_denials
def connection_secret_rotate(*, access: Access, connection):
    """A new introspection secret, shown once; the previous one stops at once."""
    assert_in_org(access, connection)
    return services.connection_secret_rotate(connection=connection, actor=access.actor)


@records_denials
def connection_delete(*, access: Access, connection) -> None:
    assert_in_org(access, connection)
    services.connection_delete(connection=connection, actor=access.actor)


@records_denials
def run_start(*, access: Access, agent, description: str = ""):
    assert_in_org(access, agent)
    return runs.run_start(agent=agent, actor=access.actor, description=description)


@records_denials
def run_terminate(*, access: Access, run):
    assert_in_org(access, run)
    return runs.run_terminate(run=run, actor=access.actor)


@records_denials
def run_complete(*, access: Access, run):
    assert_in_org(access, run)
    return runs.run_complete(run=run, actor=access.actor)


@records_denials
def run_stop(*, access: Access, run, grace_seconds: int | None = None):
    assert_in_org(access, run)
    return runs.run_stop(run=run, actor=access.actor, grace_seconds=grace_seconds)


@records_denials
def agent_policy_update(*, access: Access, **changes):
    """Change the org's agent settings (the view's permission is all it takes)."""
    return agent_policy_set(org=access.org, actor=access.actor, **changes)


@records_denials
@transaction.atomic
def agent_delegates_set(*, access: Access, agent, targets):
    """Who the agent may hand its tokens on to. Its owners decide (or someone who can manage every
    owner), and only within their own power: the caller must hold what each target's grant needs,
    so nobody wires their agent's authority into an agent stronger than they are."""
    assert_in_org(access, agent, *targets)
    me = _own_membership(access)
    if not (me is not None and me.can_act and agent.owners.filter(pk=me.pk).exists()):
        for owner in sorted(agent.owners.all(), key=lambda m: str(m.pk)):
            assert_can_manage_member(access, owner, reason="agent_delegates")
    current = set(agent.may_delegate_to.values_list("pk", flat=True))
    for target in targets:
        if target.pk in current:
            continue  # already allowed: keeping it is no new grant of power
        missing = {scope_needs(s) for s in target.scopes} - access.perms
        if missing:
            raise Forbidden(
                f"{target.name} holds more than you do; you cannot let {agent.name} delegate to it.",
                code="escalation_denied",
                audit=DenialAudit(org=access.org, actor=access.actor, event=AuditEvent.ESCALATION_DENIED,
                                  data={"reason": "may_delegate_to", "missing": sorted(missing)}))
    return services.agent_delegates_set(agent=agent, targets=targets, actor=access.actor)


def _may_revoke_delegation(access: Access, delegation) -> bool:
    """The person who granted it, an owner of its agent, or an admin (who manages members)."""
    if access.user is not None and access.user.pk == delegation.user_id:
        return True
    me = _own_membership(access)
    if me is not None and me.can_act and delegation.agent.owners.filter(pk=me.pk).exists():
        return True
    return access.has(Perm.MEMBER_WRITE)


@records_denials
def delegation_revoke(*, access: Access, delegation) -> bool:
    assert_in_org(access, delegation)
    if not _may_revoke_delegation(access, delegation):
        raise Forbidden("Only the person who granted it, the agent's owners or an admin can revoke this.",
                        audit=DenialAudit(org=access.org, actor=access.actor,
                                          event=AuditEvent.PERMISSION_DENIED,
                                          target=None, data={"reason": "delegation_revoke",
                                                             "action": "delegation.revoke"}))
    return delegation_effects.delegation_revoke(delegation=delegation, actor=access.actor, reason="revoked")


def delegation_revoke_own(*, user, delegation) -> bool:
    """A person revokes a delegation they granted (their "Agents acting for me" page, any org)."""
    if delegation.user_id != user.pk:
        raise NotFound("No such delegation.")
    return delegation_effects.delegation_revoke(delegation=delegation, actor=Actor.for_user(user),
                                                reason="revoked_by_person")


@records_denials
@transaction.atomic
def agent_update(*, access: Access, agent, scopes=None, audiences=None, owners=None, targets=None,
                 approved_versions=None, networks=None):
    """The admin API's change of an agent: its grant and owners, the agents it may delegate to
    (`targets`), the versions and networks its trust score expects, or several, in one transaction,
    so either all of it applies or none of it does."""
    others = (targets, approved_versions, networks)
    grant = (scopes, audiences, owners)
    if all(value is None for value in others) or any(value is not None for value in grant):
        agent = agent_grant_update(access=access, agent=agent, scopes=scopes, audiences=audiences,
                                   owners=owners)
    if targets is not None:
        agent = agent_delegates_set(access=access, agent=agent, targets=targets)
    if approved_versions is not None or networks is not None:
        assert_in_org(access, agent)
        assert_not_itself(access, agent)
        agent = services.agent_trust_inputs_set(agent=agent, actor=access.actor,
                                                approved_versions=approved_versions, networks=networks)
    return agent


def delegations_revocable(*, access: Access, agent, delegations) -> set:
    """Which of `agent`'s delegations the caller may revoke (the pages offer those a button): the
    rule of `delegation_revoke`, with the caller's ownership of the agent read once."""
    me = _own_membership(access)
    anyone = access.has(Perm.MEMBER_WRITE) or (
        me is not None and me.can_act and agent.owners.filter(pk=me.pk).exists())
    mine = access.user.pk if access.user is not None else None
    return {d.pk for d in delegations if d.agent_id == agent.pk and (anyone or d.user_id == mine)}
