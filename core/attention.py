"""What the org's overview shows, as each app reports it.

Each app knows what in its own tables needs a person's attention (members without a second factor,
agents with old secrets, expiring IdP certificates, ...) and which figures are worth a chart. It
describes them with these plain values in a module of its own (`<app>/attention.py`); the composition
root hands the list of sources to the overview page (web.overview), which checks each source's
permission and draws it. No app imports another's, and the page imports none of them.

A source costs a fixed number of queries whatever the org's size: the overview of an org of 1,000
members and 200 agents costs what a small org's does.
"""

import datetime
from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone

from core.permissions import Perm

CRITICAL, WARNING, INFO = "critical", "warning", "info"


@dataclass(frozen=True)
class Attention:
    """One thing to look at: `count` of them, what that means, and where to deal with it."""

    key: str  # stable, e.g. "members.mfa_missing" (tests and the page's anchors use it)
    title: str  # "3 members have no second factor"
    detail: str  # why it matters and what to do
    count: int
    url: str | None = None
    severity: str = WARNING


@dataclass(frozen=True)
class Figure:
    """A chart's data: [(series name, [(label, value), ...]), ...], every series over the same labels."""

    key: str
    title: str
    series: list
    summary: str = ""  # one sentence a person reads instead of the chart


@dataclass(frozen=True)
class AttentionSource:
    perm: Perm  # the reader needs it to see this source's items
    collect: Callable  # org -> [Attention, ...] (only items with a count; none when all is well)


@dataclass(frozen=True)
class FigureSource:
    perm: Perm
    build: Callable  # org -> Figure


def daily_counts(queryset, *, days: int = 14, ts_field: str = "ts", today: datetime.date | None = None):
    """[(date, count), ...] for the last `days` days up to `today` (UTC), gaps filled: one query."""
    today = today or timezone.now().date()
    first = today - datetime.timedelta(days=days - 1)
    start = datetime.datetime.combine(first, datetime.time.min, tzinfo=datetime.UTC)
    counted = (queryset.filter(**{f"{ts_field}__gte": start})
               .annotate(day=TruncDate(ts_field)).values("day").annotate(n=Count("pk")).order_by())
    by_day = {row["day"]: row["n"] for row in counted}
    return [(first + datetime.timedelta(days=n), by_day.get(first + datetime.timedelta(days=n), 0))
            for n in range(days)]
