"""What needs an admin's attention among the org's people, for the overview (core.attention)."""

from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership, MembershipStatus
from accounts.people_selectors import second_factor_enrolled
from accounts.policy import policy_for_org
from core.attention import INFO, WARNING, Attention, AttentionSource
from core.permissions import Perm


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def people_attention(org) -> list[Attention]:
    """Members without a second factor where the org requires one; invitations not yet accepted
    (and how many of them have expired). Three queries whatever the org's size."""
    items = []
    members = reverse("accounts:members", kwargs={"org": org.slug})
    policy = policy_for_org(org)
    if policy.mfa_required:
        missing = (Membership.objects.for_org(org).filter(status=MembershipStatus.ACTIVE)
                   .exclude(second_factor_enrolled()).count())
        if missing:
            who = "signs" if missing == 1 else "sign"
            items.append(Attention(
                key="members.mfa_missing", count=missing, severity=WARNING,
                url=f"{members}?status=active&mfa=none",
                title=f"{_plural(missing, 'member has', 'members have')} no second factor",
                detail=f"The org requires MFA: they are sent to enrol at their next sign-in, unless they "
                       f"{who} in through the org's SSO."))
    invited = Membership.objects.for_org(org).filter(status=MembershipStatus.INVITED)
    pending = invited.count()
    if pending:
        expired = invited.filter(invitation__expires_at__lte=timezone.now()).count()
        detail = "They hold nothing until they accept."
        if expired:
            detail += f" {_plural(expired, 'invitation has', 'invitations have')} expired: resend or cancel."
        items.append(Attention(
            key="members.invited", count=pending, severity=INFO, url=f"{members}?status=invited",
            title=f"{_plural(pending, 'invitation is', 'invitations are')} waiting to be accepted",
            detail=detail))
    return items


PEOPLE = AttentionSource(perm=Perm.MEMBER_READ, collect=people_attention)
