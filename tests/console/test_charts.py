"""Inline SVG charts: the geometry scales to the peak, stacks series and fills days with nothing."""

import datetime

import pytest
from django.template.loader import render_to_string

from audit.models import AuditEntry
from tests.factories import OrgFactory
from tests.scale import audit_bulk, members_bulk
from web.charts import HEIGHT, bar_chart, daily_counts


def test_bars_scale_to_the_peak_and_stack_their_series():
    chart = bar_chart([("Granted", [("a", 4), ("b", 1)]), ("Denied", [("a", 4), ("b", 0)])], title="T")
    assert chart.peak == 8 and chart.labels == ("a", "b")
    first = chart.bars[0]
    (_, y0, h0, v0), (_, y1, h1, v1) = first.segments
    assert (v0, v1) == (4, 4) and h0 == h1 == pytest.approx((HEIGHT - 4) / 2)
    assert y1 + h1 == pytest.approx(y0)  # the second series sits on the first
    assert chart.rows == (("a", (4, 4), 8), ("b", (1, 0), 1))


def test_an_empty_chart_says_so_and_draws_no_bars():
    chart = bar_chart([("Sign-ins", [("a", 0)])], title="Sign-ins")
    html = render_to_string("includes/chart.html", {"chart": chart})
    assert chart.empty and "Nothing to show yet." in html and "<rect" not in html


def test_the_chart_renders_its_figures_as_a_table_too():
    chart = bar_chart([("Granted", [(datetime.date(2026, 1, 5), 3)])], title="Tokens")
    html = render_to_string("includes/chart.html", {"chart": chart})
    assert "<rect" in html and "<th scope=\"row\">Jan 05</th><td>3</td>" in html


@pytest.mark.django_db
def test_daily_counts_fill_the_days_without_entries_in_one_query(django_assert_num_queries):
    org = OrgFactory()
    owner = members_bulk(org, 1)[0]
    today = datetime.date.today()
    audit_bulk(org, 3, actor=owner, start=datetime.datetime.combine(
        today - datetime.timedelta(days=2), datetime.time(12), tzinfo=datetime.UTC))
    with django_assert_num_queries(1):
        points = daily_counts(AuditEntry.objects.for_org(org), days=5, today=today)
    assert [d for d, _ in points] == [today - datetime.timedelta(days=n) for n in range(4, -1, -1)]
    assert [n for _, n in points] == [0, 0, 3, 0, 0]
