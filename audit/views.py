"""Pages: the org's audit log (filters, a seq cursor, names for actors and targets, chain verification),
one entry's page, the log's export, and the access-review export.

The names come from the apps that own each kind of object (audit.naming), handed in by the
composition root (iam_project.urls) as `naming`, so the audit app imports none of them."""

import json

from django.http import Http404, StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views import View

from audit.events import AuditEvent
from audit.exports import JSONL_TYPE
from audit.forms import AuditFilterForm
from audit.log_export import audit_log_export
from audit.naming import Naming
from audit.selectors import (
    audit_checkpoint_latest,
    audit_entries_for_org,
    audit_entry,
    audit_mark,
    audit_verified_latest,
)
from audit.services import audit_verify_recorded
from core.permissions import Perm
from web.pages import OrgPageMixin

PAGE_SIZE = 50
_CURSOR = ("before", "after")
# Target types the services write (Target.of(obj) is the model's name), offered as suggestions.
TARGET_TYPES = ("agent", "agentsecret", "apikey", "approval", "connection", "delegation", "domain",
                "groupmapping", "membership", "organization", "role", "run", "scimgroup", "scimtoken",
                "scimuser", "team", "trust_gate", "trustroot", "user")
# Changes that keep the earlier value under "previous" beside the one key it is the earlier value of.
_MISSING = object()
_PREVIOUS_OF = {"agent.delegates_changed": "may_delegate_to", "agent.secret_rotated": "secret"}


class _AuditPage(OrgPageMixin, View):
    naming = Naming()  # every app's namers, handed in by iam_project

    def form(self, data):
        return AuditFilterForm(data, org=self.org, naming=self.naming)

    def log_url(self, **params) -> str:
        query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
        base = reverse("audit:audit-log", kwargs={"org": self.org.slug})
        return f"{base}?{query}" if query else base


class _LogPage(_AuditPage):
    """The log drawn for a form: newest first, paged by a seq cursor (`before` for older, `after` for
    newer), so a deep page costs what the first does; the filters travel with every page and export
    link."""

    template = "audit/audit_log.html"

    def page(self, form, verdict=None):
        filters, before, after, status = {}, None, None, 200
        if form.is_bound and form.is_valid():
            filters, before, after = form.filters(), form.cleaned_data["before"], form.cleaned_data["after"]
        elif form.is_bound:
            status = 400
        entries = audit_entries_for_org(org=self.org, **filters) if status == 200 else None
        rows, older, newer = self._rows(entries, before, after) if entries is not None else ([], None, None)
        self.naming.name_entries(self.org, rows)
        kept = {k: v for k, v in self.request.GET.items() if k not in _CURSOR and v} if status == 200 else {}
        export = reverse("audit:audit-export", kwargs={"org": self.org.slug, "fmt": "csv"})
        export_jsonl = reverse("audit:audit-export", kwargs={"org": self.org.slug, "fmt": "jsonl"})
        query = f"?{urlencode(kept)}" if kept else ""
        return self.render_page(
            self.template, status=status, form=form, entries=rows, verdict=verdict,
            older_url=self.log_url(**kept, before=older) if older else None,
            newer_url=self.log_url(**kept, after=newer) if newer is not None else None,
            newest_url=self.log_url(**kept) if (before or after is not None) else None,
            export_csv_url=export + query, export_jsonl_url=export_jsonl + query,
            event_names=[e.label for e in AuditEvent], target_types=TARGET_TYPES,
            last_verified=audit_verified_latest(org=self.org), mark=audit_mark(org=self.org),
            last_checkpoint=audit_checkpoint_latest(org=self.org),
            checkpoint_url=reverse("api:audit-checkpoint", kwargs={"org": self.org.slug}),
        )

    @staticmethod
    def _rows(entries, before, after):
        """(this page's entries newest first, the seq an older page starts below, the seq a newer page
        starts above): two cursor reads at most, whatever the log's size."""
        if after is not None:
            page = list(entries.filter(seq__gt=after).order_by("seq")[: PAGE_SIZE + 1])
            more_newer = len(page) > PAGE_SIZE
            rows = page[:PAGE_SIZE][::-1]
            return rows, (rows[-1].seq if rows else None), (rows[0].seq if rows and more_newer else None)
        if before:
            entries = entries.filter(seq__lt=before)
        page = list(entries[: PAGE_SIZE + 1])
        rows = page[:PAGE_SIZE]
        older = rows[-1].seq if len(page) > PAGE_SIZE else None
        newer = rows[0].seq if before and rows else None
        return rows, older, newer


