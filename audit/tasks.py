import logging

from celery import shared_task

from audit.selectors import audit_chains, audit_verify_chain

logger = logging.getLogger("iam.audit")


@shared_task
def audit_verify_all_task() -> dict:
    """Hourly: walk every chain and log loudly when one is broken (the API and command do the same)."""
    broken = {}
    for chain in audit_chains():
        verdict = audit_verify_chain(chain=chain)
        if not verdict.ok:
            broken[chain] = verdict.as_dict()["first_bad"]
            logger.error("audit chain %s broken at seq %s: %s", chain, verdict.first_bad_seq,
                         verdict.reason)
    return {"broken": broken}
