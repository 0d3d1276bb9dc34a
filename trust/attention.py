"""What needs an admin's attention in trust and dispatch, and the distribution of the agents' trust
levels, for the overview (core.attention)."""

from django.db.models import Count, OuterRef, Subquery
from django.urls import reverse
from django.utils import timezone

from agents.models import Agent, AgentStatus, RunStatus
from core.attention import CRITICAL, WARNING, Attention, AttentionSource, Figure, FigureSource
from core.permissions import Perm
from trust.models import Approval, ApprovalStatus, ScoreSample
from trust.scoring import LEVELS


def trust_attention(org) -> list[Attention]:
    """Runs waiting for a person's approval (still in time) and agents contained for a low score.
    Two queries whatever the org's size."""
    now = timezone.now()
    items = []
    waiting = (
        Approval.objects.for_org(org)
        .filter(status=ApprovalStatus.PENDING, expires_at__gt=now, run__status=RunStatus.PENDING_APPROVAL)
        .count()
    )
    if waiting:
        items.append(
            Attention(
                key="trust.approvals_pending",
                count=waiting,
                severity=WARNING,
                url=reverse("trust:approvals", kwargs={"org": org.slug}),
                title=f"{waiting} run{' is' if waiting == 1 else 's are'} waiting for approval",
                detail="A dispatch gate escalated them; each ends unapproved when its time runs out.",
            )
        )
    contained = (
        Agent.objects.for_org(org).filter(status=AgentStatus.SUSPENDED, contained_at__isnull=False).count()
    )
    if contained:
        items.append(
            Attention(
                key="trust.contained",
                count=contained,
                severity=CRITICAL,
                url=reverse("agents:agents", kwargs={"org": org.slug}) + "?status=contained",
                title=f"{contained} agent{' was' if contained == 1 else 's were'} contained",
                detail="Their trust score fell below the org's floor; an owner can resume one once its "
                "score has recovered.",
            )
        )
    return items


def trust_levels(org) -> Figure:
    """How many live agents stand at each trust level, by the score last seen for each (one query);
    agents never scored yet are counted apart."""
    latest = ScoreSample.objects.for_org(org).filter(agent=OuterRef("pk")).order_by("-at").values("level")[:1]
    counted = (
        Agent.objects.for_org(org)
        .exclude(status=AgentStatus.REVOKED)
        .annotate(level=Subquery(latest))
        .values("level")
        .annotate(n=Count("pk"))
        .order_by()
    )
    by_level = {row["level"]: row["n"] for row in counted}
    points = [(name.title(), by_level.get(name, 0)) for _, name in LEVELS]
    points.append(("Not yet scored", by_level.get(None, 0)))
    total = sum(n for _, n in points)
    low = by_level.get("untrusted", 0) + by_level.get("provisional", 0)
    return Figure(
        key="trust.levels",
        title="Agents by trust level",
        series=[("Agents", points)],
        summary=f"{low} of {total} live agents stand below the standard level.",
    )


TRUST = AttentionSource(perm=Perm.TRUST_READ, collect=trust_attention)
TRUST_LEVELS = FigureSource(perm=Perm.TRUST_READ, build=trust_levels)