class AuditLogView(_LogPage):
    required = {"get": Perm.AUDIT_READ, "post": Perm.AUDIT_READ}

    def get(self, request, org):
        return self.page(self.form(request.GET or None))

    def post(self, request, org):
        """Verify the org's hash chain and show the verdict above the log."""
        verdict = audit_verify_recorded(org=self.org, actor=self.access.actor)
        return self.page(self.form(None), verdict=verdict)


def _node(value):
    """A value of an entry's data as the detail page draws it: text, a list or a key-value map."""
    if isinstance(value, dict):
        return {"kind": "map", "items": [(str(k), _node(v)) for k, v in value.items()]}
    if isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            return {"kind": "text", "value": ", ".join(_text(v) for v in value) if value else "(none)"}
        return {"kind": "list", "items": [_node(v) for v in value]}
    return {"kind": "text", "value": _text(value)}


def _text(value) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def before_after(event_name: str, data: dict) -> list[tuple[str, object, object]]:
    """(field, before, after) for a change: `previous_X` beside `X`, a `previous` map of the fields'
    earlier values beside the fields ("missing" where the new value is not recorded), or `previous` beside
    the one key it is the earlier value of."""
    rows = [(key[len("previous_"):], data[key], data.get(key[len("previous_"):], _MISSING))
            for key in data if key.startswith("previous_")]
    previous = data.get("previous")
    if isinstance(previous, dict):
        rows += [(str(field), old, data.get(field, _MISSING)) for field, old in previous.items()]
    elif "previous" in data and event_name in _PREVIOUS_OF:
        rows.append((_PREVIOUS_OF[event_name], previous, data.get(_PREVIOUS_OF[event_name], _MISSING)))
    return [(field, _node(old), _node(new) if new is not _MISSING else {"kind": "missing"})
            for field, old, new in rows]


class AuditEntryView(_AuditPage):
    """One entry: who, what, to what, from where, its data laid out, and for a change its before/after."""

    required = {"get": Perm.AUDIT_READ}
    template = "audit/audit_entry.html"

    def get(self, request, org, seq):
        entry = audit_entry(org=self.org, seq=seq)
        if entry is None:
            raise Http404("No such audit entry in this organization.")
        self.naming.name_entries(self.org, [entry])
        changes = before_after(entry.event_name, entry.data)
        # What the before/after table shows is not repeated under the details.
        paired = {f for f, _, _ in changes} | {f"previous_{f}" for f, _, _ in changes}
        if isinstance(entry.data.get("previous"), dict) or entry.event_name in _PREVIOUS_OF:
            paired.add("previous")
        shown = {k: v for k, v in entry.data.items() if k not in paired}
        return self.render_page(
            self.template, entry=entry, changes=changes, data=_node(shown)["items"] if shown else [],
            data_json=json.dumps(entry.data, indent=2, sort_keys=True),
            correlation_url=(self.log_url(correlation_id=entry.correlation_id)
                             if entry.correlation_id else None),
            log_url=self.log_url(before=entry.seq + 1),
        )


class AuditExportView(_LogPage):
    """The filtered view as a download, streamed in chunks by seq; each export is on record. Filters
    nobody can apply are the log page's 400, with the form's errors."""

    required = {"get": Perm.AUDIT_READ}  # what the audit API's list needs: the same entries, in a file
    # The whole log handed out at once (addresses, IPs, user agents), as the access review is: only
    # with a fresh proof of who asks, like every other bulk export.
    reauth_reads = ("get",)

    def get(self, request, org, fmt):
        form = self.form(request.GET)
        if not form.is_valid():
            return self.page(form)
        rows = audit_log_export(org=self.org, actor=self.access.actor, filters=form.filters(), fmt=fmt,
                                naming=self.naming)
        content_type = "text/csv; charset=utf-8" if fmt == "csv" else f"{JSONL_TYPE}; charset=utf-8"
        filename = f"audit-{self.org.slug}-{timezone.now():%Y%m%dT%H%M%SZ}.{fmt}"
        response = StreamingHttpResponse(rows, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        response["Cache-Control"] = "no-store"
        return response


class AccessReviewView(OrgPageMixin, View):
    required = {"get": Perm.ACCESS_REVIEW_EXPORT}
    reauth_reads = ("get",)  # the whole org's data, handed out
    template = "audit/access_review.html"

    def get(self, request, org):
        # The download itself is the API endpoint: it accepts this session, and GET needs no CSRF.
        export_url = reverse("api:access-review", kwargs={"org": self.org.slug})
        return self.render_page(self.template, export_url=export_url)
