"""Pages of the Provisioning section: SCIM tokens, group mappings and the provisioning log.

Every write goes through scim.tokens or scim.provisioning, which enforce the rules and audit; a
ServiceError is shown on the form (or as a message) with its own status. A new token is shown once,
by the GET its creation redirects to (accounts.views.shown_once).

The tokens list and the groups of the mappings page search and page through web.paging, the tokens
in their admin API list's order and by its `?q=` and `?state=`; each page costs the same queries
whatever the org holds. Revoking a token is asked for first, with what stops and for how many people;
a POST without that confirmation changes nothing.
"""

from django.contrib import messages
from django.db.models import Count, OuterRef, Prefetch, Subquery
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.views import View

from accounts.models import Membership
from accounts.views.shown_once import no_store, redirect_to_shown, secret_hold, secret_take
from audit.events import AuditEvent
from audit.selectors import audit_entries_for_org
from audit.views import PAGE_SIZE
from core.errors import ServiceError
from core.permissions import Perm
from scim import mappings
from scim.api import ScimTokenViewSet, scim_base_url
from scim.forms import GroupMappingForm, ScimTokenCreateForm, ScimTokenFilterForm, ScimTokenRevokeForm
from scim.models import GroupMapping, ScimGroup, ScimToken
from scim.selectors import (
    FAILING_DAYS,
    UNUSED_DAYS,
    token_flags,
    token_revoke_preview,
    token_state_filter,
    token_status,
    with_last_failure,
)
from scim.tokens import scim_token_create, scim_token_revoke
from web.pages import OrgPageMixin, confirmed, form_apply_service_error
from web.paging import list_page

# The provisioning log: the SCIM block of the catalogue (which includes member.deprovisioned).
LOG_EVENT_CODES = sorted({e.code for e in AuditEvent if 400 <= e.code < 500}
                         | {AuditEvent.DEPROVISIONED.code})
# Badge classes of the shared stylesheet: green, amber, red.
STATUS_BADGES = {"active": "status-active", "expiring": "status-invited", "expired": "status-suspended",
                 "revoked": "status-suspended"}


# --- SCIM tokens ------------------------------------------------------------------------------


class ScimTokenListView(OrgPageMixin, View):
    required = {"get": Perm.SCIM_READ, "post": Perm.SCIM_WRITE}
    template = "scim/tokens.html"

    def get(self, request, org):
        shown = secret_take(request, org=self.org, kinds=("scim_token",))
        if shown is not None:  # the redirect after creation: the token, once
            token = ScimToken.objects.for_org(self.org).filter(pk=shown.refs.get("token")).first()
            secret = shown.secret if token is not None else None
            return no_store(self.render_page("scim/token_created.html", status=200 if secret else 410,
                                             token=token, secret=secret, base_url=scim_base_url()))
        return self.page(ScimTokenCreateForm())

    def post(self, request, org):
        form = ScimTokenCreateForm(request.POST)
        if not form.is_valid():
            return self.page(form, status=400)
        try:
            token, secret = scim_token_create(access=self.access, name=form.cleaned_data["name"])
        except ServiceError as exc:
            form_apply_service_error(form, exc)
            return self.page(form, status=exc.status)
        # Shown by the GET this redirects to, once: a refresh there mints nothing (shown_once).
        handle = secret_hold(request, org=self.org, kind="scim_token", secret=secret, token=token.pk)
        return redirect_to_shown(reverse("provisioning:tokens", args=[self.org.slug]), handle)

    def page(self, form, status=200):
        """One page of the tokens as the API lists them (newest first, `?q=` on the name), filtered by
        `?state=`; the member page of each token's creator is found in the same query."""
        now = timezone.now()
        filters = ScimTokenFilterForm(self.request.GET)
        makers = Membership.objects.for_org(self.org).filter(user=OuterRef("created_by")).values("pk")[:1]
        tokens = (ScimToken.objects.for_org(self.org).select_related("created_by")
                  .annotate(created_by_member=Subquery(makers)))
        state = ""
        if filters.is_valid():
            state = filters.cleaned_data["state"]
            if state:
                tokens = tokens.filter(token_state_filter(self.org, state, now))
        else:  # an unknown state: say so, list none
            tokens, status = tokens.none(), 400
        page = list_page(self.request, tokens, ordering=ScimTokenViewSet.list_ordering,
                         search_fields=ScimTokenViewSet.search_fields)
        rows = []
        for token in with_last_failure(self.org, page.rows):
            flags = token_flags(token, now)
            rows.append({"token": token, **flags, "badge": STATUS_BADGES[flags["status"]]})
        filter_fields = SafeString("".join(str(field.as_field_group()) for field in filters))
        return self.render_page(self.template, status=status, form=form, rows=rows, page=page,
                                filters=filters, filter_fields=filter_fields, filtered=bool(state),
                                base_url=scim_base_url(), unused_days=UNUSED_DAYS,
                                failing_days=FAILING_DAYS)


