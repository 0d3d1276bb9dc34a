"""Dispatch and escalation: starting a run through the gates, and a person's approval of a run
that a gate escalated.

`run_dispatch` asks the gates (trust.dispatch) and then records, in one transaction, the run
(agents.runs) and, when escalated, its `Approval`; every decision is audited with the score, level
and reasons of that moment (`trust.allow`, `trust.escalate`, `trust.deny`). A blocked dispatch
writes nothing but its audit entry.

An approval is decided once, by a member holding trust:approve who is not the person who dispatched
the run (nor, with the org's separation of duties on, one of the agent's owners). It expires by its
timestamp: the run reads terminated from then on whether or not `approvals_lapse` has run.
"""

import logging
import re
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import ACTING_STATUSES, Membership
from accounts.tasks import account_mail_send
from agents import runs as agent_runs
from agents.models import Agent, Run, RunStatus
from audit.actors import Actor
from audit.events import AuditEvent, Outcome
from audit.services import Target, audit_record, records_denials
from core.errors import Conflict, DenialAudit, Forbidden, Invalid
from core.permissions import Perm
from trust.dispatch import Decision, dispatch_evaluate, org_trust_for
from trust.models import Approval, ApprovalStatus

logger = logging.getLogger(__name__)

OPERATION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$")


class DispatchBlocked(Exception):
    def __init__(self, decision: Decision):
        super().__init__("dispatch blocked")
        self.decision = decision


@dataclass(frozen=True)
class Dispatched:
    run: Run
    decision: Decision
    approval: Approval | None = None


def _dispatch_shape(agent: Agent, operation, audiences) -> tuple[str, list | None]:
    if operation is None:
        operation = ""
    if not isinstance(operation, str) or (operation and not OPERATION_PATTERN.match(operation)):
        message = "An operation name: letters, digits and . _ : / -, at most 100 characters."
        raise Invalid(message, fields={"operation": [message]})
    if audiences is None:
        return operation, None
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences) or not audiences:
        raise Invalid("A list of audiences.", fields={"audiences": ["A non-empty list of audiences."]})
    unknown = sorted(set(audiences) - set(agent.audiences))
    if unknown:
        message = "The agent's grant does not name these services: " + ", ".join(unknown)
        raise Invalid(message, fields={"audiences": [message]})
    return operation, sorted(set(audiences))


def _decision_data(
    decision: Decision, agent: Agent, *, operation, audiences, run=None, approval=None, actor: Actor
) -> dict:
    return decision.audit_data(
        agent=str(agent.pk),
        run=str(run.pk) if run else None,
        operation=operation,
        audiences=audiences,
        path="dispatch",
        approval=str(approval.pk) if approval else None,
        dispatched_by={"type": actor.type, "id": actor.id},
    )


def run_dispatch(
    *,
    agent: Agent,
    actor: Actor,
    description: str = "",
    operation=None,
    audiences=None,
    requested_by_user=None,
    chain=(),
) -> Dispatched:
    """Dispatch a run of `agent`: allowed (running), escalated (waiting for approval, with its
    Approval) or blocked (DispatchBlocked, nothing written but the audit entry)."""
    operation, audiences = _dispatch_shape(agent, operation, audiences)
    needed = agent.audiences if audiences is None else audiences
    decision = dispatch_evaluate(agent, operation=operation or None, audiences=needed)
    agent.refresh_from_db(fields=["status"])  # the evaluation may have contained it
    if decision.decision == "block":
        audit_record(
            org=agent.org,
            actor=actor,
            event=AuditEvent.TRUST_DENIED,
            target=Target.of(agent),
            outcome=Outcome.DENIED,
            data=_decision_data(decision, agent, operation=operation, audiences=needed, actor=actor),
        )
        raise DispatchBlocked(decision)
    with transaction.atomic():
        fields = {
            "agent": agent,
            "actor": actor,
            "description": description,
            "operation": operation,
            "audiences": needed,
            "decision": decision.decision,
            "trust_score": decision.score,
            "trust_level": decision.level,
        }
        if decision.decision == "allow":
            run = agent_runs.run_start(**fields)
            audit_record(
                org=agent.org,
                actor=actor,
                event=AuditEvent.TRUST_ALLOWED,
                target=Target.of(run),
                data=_decision_data(
                    decision, agent, operation=operation, audiences=needed, run=run, actor=actor
                ),
            )
            return Dispatched(run, decision)
        org_trust = org_trust_for(agent.org)
        expires = timezone.now() + timedelta(seconds=org_trust.approval_ttl_seconds)
        run = agent_runs.run_start(**fields, status=RunStatus.PENDING_APPROVAL, pending_until=expires)
        approval = Approval.objects.create(
            org=agent.org,
            run=run,
            agent=agent,
            operation=operation,
            score=decision.score,
            level=decision.level,
            reasons=decision.reasons,
            gates=[g.as_dict() for g in decision.gates],
            chain=list(chain),
            requested_by_type=actor.type,
            requested_by_id=actor.id,
            requested_by_display=actor.display,
            requested_by_user=requested_by_user,
            expires_at=expires,
        )
        audit_record(
            org=agent.org,
            actor=actor,
            event=AuditEvent.TRUST_ESCALATED,
            target=Target.of(run),
            data=_decision_data(
                decision,
                agent,
                operation=operation,
                audiences=needed,
                run=run,
                approval=approval,
                actor=actor,
            ),
        )
        transaction.on_commit(lambda: _tell_approvers(approval.pk, agent.org_id))
        return Dispatched(run, decision, approval)


