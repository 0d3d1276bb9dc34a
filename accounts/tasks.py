from smtplib import SMTPException

from celery import shared_task
from django.core.mail import send_mail


@shared_task(autoretry_for=(SMTPException, OSError), retry_backoff=True, max_retries=5)
def account_mail_send(to: str, subject: str, body: str) -> None:
    """Send one account mail. Queued, so a slow mail server never shows in a response's timing
    (which would tell an attacker whether an address has an account)."""
    send_mail(subject, body, None, [to])
