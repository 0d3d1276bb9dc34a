"""Task runs: one piece of work an agent does. Tokens bound to a run (`run` claim) die when it ends."""

from django.db import transaction
from django.utils import timezone

from agents import revocation
from agents.models import Agent, AgentStatus, Run, RunStatus
from audit.actors import Actor
from audit.events import AuditEvent
from audit.services import Target, audit_record, records_denials
from core.errors import Conflict


@records_denials
@transaction.atomic
def run_start(*, agent: Agent, actor: Actor, description: str = "") -> Run:
    if agent.status != AgentStatus.ACTIVE:
        raise Conflict("Only an active agent can start a run.", code="agent_not_active")
    run = Run.objects.create(org=agent.org, agent=agent, description=description, started_by_type=actor.type,
                             started_by_id=actor.id, started_by_display=actor.display)
    audit_record(org=agent.org, actor=actor, event=AuditEvent.RUN_STARTED, target=Target.of(run),
                 data={"agent": str(agent.pk), "description": description})
    return run


def _run_end(run: Run, actor: Actor, *, reason: str) -> None:
    run.status, run.ended_at, run.cancel_requested = RunStatus.TERMINATED, timezone.now(), True
    run.save(update_fields=["status", "ended_at", "cancel_requested"])
    revocation.cut_off("run", str(run.pk))
    audit_record(org=run.org, actor=actor, event=AuditEvent.RUN_TERMINATED, target=Target.of(run),
                 data={"agent": str(run.agent_id), "reason": reason})


@transaction.atomic
def run_terminate(*, run: Run, actor: Actor) -> Run:
    """End a run: every token bound to it fails its next verification; work is marked cancelled."""
    run = Run.objects.for_org(run.org_id).select_for_update().get(pk=run.pk)
    if run.status == RunStatus.RUNNING:
        _run_end(run, actor, reason="terminated")
    return run


def runs_end_for_agent(*, agent: Agent, actor: Actor, reason: str) -> int:
    """End every running run of the agent (within the caller's transaction). Returns how many."""
    runs = list(Run.objects.for_org(agent.org_id).select_for_update().filter(agent=agent,
                                                                             status=RunStatus.RUNNING))
    for run in runs:
        _run_end(run, actor, reason=reason)
    return len(runs)
