"""The org's home page: what needs attention, the latest security events, and a few charts.

Every app reports its own items and figures (core.attention); the composition root hands the
sources to this view, which shows each only to a reader holding the source's permission. The page
therefore imports no app's models, and a new app's attention needs no change here. Its cost is the
sum of its sources' fixed query counts, whatever the org's size.
"""

from django.views import View

from core.attention import CRITICAL, INFO, WARNING
from core.permissions import Perm
from web.charts import bar_chart
from web.pages import OrgPageMixin

_ORDER = {CRITICAL: 0, WARNING: 1, INFO: 2}


class OrgOverviewView(OrgPageMixin, View):
    required = {"get": Perm.ORG_READ}
    template = "pages/overview.html"
    attention: tuple = ()  # core.attention.AttentionSource, ...
    figures: tuple = ()  # core.attention.FigureSource, ...
    recent_events = None  # (org, *, limit) -> [AuditEntry, ...], shown with audit:read
    recent_perm = Perm.AUDIT_READ

    def get(self, request, org):
        items = [item for source in self.attention if self.access.has(source.perm)
                 for item in source.collect(self.org)]
        items.sort(key=lambda item: (_ORDER.get(item.severity, 3), -item.count))
        charts = []
        for source in self.figures:
            if self.access.has(source.perm):
                figure = source.build(self.org)
                charts.append({"key": figure.key, "summary": figure.summary,
                               "chart": bar_chart(figure.series, title=figure.title)})
        events = None
        if self.recent_events is not None and self.access.has(self.recent_perm):
            events = self.recent_events(self.org, limit=10)
        return self.render_page(self.template, attention=items, charts=charts, events=events,
                                sees_attention=any(self.access.has(s.perm) for s in self.attention))
