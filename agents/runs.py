"""Task runs: one piece of work an agent does. Tokens bound to a run (`run` claim) die when it ends.

A run is dispatched (trust.dispatch decides allow, escalate or block; this module only keeps the
record), may wait for a person's approval (`pending_approval`), runs, and ends: terminated (its
tokens die now), stopped gracefully (`stopping`: the agent is told to stop and its tokens live until
`stop_by`, after which the run counts as terminated by its timestamp), or completed.
"""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from agents import revocation
from agents.models import RUN_LIVE, Agent, AgentStatus, Run, RunStatus
from audit.actors import Actor
from audit.events import AuditEvent
from audit.services import Target, audit_record, records_denials
from core.errors import Conflict, Invalid

STOP_GRACE_SECONDS = 60
MAX_STOP_GRACE_SECONDS = 600


@records_denials
@transaction.atomic
def run_start(
    *,
    agent: Agent,
    actor: Actor,
    description: str = "",
    operation: str = "",
    audiences=(),
    status: str = RunStatus.RUNNING,
    decision: str = "",
    trust_score: int | None = None,
    trust_level: str = "",
    pending_until=None,
) -> Run:
    """Record a dispatched run, running or waiting for approval as the dispatch decided. The agent's
    row is locked, so a containment (which locks it and ends its live runs) comes before or after."""
    agent = Agent.objects.for_org(agent.org_id).select_for_update().select_related("org").get(pk=agent.pk)
    if agent.status != AgentStatus.ACTIVE:
        raise Conflict("Only an active agent can start a run.", code="agent_not_active")
    run = Run.objects.create(
        org=agent.org,
        agent=agent,
        description=description,
        started_by_type=actor.type,
        started_by_id=actor.id,
        started_by_display=actor.display,
        status=status,
        operation=operation,
        audiences=list(audiences),
        decision=decision,
        trust_score=trust_score,
        trust_level=trust_level,
        pending_until=pending_until,
    )
    audit_record(
        org=agent.org,
        actor=actor,
        event=AuditEvent.RUN_STARTED,
        target=Target.of(run),
        data={"agent": str(agent.pk), "description": description, "status": status, "operation": operation},
    )
    return run


def _run_end(run: Run, actor: Actor, *, reason: str) -> None:
    run.status, run.ended_at, run.cancel_requested = RunStatus.TERMINATED, timezone.now(), True
    run.save(update_fields=["status", "ended_at", "cancel_requested"])
    revocation.cut_off("run", str(run.pk))
    audit_record(
        org=run.org,
        actor=actor,
        event=AuditEvent.RUN_TERMINATED,
        target=Target.of(run),
        data={"agent": str(run.agent_id), "reason": reason},
    )


def _locked(run: Run) -> Run:
    return Run.objects.for_org(run.org_id).select_for_update().select_related("org").get(pk=run.pk)


@transaction.atomic
def run_terminate(*, run: Run, actor: Actor, reason: str = "terminated") -> Run:
    """End a run: every token bound to it fails its next verification; work is marked cancelled."""
    run = _locked(run)
    if run.status_at(timezone.now()) in RUN_LIVE:
        _run_end(run, actor, reason=reason)
    return run


@transaction.atomic
def run_complete(*, run: Run, actor: Actor) -> Run:
    """The work is done: the run reads completed and its tokens stop working, as at an end."""
    run = _locked(run)
    if run.status_at(timezone.now()) in (RunStatus.RUNNING, RunStatus.STOPPING):
        run.status, run.ended_at = RunStatus.COMPLETED, timezone.now()
        run.save(update_fields=["status", "ended_at"])
        revocation.cut_off("run", str(run.pk))
        audit_record(org=run.org, actor=actor, event=AuditEvent.RUN_COMPLETED, target=Target.of(run),
                     data={"agent": str(run.agent_id)})
    return run


@records_denials
@transaction.atomic
def run_stop(*, run: Run, actor: Actor, grace_seconds: int | None = None) -> Run:
    """Stop a run gracefully: the agent is told (its run reads `stopping`, with `stop_by`), no new
    token is issued for it, and the tokens it holds live until the deadline. A run still waiting for
    approval has nothing to wind down: it ends at once."""
    grace = STOP_GRACE_SECONDS if grace_seconds is None else grace_seconds
    if not isinstance(grace, int) or isinstance(grace, bool) or not 0 <= grace <= MAX_STOP_GRACE_SECONDS:
        message = f"Seconds from 0 to {MAX_STOP_GRACE_SECONDS}."
        raise Invalid(message, fields={"grace_seconds": [message]})
    run = _locked(run)
    now = timezone.now()
    status = run.status_at(now)
    if status == RunStatus.PENDING_APPROVAL or (status == RunStatus.RUNNING and grace == 0):
        _run_end(run, actor, reason="stopped")
        return run
    if status != RunStatus.RUNNING:
        return run  # stopping already, or ended: a stop changes nothing
    run.status, run.stop_by, run.cancel_requested = RunStatus.STOPPING, now + timedelta(seconds=grace), True
    run.save(update_fields=["status", "stop_by", "cancel_requested"])
    revocation.cut_off("run", str(run.pk), at=run.stop_by)
    audit_record(
        org=run.org,
        actor=actor,
        event=AuditEvent.RUN_STOPPING,
        target=Target.of(run),
        data={"agent": str(run.agent_id), "stop_by": run.stop_by.isoformat()},
    )
    return run


@transaction.atomic
def run_release(*, run: Run, actor: Actor) -> Run:
    """A run whose approval was given starts running (it may now mint run-bound tokens)."""
    agent = Agent.objects.for_org(run.org_id).select_for_update().get(pk=run.agent_id)
    run = _locked(run)
    if run.status_at(timezone.now()) != RunStatus.PENDING_APPROVAL:
        raise Conflict("The run is not waiting for approval.", code="run_not_pending")
    if agent.status != AgentStatus.ACTIVE:
        raise Conflict("The agent is not active: its run cannot start.", code="agent_not_active")
    run.status, run.decision = RunStatus.RUNNING, "allow"
    run.save(update_fields=["status", "decision"])
    audit_record(
        org=run.org,
        actor=actor,
        event=AuditEvent.RUN_RELEASED,
        target=Target.of(run),
        data={"agent": str(run.agent_id)},
    )
    return run


def runs_end_for_agent(*, agent: Agent, actor: Actor, reason: str) -> int:
    """End every live run of the agent (within the caller's transaction). Returns how many."""
    runs = list(
        Run.objects.for_org(agent.org_id).select_for_update().filter(agent=agent, status__in=RUN_LIVE)
    )
    for run in runs:
        _run_end(run, actor, reason=reason)
    return len(runs)
