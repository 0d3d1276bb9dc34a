"""Pages: the org's audit log (filter, seq cursor, chain verification) and the access-review export."""

from django import forms
from django.urls import reverse
from django.utils.http import urlencode
from django.views import View

from accounts.models import ApiKey, Membership
from audit.events import AuditEvent
from audit.selectors import audit_entries_for_org, audit_verify_org
from audit.services import audit_record
from rbac.pages import OrgPageMixin
from rbac.permissions import Perm

PAGE_SIZE = 50
_DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"]


def _datetime_field(label: str) -> forms.DateTimeField:
    return forms.DateTimeField(
        required=False, label=label, input_formats=_DATETIME_FORMATS,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )


class AuditFilterForm(forms.Form):
    actor = forms.ChoiceField(required=False, label="Actor")
    event = forms.CharField(required=False, max_length=64, label="Event (code or name)",
                            widget=forms.TextInput(attrs={"list": "audit-event-names"}))
    since = _datetime_field("From (UTC)")
    until = _datetime_field("Until (UTC, exclusive)")
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(self, *args, org, **kwargs):
        super().__init__(*args, **kwargs)
        # Actors offered are this org's principals, spelled as the selector expects ("type:id").
        humans = [(f"human:{m.user_id}", m.user.email)
                  for m in Membership.objects.for_org(org).select_related("user").order_by("user__email")]
        keys = [(f"api_key:{k.pk}", f"API key: {k.name}")
                for k in ApiKey.objects.for_org(org).order_by("name")]
        self.fields["actor"].choices = [("", "Anyone"), *humans, *keys]


class AuditLogView(OrgPageMixin, View):
    """Newest first, paged by a seq cursor (`before`), so a deep page costs what the first does."""

    required = {"get": Perm.AUDIT_READ, "post": Perm.AUDIT_READ}
    template = "audit/audit_log.html"

    def get(self, request, org):
        return self.page(AuditFilterForm(request.GET or None, org=self.org))

    def post(self, request, org):
        """Verify the org's hash chain and show the verdict above the log."""
        verdict = audit_verify_org(org=self.org)
        # Same record the API's verify endpoint writes: who checked the chain, and what they saw.
        audit_record(org=self.org, actor=self.access.actor, event=AuditEvent.AUDIT_VERIFIED,
                     data={"ok": verdict.ok, "checked": verdict.checked,
                           "first_bad_seq": verdict.first_bad_seq})
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
        older_url = self._older_url(rows[PAGE_SIZE - 1].seq) if len(rows) > PAGE_SIZE else None
        return self.render_page(
            self.template, status=status, form=form, entries=rows[:PAGE_SIZE], verdict=verdict,
            older_url=older_url, paged=bool(before), event_names=[e.label for e in AuditEvent],
        )

    def _older_url(self, last_seq: int) -> str:
        params = {k: v for k, v in self.request.GET.items() if k != "before" and v}
        params["before"] = last_seq
        return f"{reverse('accounts:audit-log', kwargs={'org': self.org.slug})}?{urlencode(params)}"


class AccessReviewView(OrgPageMixin, View):
    required = {"get": Perm.ACCESS_REVIEW_EXPORT}
    template = "audit/access_review.html"

    def get(self, request, org):
        # The download itself is the API endpoint: it accepts this session, and GET needs no CSRF.
        export_url = reverse("api:access-review", kwargs={"org": self.org.slug})
        return self.render_page(self.template, export_url=export_url)
