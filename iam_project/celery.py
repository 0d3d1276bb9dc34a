"""Celery application. Tasks are thin (see the house style); the beat schedule lives here."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iam_project.settings")

app = Celery("iam_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    "rotation-windows-close": {"task": "agents.tasks.rotation_windows_close", "schedule": 60},
    "signing-keys-maintain": {"task": "agents.tasks.signing_keys_maintain", "schedule": 60 * 60},
    "revocation-rows-prune": {"task": "agents.tasks.revocation_rows_prune", "schedule": 60 * 60},
    "delegation-rows-prune": {"task": "agents.tasks.delegation_rows_prune", "schedule": 60 * 60},
    "trust-approvals-lapse": {"task": "trust.tasks.trust_approvals_lapse", "schedule": 60},
    "trust-containment-sweep": {"task": "trust.tasks.trust_containment_sweep", "schedule": 5 * 60},
    "sso-connections-maintain": {"task": "sso.tasks.sso_connections_maintain", "schedule": 24 * 60 * 60},
    "sso-flows-prune": {"task": "sso.tasks.sso_flows_prune", "schedule": 60 * 60},
    "auth-records-cleanup": {
        "task": "accounts.tasks.auth_records_cleanup",
        "schedule": 60 * 60,
    },
    "audit-verify-chains": {
        "task": "audit.tasks.audit_verify_all_task",
        "schedule": 60 * 60,
    },
}


@app.task(name="iam.ping")
def ping() -> str:
    """Liveness probe for workers: `celery -A iam_project call iam.ping`."""
    return "pong"
