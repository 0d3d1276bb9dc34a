"""Writes for agents, their secrets, connections and runs. Each one is audited."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from accounts.models import ACTING_STATUSES, Membership
from accounts.policy import policy_for_org
from agents import revocation
from agents.grants import delegable_scopes, scope_needs
from agents.models import Agent, AgentSecret, AgentStatus, Connection, Run, RunStatus, new_client_id
from agents.selectors import owners_permissions
from audit.actors import Actor
from audit.events import AuditEvent
from audit.services import Target, audit_record, records_denials
from core.errors import Conflict, DenialAudit, Forbidden, Invalid
from rbac.access import Access
from rbac.guard import membership_permissions

DEFAULT_OVERLAP = timedelta(hours=1)


def _validate_grant(access: Access, scopes, audiences, owners) -> tuple[list, list]:
    scopes, audiences = sorted(set(scopes)), sorted(set(audiences))
    if not audiences:
        raise Invalid("Give the agent at least one audience.", fields={"audiences": ["Required."]})
    connections = list(Connection.objects.for_org(access.org).filter(audience__in=audiences))
    known = {c.audience for c in connections}
    if known != set(audiences):
        raise Invalid("Unknown audience.", fields={
            "audiences": [f"No connection has the audience {a}." for a in audiences if a not in known]})
    offered = set().union(*(c.scopes for c in connections))
    if set(scopes) - offered:
        raise Invalid("Unknown scope.", fields={
            "scopes": [f"No connection of this agent accepts {s}." for s in scopes if s not in offered]})
    # The caller and every owner must be able to hand out each scope: no escalation by naming a
    # more powerful owner, and no agent stronger than the people accountable for it.
    needed = {scope_needs(s) for s in scopes}
    missing = needed - access.perms
    owner_perms = [membership_permissions(o) for o in owners]
    for perms in owner_perms:
        missing |= needed - perms
    if missing:
        raise Forbidden(
            "The agent's grant would exceed what you or its owners hold.", code="escalation_denied",
            audit=DenialAudit(org=access.org, actor=access.actor, event=AuditEvent.ESCALATION_DENIED,
                              data={"reason": "agent_grant", "missing": sorted(missing)}),
        )
    return scopes, audiences


def _owners(access: Access, owner) -> list[Membership]:
    if owner is not None:
        if owner.org_id != access.org.pk or owner.status not in ACTING_STATUSES:
            raise Invalid("The owner must be an active member.", fields={"owner": ["Not an active member."]})
        return [owner]
    creator = access.creator_user
    membership = Membership.objects.for_org(access.org).filter(user=creator).first() if creator else None
    if membership is None:
        raise Invalid("Name an owner for the agent.", fields={"owner": ["Required for this caller."]})
    return [membership]


def _secret_create(agent: Agent, created_by=None) -> tuple[AgentSecret, str]:
    fields, display = AgentSecret.mint()
    secret = AgentSecret.objects.create(agent=agent, created_by=created_by, **fields)
    return secret, display


@records_denials
@transaction.atomic
def agent_create(*, access: Access, name: str, scopes, audiences, owner=None) -> tuple[Agent, str]:
    """Register an agent with its grant and first client secret (returned once)."""
    owners = _owners(access, owner)
    scopes, audiences = _validate_grant(access, scopes, audiences, owners)
    if Agent.objects.for_org(access.org).filter(name=name).exists():
        raise Conflict("An agent with this name already exists.", code="duplicate",
                       fields={"name": ["Already taken."]})
    agent = Agent.objects.create(org=access.org, name=name, client_id=new_client_id("agt"),
                                 scopes=scopes, audiences=audiences)
    agent.owners.set(owners)
    secret, display = _secret_create(agent, access.creator_user)
    audit_record(org=access.org, actor=access.actor, event=AuditEvent.AGENT_CREATED, target=Target.of(agent),
                 data={"name": name, "scopes": scopes, "audiences": audiences,
                       "owners": [str(o.pk) for o in owners]})
    audit_record(org=access.org, actor=access.actor, event=AuditEvent.SECRET_ISSUED, target=Target.of(agent),
                 data={"secret": str(secret.pk)})
    return agent, display


@records_denials
@transaction.atomic
def agent_grant_update(*, access: Access, agent: Agent, scopes=None, audiences=None, owners=None) -> Agent:
    owners = owners if owners is not None else list(agent.owners.all())
    if not owners:
        raise Invalid("An agent needs at least one owner.", fields={"owners": ["Required."]})
    previous = (list(agent.scopes), list(agent.audiences))
    new_scopes, new_audiences = _validate_grant(
        access, agent.scopes if scopes is None else scopes,
        agent.audiences if audiences is None else audiences, owners)
    agent.scopes, agent.audiences = new_scopes, new_audiences
    agent.save(update_fields=["scopes", "audiences"])
    agent.owners.set(owners)
    audit_record(org=access.org, actor=access.actor, event=AuditEvent.AGENT_GRANT_CHANGED,
                 target=Target.of(agent),
                 data={"scopes": new_scopes, "audiences": new_audiences, "previous_scopes": previous[0],
                       "previous_audiences": previous[1], "owners": [str(o.pk) for o in owners]})
    return agent


@records_denials
@transaction.atomic
def agent_secret_rotate(*, access: Access, agent: Agent, overlap_seconds: int | None = None):
    """A new secret now; the previous one keeps working until the end of the overlap window.

    Returns (new secret, previous secret's end). The agent row is locked, so concurrent rotations
    leave exactly one new secret, and at most two secrets are ever live.
    """
    agent = Agent.objects.for_org(access.org).select_for_update().get(pk=agent.pk)
    _assert_usable(agent)
    policy = policy_for_org(access.org)
    overlap = DEFAULT_OVERLAP if overlap_seconds is None else timedelta(seconds=overlap_seconds)
    if overlap < timedelta(0) or overlap.total_seconds() > policy.secret_overlap_max_seconds:
        raise Invalid("The overlap window is outside the org's policy.", fields={"overlap_seconds": [
            f"Between 0 and {policy.secret_overlap_max_seconds} seconds."]})
    now = timezone.now()
    live = [s for s in agent.secrets.order_by("-created_at") if s.is_live(now)]
    current, older = (live[0], live[1:]) if live else (None, [])
    for stale in older:  # a previous window still open ends now: never three live secrets
        _secret_end(access.actor, stale, now, how="superseded")
    previous_end = None
    if current is not None:
        previous_end = now + overlap
        current.expires_at = previous_end
        current.save(update_fields=["expires_at"])
        if overlap == timedelta(0):
            _secret_end(access.actor, current, now, how="immediate")
    secret, display = _secret_create(agent, access.creator_user)
    audit_record(org=access.org, actor=access.actor, event=AuditEvent.SECRET_ROTATED, target=Target.of(agent),
                 data={"secret": str(secret.pk), "previous": str(current.pk) if current else None,
                       "previous_expires_at": previous_end})
    return display, previous_end


def _secret_end(actor: Actor | None, secret: AgentSecret, now, *, how: str) -> None:
    secret.expires_at = min(secret.expires_at or now, now)
    secret.window_closed_audited = True
    secret.save(update_fields=["expires_at", "window_closed_audited"])
    revocation.cut_off("cred", str(secret.pk))
    audit_record(org=secret.agent.org, actor=actor or Actor.system("rotation"),
                 event=AuditEvent.SECRET_WINDOW_ENDED, target=Target.of(secret.agent),
                 data={"secret": str(secret.pk), "how": how})


@records_denials
@transaction.atomic
def agent_secret_end_previous(*, access: Access, agent: Agent) -> int:
    """End the rotation window now: only the newest secret keeps working, at once."""
    agent = Agent.objects.for_org(access.org).select_for_update().get(pk=agent.pk)
    now = timezone.now()
    live = [s for s in agent.secrets.order_by("-created_at") if s.is_live(now)]
    for secret in live[1:]:
        _secret_end(access.actor, secret, now, how="ended_early")
    return len(live[1:])


def _assert_usable(agent: Agent) -> None:
    if agent.status == AgentStatus.REVOKED:
        raise Conflict("This agent is revoked.", code="agent_revoked")


@records_denials
@transaction.atomic
def agent_set_status(*, access: Access, agent: Agent, status: str) -> Agent:
    """Suspend (tokens die at once, new ones are refused) or resume an agent."""
    _assert_usable(agent)
    if status not in (AgentStatus.ACTIVE, AgentStatus.SUSPENDED):
        raise Invalid("Unknown status.", fields={"status": ["Use active or suspended."]})
    if status == agent.status:
        return agent
    agent.status = status
    agent.save(update_fields=["status"])
    if status == AgentStatus.SUSPENDED:
        revocation.cut_off("agent", agent.subject)
    event = AuditEvent.AGENT_SUSPENDED if status == AgentStatus.SUSPENDED else AuditEvent.AGENT_RESUMED
    audit_record(org=access.org, actor=access.actor, event=event, target=Target.of(agent))
    return agent


# The next two act for the org's deprovisioning policy (scim.provisioning): the caller holds an
# actor (the SCIM token, or the human deprovisioning), not an Access to check.


@transaction.atomic
def agent_suspend_orphaned(*, agent: Agent, actor: Actor) -> Agent:
    """Suspend an agent nobody can answer for any more: its tokens die at once, every live secret
    ends, and new tokens are refused until an owner resumes it and rotates in a new secret."""
    agent = Agent.objects.for_org(agent.org).select_for_update().get(pk=agent.pk)
    if agent.status == AgentStatus.REVOKED:
        return agent
    now = timezone.now()
    if agent.status != AgentStatus.SUSPENDED:
        agent.status = AgentStatus.SUSPENDED
        agent.save(update_fields=["status"])
        audit_record(org=agent.org, actor=actor, event=AuditEvent.AGENT_SUSPENDED, target=Target.of(agent))
    revocation.cut_off("agent", agent.subject)
    for secret in agent.secrets.order_by("created_at"):
        if secret.is_live(now):
            _secret_end(actor, secret, now, how="owner_deprovisioned")
    return agent


@transaction.atomic
def agent_owner_replace(*, agent: Agent, leaving: Membership, actor: Actor,
                        successor: Membership | None = None) -> Agent:
    """Take `leaving` off the agent's owners, adding `successor` (the org's fallback owner) if given.

    No escalation check against the successor: the org's policy named them, and every issuance
    checks the grant against the owners' permissions of the moment anyway.
    """
    agent.owners.remove(leaving)
    if successor is not None:
        agent.owners.add(successor)
    owners = sorted(str(pk) for pk in agent.owners.values_list("pk", flat=True))
    audit_record(org=agent.org, actor=actor, event=AuditEvent.AGENT_GRANT_CHANGED, target=Target.of(agent),
                 data={"scopes": agent.scopes, "audiences": agent.audiences, "previous_scopes": agent.scopes,
                       "previous_audiences": agent.audiences, "owners": owners})
    return agent


def _fallback_owner(org, leaving: Membership) -> Membership | None:
    """The policy's fallback owner when the policy says "reassign" and that member can act."""
    policy = policy_for_org(org)
    if policy.deprovision_agents != "reassign" or not policy.deprovision_fallback_owner_id:
        return None
    fallback = Membership.objects.for_org(org).filter(pk=policy.deprovision_fallback_owner_id).first()
    if fallback is None or fallback.pk == leaving.pk or not fallback.can_act:
        return None
    return fallback


