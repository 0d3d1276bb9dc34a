"""Periodic trust work. None of it is needed for correctness: approvals expire, attestations stop
counting and gates re-evaluate by their timestamps. These put expiries on record and contain agents
whose score fell while nothing asked (an attestation expired, a signal arrived) without waiting for
their next dispatch or token request."""

from celery import shared_task

from trust.containment import contained_agents_sweep
from trust.runs import approvals_lapse


@shared_task
def trust_approvals_lapse() -> int:
    return approvals_lapse()


@shared_task
def trust_containment_sweep() -> int:
    return contained_agents_sweep()
