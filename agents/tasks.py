"""Background jobs of agents: thin, idempotent, each calling one service."""

from celery import shared_task

from agents.delegation import delegation_records_prune
from agents.keys import signing_keys_rotate_due
from agents.revocation import revocations_prune
from agents.rotation import rotation_windows_record


@shared_task
def rotation_windows_close() -> int:
    """Record the end of rotation windows that have passed (the secrets already stopped working)."""
    return rotation_windows_record()


@shared_task
def signing_keys_maintain() -> int:
    """Rotate each org's signing key once it is older than IAM_SIGNING_KEY_ROTATE_DAYS."""
    return signing_keys_rotate_due()


@shared_task
def revocation_rows_prune() -> int:
    """Delete revocation rows that can no longer kill any unexpired token (verification never needs
    this to run: it only keeps the tables small)."""
    return revocations_prune()


@shared_task
def delegation_rows_prune() -> int:
    """Delete device requests and refresh tokens past any use (each is refused by its own timestamps
    whether or not this runs)."""
    return delegation_records_prune()