# Approvals ------------------------------------------------------------------------------------


def _dispatching_people(approval: Approval) -> set:
    """The people behind the dispatch: its person, and when an agent dispatched it with no person
    in its chain, that agent's owners and the holders of its secrets (they may not approve what
    they had their own agent ask for)."""
    people = {approval.requested_by_user_id} - {None}
    if approval.requested_by_type == "agent" and not people:
        dispatcher = Agent.objects.for_org(approval.org_id).filter(pk=approval.requested_by_id).first()
        if dispatcher is not None:
            people |= set(dispatcher.owners.values_list("user_id", flat=True))
            holders = dispatcher.secrets.exclude(created_by=None).values_list("created_by_id", flat=True)
            people |= set(holders)
    return people


def approvers(approval: Approval) -> list[Membership]:
    """Acting members who hold trust:approve and may decide this approval."""
    from rbac.guard import membership_permissions

    policy_owners = _dispatching_people(approval)
    if org_trust_for(approval.org).separation_of_duties:
        policy_owners |= set(approval.agent.owners.values_list("user_id", flat=True))
    found = []
    members = (
        Membership.objects.for_org(approval.org_id)
        .filter(status__in=ACTING_STATUSES)
        .select_related("user", "org")
    )
    for membership in members:
        if membership.user_id in policy_owners:
            continue
        if Perm.TRUST_APPROVE in membership_permissions(membership):
            found.append(membership)
    return found


def _tell_approvers(approval_id, org_id) -> None:
    approval = (
        Approval.objects.for_org(org_id).select_related("org", "agent", "run").filter(pk=approval_id).first()
    )
    if approval is None:
        return
    link = f"{settings.IAM_CANONICAL_ORIGIN.rstrip('/')}/orgs/{approval.org.slug}/approvals/{approval.pk}/"
    body = (
        f"{approval.requested_by_display or approval.requested_by_type} dispatched a run of the agent "
        f"{approval.agent.name} in {approval.org.name}"
        + (f" for {approval.operation}" if approval.operation else "")
        + f". A trust gate asks a person to approve it: the agent scores {approval.score} "
        f"({approval.level}).\n\nWhy:\n"
        + "".join(f"- {reason}\n" for reason in approval.reasons[:10])
        + f"\nApprove or deny it by {approval.expires_at:%Y-%m-%d %H:%M} UTC at {link}\n"
    )
    for membership in approvers(approval):
        if membership.user.email:
            try:
                account_mail_send.delay(
                    membership.user.email, f"Approval needed: {approval.agent.name}", body
                )
            except Exception:
                logger.error("could not queue an approval mail", exc_info=True)


def _refused(approval: Approval, actor: Actor, reason: str) -> DenialAudit:
    return DenialAudit(
        approval.org,
        actor,
        AuditEvent.APPROVAL_REFUSED,
        Target.of(approval.run),
        {"reason": reason, "run": str(approval.run_id)},
    )


