"""What needs an admin's attention in provisioning, for the overview (core.attention)."""

from datetime import timedelta

from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from audit.events import AuditEvent
from audit.models import AuditEntry
from core.attention import WARNING, Attention, AttentionSource
from core.permissions import Perm
from scim.models import ScimToken

UNUSED_AFTER = timedelta(days=30)
NEVER_USED_AFTER = timedelta(days=1)
FAILING_WINDOW = timedelta(days=7)


def scim_attention(org) -> list[Attention]:
    """Live SCIM tokens the IdP has not called with for 30 days (or never, a day after they were
    made), and SCIM requests refused in the last 7 days. Two queries whatever the org's size."""
    now = timezone.now()
    items = []
    tokens = reverse("provisioning:tokens", kwargs={"org": org.slug})
    unused = (
        ScimToken.objects.for_org(org)
        .filter(revoked_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .filter(
            Q(last_used_at__isnull=True, created_at__lt=now - NEVER_USED_AFTER)
            | Q(last_used_at__lt=now - UNUSED_AFTER)
        )
        .count()
    )
    if unused:
        items.append(
            Attention(
                key="scim.tokens_unused",
                count=unused,
                severity=WARNING,
                url=f"{tokens}?state=idle",
                title=f"{unused} SCIM token{' is' if unused == 1 else 's are'} not being used",
                detail="The IdP has not called with it for 30 days (or ever): check the IdP's provisioning, "
                "or revoke a token nobody needs.",
            )
        )
    refused = (
        AuditEntry.objects.for_org(org)
        .filter(
            event_code__in=[AuditEvent.SCIM_AUTH_FAILED.code, AuditEvent.SCIM_REQUEST_REJECTED.code],
            ts__gte=now - FAILING_WINDOW,
        )
        .count()
    )
    if refused:
        items.append(
            Attention(
                key="scim.requests_failing",
                count=refused,
                severity=WARNING,
                url=reverse("provisioning:log", kwargs={"org": org.slug}),
                title=f"{refused} SCIM request{' was' if refused == 1 else 's were'} refused this week",
                detail="The IdP's changes in those requests did not apply: the provisioning log says why.",
            )
        )
    return items


SCIM = AttentionSource(perm=Perm.SCIM_READ, collect=scim_attention)
