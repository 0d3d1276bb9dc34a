"""Cache invalidation for the gates (trust.dispatch): every write to an input of a score or of the
org's gates writes a new version, so no cached entry computed before it counts again. A new signal
or attestation is also evaluated once committed, so that a collapse contains the agent at once
(trust.containment) rather than at its next dispatch."""

import logging

from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from agents.models import Agent, AgentSecret, Connection
from agents.signals import agent_inputs_changed, agent_observed
from core.ratelimit import counters_incr
from trust.dispatch import inputs_changed
from trust.models import Attestation, TrustGate, TrustPolicy, TrustRoot, TrustSignal

logger = logging.getLogger(__name__)

OBSERVED_PER_MINUTE = 10


@receiver([post_save, post_delete], sender=TrustPolicy)
@receiver([post_save, post_delete], sender=TrustGate)
@receiver([post_save, post_delete], sender=TrustRoot)
@receiver([post_save, post_delete], sender=Connection)
def _org_input_changed(sender, instance, **kwargs):
    inputs_changed(org_id=instance.org_id)


@receiver([post_save, post_delete], sender=Agent)
def _agent_changed(sender, instance, **kwargs):
    inputs_changed(agent_id=instance.pk)


@receiver(m2m_changed, sender=Agent.owners.through)
def _owners_changed(sender, instance, **kwargs):
    if isinstance(instance, Agent):
        inputs_changed(agent_id=instance.pk)


@receiver([post_save, post_delete], sender=AgentSecret)
def _secret_changed(sender, instance, **kwargs):
    inputs_changed(agent_id=instance.agent_id)


@receiver([post_save, post_delete], sender=Attestation)
@receiver([post_save, post_delete], sender=TrustSignal)
def _evidence_changed(sender, instance, created=False, **kwargs):
    inputs_changed(agent_id=instance.agent_id)
    if kwargs.get("signal") is post_save:
        agent_id, org_id = instance.agent_id, instance.org_id
        transaction.on_commit(lambda: _evaluate(agent_id, org_id))


def _evaluate(agent_id, org_id) -> None:
    from trust.dispatch import TrustUnavailable, trust_now

    agent = Agent.objects.for_org(org_id).select_related("org").filter(pk=agent_id).first()
    if agent is None:
        return
    try:
        trust_now(agent)  # contains it when the score fell below the floor
    except TrustUnavailable:
        logger.error("could not evaluate agent %s after new evidence", agent_id)


@receiver(agent_inputs_changed)
def _reported(sender, agent_id, **kwargs):
    inputs_changed(agent_id=agent_id)


@receiver(agent_observed)
def _observed(sender, agent_id, org_id, kind, detail="", **kwargs):
    """The token endpoint saw something its score reads (trust.services.product_signal_record)."""
    from trust import services

    # Anyone who knows a client id can cause authentication failures: each kind counts at most
    # OBSERVED_PER_MINUTE times a minute per agent, so they cannot grow the table without bound
    # (their effect on the score is capped in trust.scoring anyway).
    try:
        (count,) = counters_incr([f"trust:observed:{agent_id}:{kind}"], 60)
    except Exception:  # no counter, no bound: skip rather than record without limit
        return
    if count > OBSERVED_PER_MINUTE:
        return
    record = services.product_signal_record
    agent = Agent.objects.for_org(org_id).select_related("org").filter(pk=agent_id).first()
    if agent is None:
        return
    try:
        with transaction.atomic():
            record(agent=agent, kind=kind, detail=detail)
    except Exception:
        logger.error("could not record what the token endpoint observed", exc_info=True)
