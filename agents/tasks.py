from celery import shared_task
from django.conf import settings
from django.utils import timezone

from accounts.policy import policy_for_org
from agents.keys import signing_key_rotate
from agents.models import AgentSecret, SigningKey
from audit.actors import Actor
from audit.events import AuditEvent
from audit.services import Target, audit_record
from core.models import Organization


@shared_task
def rotation_windows_close() -> int:
    """Record the end of rotation windows that have passed. The old secret already stopped
    working at its `expires_at` (checked at authentication); this only writes the audit event."""
    now = timezone.now()
    ended = AgentSecret.objects.select_related("agent__org").filter(
        expires_at__lte=now, window_closed_audited=False)
    count = 0
    for secret in ended:
        audit_record(org=secret.agent.org, actor=Actor.system("rotation"),
                     event=AuditEvent.SECRET_WINDOW_ENDED, target=Target.of(secret.agent),
                     data={"secret": str(secret.pk), "how": "expired"})
        AgentSecret.objects.filter(pk=secret.pk).update(window_closed_audited=True)
        count += 1
    return count


@shared_task
def signing_keys_maintain() -> int:
    """Rotate each org's signing key once it is older than IAM_SIGNING_KEY_ROTATE_DAYS."""
    cutoff = timezone.now() - timezone.timedelta(days=settings.IAM_SIGNING_KEY_ROTATE_DAYS)
    stale_orgs = (SigningKey.objects.unscoped()  # a system job over every org
                  .filter(retired_at__isnull=True, activates_at__lte=cutoff).values_list("org_id", flat=True))
    rotated = 0
    for org in Organization.objects.filter(pk__in=set(stale_orgs)):
        signing_key_rotate(org=org, alg=policy_for_org(org).token_alg)
        rotated += 1
    return rotated
