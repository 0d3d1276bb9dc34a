from datetime import timedelta
from smtplib import SMTPException

from celery import shared_task
from django.core.mail import send_mail
from django.utils import timezone

from accounts.models import PasswordResetToken, UserSession


@shared_task(autoretry_for=(SMTPException, OSError), retry_backoff=True, max_retries=5)
def account_mail_send(to: str, subject: str, body: str) -> None:
    """Send one account mail. Queued, so a slow mail server never shows in a response's timing
    (which would tell an attacker whether an address has an account)."""
    send_mail(subject, body, None, [to])


@shared_task
def auth_records_cleanup() -> dict:
    """Hourly housekeeping: delete expired sessions and reset links. Both already stop working at
    their expiry timestamp; this only keeps the tables small."""
    expired_sessions, _ = UserSession.objects.filter(expire_date__lt=timezone.now()).delete()
    old_links, _ = PasswordResetToken.objects.filter(
        expires_at__lt=timezone.now() - timedelta(days=1)).delete()
    return {"sessions": expired_sessions, "reset_links": old_links}


@shared_task
def person_event_to_orgs(user_id: str, event_code: int, actor: list, outcome: str, data: dict,
                         target: list | None, context: list) -> int:
    """Copy one event about a person's account to the log of every org they act in."""
    from accounts.person_audit import person_event_replay

    return person_event_replay(user_id, event_code, actor, outcome, data, target, context)