def approval_lapse(approval: Approval, *, now=None) -> bool:
    """End an open approval whose time is up (and its run), on record. True if it lapsed now."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = Approval.objects.for_org(approval.org_id).select_for_update().get(pk=approval.pk)
        if locked.status != ApprovalStatus.PENDING or locked.expires_at > now:
            return False
        locked.status, locked.decided_at = ApprovalStatus.EXPIRED, now
        locked.save(update_fields=["status", "decided_at"])
        system = Actor.system("approval expiry")
        agent_runs.run_terminate(run=locked.run, actor=system, reason="approval_expired")
        audit_record(
            org=locked.org,
            actor=system,
            event=AuditEvent.APPROVAL_EXPIRED,
            target=Target.of(locked.run),
            data={"run": str(locked.run_id), "agent": str(locked.agent_id), "operation": locked.operation},
        )
    approval.status = ApprovalStatus.EXPIRED
    return True


def approvals_lapse(*, now=None) -> int:
    """Periodic housekeeping over every org: record the expiry of approvals nobody decided. Each
    already counts as expired by its timestamp; this only puts it on record and ends its run."""
    now = now or timezone.now()
    due = Approval.objects.unscoped().filter(status=ApprovalStatus.PENDING, expires_at__lte=now)  # every org
    lapsed = 0
    for approval in due.select_related("org", "run"):
        try:  # one that fails is logged; the others are still recorded
            lapsed += approval_lapse(approval, now=now)
        except Exception:
            logger.error("could not record the expiry of approval %s", approval.pk, exc_info=True)
    return lapsed


def _assert_may_decide(approval: Approval, *, user, actor: Actor, now) -> None:
    if approval.status_at(now) == ApprovalStatus.CANCELLED:
        raise Conflict("The run has ended: nothing to approve.", code="approval_cancelled",
                       audit=_refused(approval, actor, "cancelled"))
    if approval.status_at(now) == ApprovalStatus.EXPIRED:
        raise Conflict(
            "The approval has expired.", code="approval_expired", audit=_refused(approval, actor, "expired")
        )
    if approval.status != ApprovalStatus.PENDING:
        raise Conflict(
            "The approval has been decided.",
            code="approval_decided",
            audit=_refused(approval, actor, "decided"),
        )
    if user is None:
        raise Forbidden(
            "Approvals are decided by a person.",
            code="approval_needs_person",
            audit=_refused(approval, actor, "no_person"),
        )
    if user.pk in _dispatching_people(approval):
        raise Forbidden(
            "You dispatched this run: someone else must approve it.",
            code="separation_of_duties",
            audit=_refused(approval, actor, "dispatcher"),
        )
    if org_trust_for(approval.org).separation_of_duties and approval.agent.owners.filter(user=user).exists():
        raise Forbidden(
            "You own this agent: with separation of duties on, someone else must approve it.",
            code="separation_of_duties",
            audit=_refused(approval, actor, "agent_owner"),
        )


@records_denials
def approval_decide(*, approval: Approval, approve: bool, user, actor: Actor, comment: str = "") -> Approval:
    """Approve (the run starts running and may mint run-bound tokens) or deny (the run ends)."""
    if not isinstance(comment, str) or len(comment) > 500:
        raise Invalid("At most 500 characters.", fields={"comment": ["At most 500 characters."]})
    approval_lapse(approval)
    with transaction.atomic():
        locked = (
            Approval.objects.for_org(approval.org_id)
            .select_for_update()
            .select_related("org", "agent", "run")
            .get(pk=approval.pk)
        )
        now = timezone.now()  # after the lock: one that expired while waiting for it is expired
        _assert_may_decide(locked, user=user, actor=actor, now=now)
        locked.status = ApprovalStatus.APPROVED if approve else ApprovalStatus.DENIED
        locked.decided_by, locked.decided_at, locked.comment = user, now, comment
        locked.save(update_fields=["status", "decided_by", "decided_at", "comment"])
        if approve:
            agent_runs.run_release(run=locked.run, actor=actor)
            audit_record(
                org=locked.org,
                actor=actor,
                event=AuditEvent.APPROVAL_APPROVED,
                target=Target.of(locked.run),
                data={
                    "run": str(locked.run_id),
                    "agent": str(locked.agent_id),
                    "operation": locked.operation,
                    "score": locked.score,
                    "level": locked.level,
                },
            )
        else:
            agent_runs.run_terminate(run=locked.run, actor=actor, reason="approval_denied")
            audit_record(
                org=locked.org,
                actor=actor,
                event=AuditEvent.APPROVAL_DENIED,
                target=Target.of(locked.run),
                data={
                    "run": str(locked.run_id),
                    "agent": str(locked.agent_id),
                    "operation": locked.operation,
                    "comment": comment,
                },
            )
    return locked
