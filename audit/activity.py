"""The org's activity as the overview shows it: figures per day from the audit log, and the latest
security events. Each is one query over the log's (org, event_code, seq) index, whatever its size.
"""

import datetime

from django.db.models import Count
from django.db.models.fields.json import KT
from django.db.models.functions import TruncDate
from django.utils import timezone

from audit.events import AuditEvent, Outcome
from audit.models import AuditEntry, chain_key
from core.attention import Figure, FigureSource, daily_counts
from core.permissions import Perm

DAYS = 14


def token_activity(org) -> Figure:
    """Capability tokens granted and refused per day, over the last two weeks (two queries)."""
    log = AuditEntry.objects.for_org(org)
    granted = daily_counts(log.filter(event_code=AuditEvent.TOKEN_ISSUED.code), days=DAYS)
    denied = daily_counts(log.filter(event_code=AuditEvent.TOKEN_DENIED.code), days=DAYS)
    total_granted, total_denied = sum(n for _, n in granted), sum(n for _, n in denied)
    return Figure(key="tokens.daily", title=f"Token grants and denials, last {DAYS} days",
                  series=[("Granted", granted), ("Denied", denied)],
                  summary=f"{total_granted} tokens granted and {total_denied} refused in {DAYS} days.")


def signins_by_method(org) -> Figure:
    """Completed sign-ins per day by how the person proved who they are (one query)."""
    today = timezone.now().date()
    first = today - datetime.timedelta(days=DAYS - 1)
    start = datetime.datetime.combine(first, datetime.time.min, tzinfo=datetime.UTC)
    rows = (AuditEntry.objects.for_org(org).filter(event_code=AuditEvent.LOGIN_SUCCEEDED.code, ts__gte=start)
            .annotate(day=TruncDate("ts"), method=KT("data__method")).values("day", "method")
            .annotate(n=Count("pk")).order_by())
    counts: dict[str, dict] = {}
    for row in rows:
        counts.setdefault(row["method"] or "other", {})[row["day"]] = row["n"]
    days = [first + datetime.timedelta(days=n) for n in range(DAYS)]
    order = sorted(counts, key=lambda m: (-sum(counts[m].values()), m))
    series = [(method_label(m), [(d, counts[m].get(d, 0)) for d in days]) for m in order]
    if not series:
        series = [("Sign-ins", [(d, 0) for d in days])]
    total = sum(sum(c.values()) for c in counts.values())
    parts = ", ".join(f"{sum(counts[m].values())} {method_label(m).lower()}" for m in order)
    return Figure(key="signins.method", title=f"Sign-ins by method, last {DAYS} days", series=series,
                  summary=f"{total} sign-ins in {DAYS} days" + (f": {parts}." if parts else "."))


_FIRST = {"password": "Password", "sso": "Single sign-on"}
_SECOND = {"totp": "authenticator app", "webauthn": "passkey", "recovery": "recovery code",
           "idp": "IdP's MFA"}


def method_label(method: str) -> str:
    """"password+webauthn" (as login.success records it) -> "Password + passkey"."""
    first, _, second = method.partition("+")
    label = _FIRST.get(first, first.title() or "Other")
    return f"{label} + {_SECOND.get(second, second)}" if second else label


def security_events_recent(org, *, limit: int = 10) -> list[AuditEntry]:
    """The latest refused or failed actions in the org (sign-ins, tokens, permissions, SCIM, ...)."""
    # By the chain's (chain, seq) index, read from its head backwards until `limit` are found.
    return list(AuditEntry.objects.for_org(org).filter(chain=chain_key(org))
                .filter(outcome__in=[Outcome.DENIED, Outcome.FAILURE]).order_by("-seq")[:limit])


TOKENS = FigureSource(perm=Perm.AGENT_READ, build=token_activity)
SIGNINS = FigureSource(perm=Perm.AUDIT_READ, build=signins_by_method)
