"""Containment: an agent whose score falls below the org's floor is suspended with nobody acting.

Whoever computes a score below the floor for an active agent (a gate, a signal, an attestation,
the periodic sweep) contains it through agents.services.agent_contain: its tokens and every token
delegated from them die on their next verification, its live runs end, new dispatch is blocked
(it is no longer active), and its owners are told by mail. It comes back only when an owner resumes
it, and only once its score has recovered (`resume_check`, registered with agents.services).
"""

import logging

from django.conf import settings
from django.db import transaction

from accounts.tasks import account_mail_send
from agents.models import Agent, AgentStatus
from agents.services import agent_contain
from audit.actors import Actor
from core.errors import Conflict

logger = logging.getLogger(__name__)

CONTAINMENT = Actor.system("trust containment")


def agent_contain_for_score(agent: Agent, evaluation, floor: int) -> bool:
    """Contain `agent` for `evaluation` (below `floor`). Its own transaction: a read that found the
    collapse commits the containment even if what it served is refused."""
    evidence = {
        "score": evaluation.score,
        "level": evaluation.level,
        "floor": floor,
        "reasons": list(evaluation.reasons)[:20],
    }
    with transaction.atomic():
        contained = agent_contain(agent=agent, actor=CONTAINMENT, evidence=evidence)
        if contained:
            transaction.on_commit(lambda: _tell_owners(agent.pk, agent.org_id, evaluation, floor))
    return contained


def _tell_owners(agent_id, org_id, evaluation, floor) -> None:
    agent = Agent.objects.for_org(org_id).select_related("org").filter(pk=agent_id).first()
    if agent is None:
        return
    emails = sorted({m.user.email for m in agent.owners.select_related("user") if m.user.email})
    link = f"{settings.IAM_CANONICAL_ORIGIN.rstrip('/')}/orgs/{agent.org.slug}/agents/{agent.pk}/"
    body = (
        f"Your agent {agent.name} in {agent.org.name} was suspended: its trust score fell to "
        f"{evaluation.score} ({evaluation.level}), below the organization's floor of {floor}.\n\n"
        "Its tokens stopped working and its runs were ended. Why:\n"
        + "".join(f"- {reason}\n" for reason in list(evaluation.reasons)[:10])
        + f"\nOnce its score has recovered, an owner can resume it at {link}\n"
    )
    for email in emails:
        try:
            account_mail_send.delay(email, f"Agent {agent.name} was contained", body)
        except Exception:
            logger.error("could not queue the containment mail", exc_info=True)


def resume_check(agent: Agent) -> None:
    """A contained agent may be resumed only once its score, as if it were active, is back at or
    above the org's floor."""
    if agent.contained_at is None:
        return
    from trust.dispatch import org_trust_for, score_as_active

    floor = org_trust_for(agent.org).floor
    score = score_as_active(agent)
    if score.score < floor:
        raise Conflict(
            f"Its trust score is {score.score}, below the organization's floor of {floor}: it can be "
            "resumed once the score has recovered.",
            code="trust_below_floor",
        )


def contained_agents_sweep() -> int:
    """The periodic check (Celery beat): contain every active agent whose score has fallen below the
    floor without anything asking (an attestation that expired, signals that arrived). Gates contain
    on their own whenever they compute a score; this covers agents nobody dispatches."""
    from trust.dispatch import trust_now

    contained = 0
    for agent in (
        Agent.objects.unscoped().filter(status=AgentStatus.ACTIVE).select_related("org")
    ):  # every org
        before = agent.status
        try:  # one agent that fails is logged; the sweep goes on with the others
            trust_now(agent)
        except Exception:
            logger.error("could not evaluate agent %s in the containment sweep", agent.pk, exc_info=True)
            continue
        agent.refresh_from_db(fields=["status"])
        contained += before != agent.status
    return contained
