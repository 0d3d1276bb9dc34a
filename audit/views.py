"""Pages: the org's audit log (filter, seq cursor, chain verification) and the access-review export."""

from django.urls import reverse
from django.utils.http import urlencode
from django.views import View

from audit.events import AuditEvent
from audit.forms import AuditFilterForm
from audit.selectors import audit_entries_for_org
from audit.services import audit_verify_recorded
from core.permissions import Perm
from web.pages import OrgPageMixin

PAGE_SIZE = 50


class AuditLogView(OrgPageMixin, View):
    """Newest first, paged by a seq cursor (`before`), so a deep page costs what the first does."""

    required = {"get": Perm.AUDIT_READ, "post": Perm.AUDIT_READ}
    template = "audit/audit_log.html"

    def get(self, request, org):
        return self.page(AuditFilterForm(request.GET or None, org=self.org))

    def post(self, request, org):
        """Verify the org's hash chain and show the verdict above the log."""
        verdict = audit_verify_recorded(org=self.org, actor=self.access.actor)
        return self.page(AuditFilterForm(None, org=self.org), verdict=verdict)

    def page(self, form, verdict=None):
        filters, before, status = {}, None, 200
        if form.is_bound and form.is_valid():
            data = form.cleaned_data
            filters = {k: data[k] for k in ("actor", "event", "since", "until") if data[k]}
            before = data["before"]
        elif form.is_bound:
            status = 400
        entries = audit_entries_for_org(org=self.org, **filters)
        if before:
            entries = entries.filter(seq__lt=before)
        rows = list(entries[: PAGE_SIZE + 1])
        older_url = self._page_url(rows[PAGE_SIZE - 1].seq) if len(rows) > PAGE_SIZE else None
        return self.render_page(
            self.template, status=status, form=form, entries=rows[:PAGE_SIZE], verdict=verdict,
            older_url=older_url, newest_url=self._page_url(None) if before else None,
            event_names=[e.label for e in AuditEvent],
        )

    def _page_url(self, before: int | None) -> str:
        """This page's URL with the same filters, starting below `before` (or at the newest)."""
        params = {k: v for k, v in self.request.GET.items() if k != "before" and v}
        if before:
            params["before"] = before
        return f"{reverse('audit:audit-log', kwargs={'org': self.org.slug})}?{urlencode(params)}"


class AccessReviewView(OrgPageMixin, View):
    required = {"get": Perm.ACCESS_REVIEW_EXPORT}
    reauth_reads = ("get",)  # the whole org's data, handed out
    template = "audit/access_review.html"

    def get(self, request, org):
        # The download itself is the API endpoint: it accepts this session, and GET needs no CSRF.
        export_url = reverse("api:access-review", kwargs={"org": self.org.slug})
        return self.render_page(self.template, export_url=export_url)
