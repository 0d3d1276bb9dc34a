"""Reads of SCIM tokens for the console's tokens list, its admin API list and the revoke confirmation.

A token's last failure is the newest audit entry the SCIM endpoint wrote as that token refused
(scim.auth_failed: a wrong secret, an ended token, a creator who lost the power to mint it;
scim.request_rejected: a write the protocol refused). Both are written with the token as actor
(scim.tokens.actor_for), so one query on the audit log's (org, actor) index finds them for a page of
tokens, whatever its length.

The state filters are what the overview counts (scim.attention asks these): "idle" is a live token the IdP has
not called with for 30 days (or never, a day after it was made), "failing" one refused in the last
7 days.
"""

import uuid
from datetime import timedelta

from django.db.models import Count, Max, Q
from django.utils import timezone

from accounts.models import MembershipStatus
from audit.events import AuditEvent
from audit.models import AuditEntry
from core.credentials import credential_live_q
from scim.ids import uuid_or_none
from scim.models import ScimToken, ScimUser

UNUSED_AFTER = timedelta(days=30)
NEVER_USED_AFTER = timedelta(days=1)
FAILING_WINDOW = timedelta(days=7)
FAILURE_CODES = (AuditEvent.SCIM_AUTH_FAILED.code, AuditEvent.SCIM_REQUEST_REJECTED.code)
UNUSED_DAYS = UNUSED_AFTER.days
FAILING_DAYS = FAILING_WINDOW.days
# ?state= of the tokens list and its API list, with what each shows.
TOKEN_STATES = {
    "active": "Working, with no end set",
    "expiring": "Revoked with a grace period still running",
    "revoked": "No longer working (revoked, or its grace period is over)",
    "idle": f"Working, but not used for {UNUSED_DAYS} days (or never)",
    "failing": f"Refused at least once in the last {FAILING_DAYS} days",
}


def token_status(token: ScimToken, now=None) -> str:
    """active | expiring (revoked with a grace period still running) | expired | revoked."""
    now = now or timezone.now()
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is None:
        return "active"
    return "expiring" if token.expires_at > now else "expired"


def idle_q(now) -> Q:
    """Live and not called with for UNUSED_AFTER (or never, NEVER_USED_AFTER after it was made)."""
    return credential_live_q(now) & (Q(last_used_at__isnull=True, created_at__lt=now - NEVER_USED_AFTER)
                          | Q(last_used_at__lt=now - UNUSED_AFTER))


def last_failures(org, token_ids) -> dict[str, object]:
    """When the SCIM endpoint last refused each of these tokens (absent: never). One query."""
    rows = (AuditEntry.objects.for_org(org)
            .filter(actor_type="scim", actor_id__in=[str(pk) for pk in token_ids],
                    event_code__in=FAILURE_CODES)
            .values("actor_id").annotate(last=Max("ts")).order_by())
    return {row["actor_id"]: row["last"] for row in rows}


def with_last_failure(org, tokens):
    """`tokens` (already fetched, a page's) with `last_failure_at` set on each. One query."""
    tokens = list(tokens)
    found = last_failures(org, [t.pk for t in tokens]) if tokens else {}
    for token in tokens:
        token.last_failure_at = found.get(str(token.pk))
    return tokens


def failing_ids(org, now) -> list[uuid.UUID]:
    """The tokens refused in the last FAILING_WINDOW. One query (the actor ids are strings in the
    log, so they are matched here rather than in SQL, where a UUID column's text differs by database)."""
    ids = (AuditEntry.objects.for_org(org)
           .filter(actor_type="scim", event_code__in=FAILURE_CODES, ts__gte=now - FAILING_WINDOW)
           .values_list("actor_id", flat=True).distinct())
    return [parsed for parsed in map(uuid_or_none, ids) if parsed is not None]


def token_state_filter(org, state: str, now=None) -> Q:
    """The org's tokens in one of TOKEN_STATES ("failing" asks the audit log: one query)."""
    now = now or timezone.now()
    if state == "failing":
        return Q(pk__in=failing_ids(org, now))
    return {
        "active": Q(revoked_at__isnull=True, expires_at__isnull=True),
        "expiring": Q(revoked_at__isnull=True, expires_at__gt=now),
        "revoked": Q(revoked_at__isnull=False) | Q(expires_at__lte=now),
        "idle": idle_q(now),
    }[state]


def token_flags(token: ScimToken, now=None) -> dict:
    """What the list shows of one token beyond its fields: status, and whether it is idle or failing."""
    now = now or timezone.now()
    status = token_status(token, now)
    live = status in ("active", "expiring")
    if token.last_used_at is None:
        idle = live and token.created_at < now - NEVER_USED_AFTER
    else:
        idle = live and token.last_used_at < now - UNUSED_AFTER
    failure = getattr(token, "last_failure_at", None)
    return {"status": status, "live": live, "idle": idle,
            "failing": failure is not None and failure >= now - FAILING_WINDOW}


def token_revoke_preview(org, token: ScimToken) -> dict:
    """What revoking `token` does beyond the token: how many other tokens still work (none: nobody is
    provisioned or deprovisioned until the IdP is given a new one), and how many of the org's members
    the IdP provisions over SCIM (a SCIM User each), and how many of them are active. Two queries."""
    others_live = ScimToken.objects.for_org(org).filter(credential_live_q()).exclude(pk=token.pk).count()
    people = ScimUser.objects.for_org(org).aggregate(
        provisioned=Count("pk"), active=Count("pk", filter=Q(membership__status=MembershipStatus.ACTIVE)))
    return {"others_live": others_live, "last_live": others_live == 0, **people}
