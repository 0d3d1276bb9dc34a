"""What needs an admin's attention in single sign-on, for the overview (core.attention)."""

from datetime import UTC, datetime, timedelta

from django.urls import reverse
from django.utils import timezone

from core.attention import CRITICAL, WARNING, Attention, AttentionSource
from core.permissions import Perm
from sso.connections import EXPIRY_WARNING_DAYS
from sso.models import Connection


def sso_attention(org) -> list[Attention]:
    """IdP signing certificates of enabled connections that expire within the warning period or
    have expired (the certificates' dates are kept in the clear beside the sealed PEMs): one query."""
    now = timezone.now()
    soon = now + timedelta(days=EXPIRY_WARNING_DAYS)
    items = []
    for connection in Connection.objects.for_org(org).filter(enabled=True).order_by("name"):
        dates = [datetime.fromisoformat(info["not_after"]).astimezone(UTC)
                 for info in connection.idp_certificates_info or [] if info.get("not_after")]
        ending = sorted(d for d in dates if d <= soon)
        if not ending:
            continue
        valid_left = [d for d in dates if d > soon]
        expired = ending[0] <= now
        when = "expired" if expired else f"expires on {ending[0]:%Y-%m-%d}"
        detail = ("Another certificate stays valid, so sign-in goes on; remove the old one once the IdP "
                  "has switched." if valid_left else
                  "Sign-in through it stops when no certificate is valid: add the IdP's new certificate.")
        items.append(Attention(
            key=f"sso.certificate:{connection.slug}", count=len(ending),
            severity=CRITICAL if expired and not valid_left else WARNING,
            url=reverse("sso:connection-detail", kwargs={"org": org.slug, "pk": connection.pk}),
            title=f"The IdP certificate of “{connection.name}” {when}", detail=detail))
    return items


SSO = AttentionSource(perm=Perm.SSO_READ, collect=sso_attention)