@transaction.atomic
def agents_release_owner(*, membership: Membership, actor: Actor) -> tuple[int, int]:
    """A member leaves: take them off every agent they own here; agents left with no acting owner
    go to the org's fallback owner, or are suspended with their credentials (the org's policy).

    Returns (reassigned, suspended).
    """
    org = membership.org
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


@records_denials
@transaction.atomic
def agent_revoke(*, access: Access, agent: Agent) -> Agent:
    """Revoke the agent and everything issued under it: secrets, tokens, runs. Final."""
    agent = Agent.objects.for_org(access.org).select_for_update().get(pk=agent.pk)
    if agent.status == AgentStatus.REVOKED:
        return agent
    now = timezone.now()
    agent.status, agent.revoked_at = AgentStatus.REVOKED, now
    agent.save(update_fields=["status", "revoked_at"])
    agent.secrets.filter(revoked_at__isnull=True).update(revoked_at=now)
    revocation.cut_off("agent", agent.subject)
    runs = list(Run.objects.for_org(access.org).filter(agent=agent, status=RunStatus.RUNNING))
    for run in runs:
        _run_end(access, run, reason="agent_revoked")
    audit_record(org=access.org, actor=access.actor, event=AuditEvent.AGENT_REVOKED, target=Target.of(agent),
                 data={"runs_cancelled": len(runs)})
    return agent


