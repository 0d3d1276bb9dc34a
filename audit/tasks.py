import logging

from celery import shared_task

from audit.selectors import audit_chains
from audit.services import chain_verify_whole

logger = logging.getLogger("iam.audit")


@shared_task
def audit_verify_all_task() -> dict:
    """Hourly: walk every whole chain, marking the intact ones verified (so API calls need only check
    what is new, audit/verification.py), and log loudly when one is broken."""
    broken = {}
    for chain in audit_chains():
        verdict = chain_verify_whole(chain=chain)
        if not verdict.ok:
            broken[chain] = verdict.as_dict()["first_bad"]
            logger.error("audit chain %s broken at seq %s: %s", chain, verdict.first_bad_seq,
                         verdict.reason)
    return {"broken": broken}
