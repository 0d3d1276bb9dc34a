"""Small charts for the console, drawn server-side as inline SVG: no script, no build step, nothing
to vendor. A chart is data plus geometry worked out here; `templates/includes/chart.html` draws the
bars and, for people who do not see them, the same figures as a table.

    points = daily_counts(AuditEntry.objects.for_org(org).filter(event_code=...), days=14)
    chart = bar_chart([("Granted", granted), ("Denied", denied)], title="Token grants per day")

A series is a list of (label, value). Several series of the same labels stack in one bar each.
Written by hand because a charting library would be the only script on the page and a build step for
a newcomer; these are bars and counts, which SVG draws in a few lines.
"""

import datetime
from dataclasses import dataclass

from core.attention import daily_counts

__all__ = ["Bar", "Chart", "bar_chart", "daily_counts"]

WIDTH, HEIGHT, GAP = 560, 140, 2  # the viewBox; the SVG scales to its container


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    segments: tuple  # ((series index, y, height, value), ...), bottom first
    label: str
    total: int


@dataclass(frozen=True)
class Chart:
    title: str
    series: tuple[str, ...]
    labels: tuple[str, ...]
    rows: tuple  # ((label, (value per series, ...), total), ...) for the table
    bars: tuple[Bar, ...]
    peak: int
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def empty(self) -> bool:
        return self.peak == 0


def _label(value) -> str:
    return value.strftime("%b %d") if isinstance(value, datetime.date) else str(value)


def bar_chart(series, *, title: str) -> Chart:
    """`series`: [(series name, [(label, value), ...]), ...], every series over the same labels."""
    names = tuple(name for name, _ in series)
    labels = tuple(label for label, _ in series[0][1]) if series else ()
    values = [[int(points[i][1]) for _, points in series] for i in range(len(labels))]
    totals = [sum(v) for v in values]
    peak = max(totals, default=0)
    slot = WIDTH / max(len(labels), 1)
    bars = []
    for i, label in enumerate(labels):
        y, segments = float(HEIGHT), []
        for s, value in enumerate(values[i]):
            height = (value / peak) * (HEIGHT - 4) if peak else 0.0
            y -= height
            segments.append((s, round(y, 2), round(height, 2), value))
        bars.append(Bar(x=round(i * slot + GAP / 2, 2), width=round(slot - GAP, 2), segments=tuple(segments),
                        label=_label(label), total=totals[i]))
    rows = tuple((_label(label), tuple(values[i]), totals[i]) for i, label in enumerate(labels))
    return Chart(title=title, series=names, labels=tuple(_label(x) for x in labels), rows=rows,
                 bars=tuple(bars), peak=peak)