class ScimTokenRevokeView(OrgPageMixin, View):
    required = {"get": Perm.SCIM_WRITE, "post": Perm.SCIM_WRITE}
    template = "scim/token_revoke.html"

    def get(self, request, org, pk):
        return self.confirm(self.scoped(ScimToken, pk=pk), ScimTokenRevokeForm())

    def post(self, request, org, pk):
        token = self.scoped(ScimToken, pk=pk)
        form = ScimTokenRevokeForm(request.POST)
        if not confirmed(request):
            return self.confirm(token, form)
        if not form.is_valid():
            return self.confirm(token, form, status=400)
        grace = form.cleaned_data["grace_seconds"]
        try:
            token = scim_token_revoke(access=self.access, token=token, grace_seconds=grace)
        except ServiceError as exc:
            form_apply_service_error(form, exc)
            return self.confirm(token, form, status=exc.status)
        if token.revoked_at:
            messages.success(request, f"Revoked {token.name}: it no longer works.")
        else:
            until = f"{token.expires_at:%Y-%m-%d %H:%M}"
            messages.success(request, f"{token.name} keeps working until {until} UTC.")
        return redirect("provisioning:tokens", org=self.org.slug)

    def confirm(self, token, form, status=200):
        state = token_status(token)
        live = state in ("active", "expiring")
        return self.render_page(self.template, status=status, token=token, form=form, status_name=state,
                                live=live, preview=token_revoke_preview(self.org, token) if live else None)


# --- Group mappings ---------------------------------------------------------------------------


class GroupMappingListView(OrgPageMixin, View):
    required = {"get": Perm.SCIM_READ, "post": Perm.SCIM_WRITE}
    # A mapping grants roles to every member of a group: gated like a member's role change.
    template = "scim/mappings.html"

    def get(self, request, org):
        return self.page(GroupMappingForm(org=self.org))

    def post(self, request, org):
        form = GroupMappingForm(request.POST, org=self.org)
        if not form.is_valid():
            return self.page(form, status=400)
        try:
            mapping = mappings.mapping_create(access=self.access, **form.service_arguments())
        except ServiceError as exc:
            form_apply_service_error(form, exc)
            return self.page(form, status=exc.status)
        messages.success(request, f"Mapped {mapping.group.display_name}.")
        return redirect("provisioning:mappings", org=self.org.slug)

    def page(self, form, status=200):
        """One page of the org's SCIM groups by name (`?q=` on the name), each with its mappings."""
        mappings = (GroupMapping.objects.for_org(self.org).select_related("role", "team")
                    .order_by("created_at"))
        groups = (ScimGroup.objects.for_org(self.org).annotate(member_count=Count("members"))
                  .prefetch_related(Prefetch("mappings", queryset=mappings)))
        page = list_page(self.request, groups, ordering="display_name", search_fields=("display_name",))
        return self.render_page(self.template, status=status, form=form, groups=page.rows, page=page,
                                any_groups=bool(page.rows) or ScimGroup.objects.for_org(self.org).exists())


class GroupMappingDeleteView(OrgPageMixin, View):
    # GET is the confirmation, and where the browser lands after a re-authentication.
    required = {"get": Perm.SCIM_WRITE, "post": Perm.SCIM_WRITE}
    template = "scim/mapping_delete.html"

    def get(self, request, org, pk):
        return self.render_page(self.template, mapping=self.mapping(pk))

    def post(self, request, org, pk):
        mapping = self.mapping(pk)
        if not confirmed(request):
            return self.render_page(self.template, mapping=mapping)
        try:
            mappings.mapping_delete(access=self.access, mapping=mapping)
        except ServiceError as exc:
            messages.error(request, exc.detail)
            return self.render_page(self.template, status=exc.status, mapping=mapping)
        messages.success(request, f"Deleted a mapping of {mapping.group.display_name}; "
                                  "the grants it made are taken back.")
        return redirect("provisioning:mappings", org=self.org.slug)

    def mapping(self, pk) -> GroupMapping:
        """This org's mapping with its group and target (another org's id is a 404)."""
        mappings = GroupMapping.objects.for_org(self.org).select_related("group", "role", "team")
        return get_object_or_404(mappings, pk=pk)


# --- Provisioning log -------------------------------------------------------------------------


class ProvisioningLogView(OrgPageMixin, View):
    """The org's audit entries of SCIM events, newest first, paged by a seq cursor like the audit log.

    It is a slice of the audit log, so it needs what the audit log needs (audit:read).
    """

    required = {"get": Perm.AUDIT_READ}
    template = "scim/log.html"

    def get(self, request, org):
        entries = audit_entries_for_org(org=self.org).filter(event_code__in=LOG_EVENT_CODES)
        before = request.GET.get("before", "")
        # A sequence number fits in 63 bits; a longer string of digits names no entry.
        before = int(before) if before.isascii() and before.isdigit() and len(before) <= 18 else None
        if before:
            entries = entries.filter(seq__lt=before)
        rows = list(entries[: PAGE_SIZE + 1])
        older_url = self._page_url(rows[PAGE_SIZE - 1].seq) if len(rows) > PAGE_SIZE else None
        return self.render_page(self.template, entries=rows[:PAGE_SIZE], older_url=older_url,
                                newest_url=self._page_url(None) if before else None)

    def _page_url(self, before: int | None) -> str:
        url = reverse("provisioning:log", kwargs={"org": self.org.slug})
        return f"{url}?{urlencode({'before': before})}" if before else url