@records_denials
@transaction.atomic
def connection_create(*, access: Access, name: str, audience: str, scopes) -> tuple[Connection, str]:
    """Register a downstream service; returns it with its introspection secret (shown once)."""
    scopes = sorted(set(scopes))
    if Connection.objects.for_org(access.org).filter(audience=audience).exists():
        raise Conflict("A connection with this audience exists.", code="duplicate",
                       fields={"audience": ["Already registered."]})
    if Connection.objects.for_org(access.org).filter(name=name).exists():
        raise Conflict("A connection with this name exists.", code="duplicate", fields={"name": ["Taken."]})
    fields, display = Connection.mint()
    connection = Connection.objects.create(
        org=access.org, name=name, audience=audience, scopes=scopes, client_id=new_client_id("cnc"),
        created_by=access.creator_user, **fields)
    audit_record(org=access.org, actor=access.actor, event=AuditEvent.CONNECTION_CREATED,
                 target=Target.of(connection), data={"name": name, "audience": audience, "scopes": scopes})
    return connection, display


@records_denials
@transaction.atomic
def run_start(*, access: Access, agent: Agent, description: str = "") -> Run:
    if agent.status != AgentStatus.ACTIVE:
        raise Conflict("Only an active agent can start a run.", code="agent_not_active")
    actor = access.actor
    run = Run.objects.create(org=access.org, agent=agent, description=description,
                             started_by_type=actor.type, started_by_id=actor.id,
                             started_by_display=actor.display)
    audit_record(org=access.org, actor=actor, event=AuditEvent.RUN_STARTED, target=Target.of(run),
                 data={"agent": str(agent.pk), "description": description})
    return run


def _run_end(access, run: Run, *, reason: str) -> None:
    run.status, run.ended_at, run.cancel_requested = RunStatus.TERMINATED, timezone.now(), True
    run.save(update_fields=["status", "ended_at", "cancel_requested"])
    revocation.cut_off("run", str(run.pk))
    audit_record(org=run.org, actor=access.actor, event=AuditEvent.RUN_TERMINATED, target=Target.of(run),
                 data={"agent": str(run.agent_id), "reason": reason})


@records_denials
@transaction.atomic
def run_terminate(*, access: Access, run: Run) -> Run:
    """End a run: every token bound to it fails its next verification; work is marked cancelled."""
    run = Run.objects.for_org(access.org).select_for_update().get(pk=run.pk)
    if run.status == RunStatus.RUNNING:
        _run_end(access, run, reason="terminated")
    return run


def agent_delegable_now(agent) -> set[str]:
    """The agent's scopes its owners can still hand out (for pages and the access review)."""
    return delegable_scopes(agent.scopes, owners_permissions(agent.pk))
