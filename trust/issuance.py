"""The trust gates at every token issuance for a connection (registered with agents.issuance by
trust.apps): client credentials, the device code, refresh and token exchange all pass the org's
floor and the connection's minimum with the agent's score now, so no grant mints around the gates
that dispatch applies. A refusal is 403 `access_denied` with the reasons (SECURITY_CASES K.79) and
audited `trust.deny`; a score that cannot be computed refuses (503, fail closed)."""

from agents.issuance import OAuthError
from audit.actors import Actor
from audit.events import AuditEvent, Outcome
from audit.services import Target, audit_record
from trust.dispatch import TrustUnavailable, gates_apply, trust_now
from trust.models import Approval, ApprovalStatus


def _deny(agent, data: dict) -> None:
    audit_record(
        org=agent.org,
        actor=Actor.for_agent(agent),
        event=AuditEvent.TRUST_DENIED,
        outcome=Outcome.DENIED,
        target=Target("agent", str(agent.pk)),
        data=data,
    )


def _operation(org_trust, run) -> str | None:
    """The run's operation, when a gate of the org names it and no person approved the run: a run
    allowed at dispatch whose score fell below its operation's gate gets no more tokens, while an
    approved one (a person accepted the score) keeps getting them. One query, only then."""
    if run is None or not run.operation or not any(g[1] == run.operation for g in org_trust.gates):
        return None
    approved = Approval.objects.for_org(run.org_id).filter(run=run, status=ApprovalStatus.APPROVED).exists()
    return None if approved else run.operation


def issuance_gate(*, agent, audience: str, grant: str, run=None) -> dict:
    path = f"token:{grant}"
    try:
        org_trust, score = trust_now(agent)
    except TrustUnavailable:
        _deny(
            agent,
            {
                "agent": str(agent.pk),
                "path": path,
                "decision": "block",
                "reasons": ["the trust score could not be computed"],
            },
        )
        raise OAuthError("temporarily_unavailable", "Try again shortly.", 503)
    decision = gates_apply(org_trust, score, agent_status=agent.status, operation=_operation(org_trust, run),
                           audiences=[audience])
    if decision.decision != "allow":  # an escalation at issuance has nobody to ask: no token
        _deny(
            agent,
            decision.audit_data(
                agent=str(agent.pk), run=str(run.pk) if run else None, audiences=[audience], path=path
            ),
        )
        raise OAuthError(
            "access_denied",
            "The agent's trust score is below what this service requires.",
            403,
            {"reasons": decision.reasons[:20], "trust": decision.trust},
        )
    return {"trust": decision.trust}
