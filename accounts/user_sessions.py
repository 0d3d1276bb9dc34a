"""A person's own sessions: listing them and ending one (the "Your sessions" page).

Sessions are named by `login_flow.session_label` (a short hash of the key), never by the key: a
session key is a bearer credential and must not appear in HTML or the audit log. A label is resolved
by recomputing it over the caller's own sessions only, so another person's session cannot be named,
let alone ended, whatever label is sent.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts.login_flow import session_label
from accounts.models import User
from accounts.person_audit import person_record
from audit.actors import Actor
from audit.events import AuditEvent
from audit.services import Target, records_denials
from core.errors import DenialAudit, NotFound


@dataclass(frozen=True)
class SessionRow:
    label: str
    created_at: datetime
    last_seen_at: datetime
    expire_date: datetime
    ip: str | None
    user_agent: str
    current: bool


def session_list_for_user(*, user: User, current_key: str | None) -> list[SessionRow]:
    """The user's unexpired sessions, newest first, with the caller's own one marked."""
    rows = user.sessions.filter(expire_date__gt=timezone.now()).order_by("-created_at")
    return [
        SessionRow(label=session_label(s.session_key), created_at=s.created_at, last_seen_at=s.last_seen_at,
                   expire_date=s.expire_date, ip=s.ip, user_agent=s.user_agent,
                   current=bool(current_key) and s.session_key == current_key)
        for s in rows
    ]


@records_denials
@transaction.atomic
def session_revoke_one(*, user: User, label: str, actor: Actor) -> int:
    """End the user's session named `label`. Its next request is anonymous. Returns sessions ended."""
    keys = user.sessions.filter(expire_date__gt=timezone.now()).values_list("session_key", flat=True)
    matches = [key for key in keys if session_label(key) == label]
    if not matches:
        raise NotFound("No such session.", code="unknown_session", audit=DenialAudit(
            org=None, actor=actor, event=AuditEvent.SESSION_REVOKED, target=Target.of(user),
            data={"session": label, "reason": "unknown_session"}))
    count, _ = user.sessions.filter(session_key__in=matches).delete()
    person_record(user=user, actor=actor, event=AuditEvent.SESSION_REVOKED,
                  data={"session": label, "reason": "user_revoked", "count": count})
    return count
