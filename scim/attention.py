"""What needs an admin's attention in provisioning, for the overview (core.attention)."""


from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEntry
from core.attention import WARNING, Attention, AttentionSource
from core.permissions import Perm
from scim.models import ScimToken
from scim.selectors import FAILING_WINDOW, FAILURE_CODES, idle_q


def scim_attention(org) -> list[Attention]:
    """Live SCIM tokens the IdP has not called with for 30 days (or never, a day after they were
    made), and SCIM requests refused in the last 7 days. Two queries whatever the org's size."""
    now = timezone.now()
    items = []
    tokens = reverse("provisioning:tokens", kwargs={"org": org.slug})
    unused = ScimToken.objects.for_org(org).filter(idle_q(now)).count()
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
            event_code__in=FAILURE_CODES,
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
