"""Pages of the Single sign-on section: the org's connections (list, new, detail with its edit
form, refresh, test, delete) and its email domains (add, verify, remove).

Every write goes through sso.policies, which checks the caller and audits; a ServiceError is shown
on the form (or as a message) with its own status. A connection's page shows what the admin API
shows (sso.api.SsoConnectionSerializer), never its client secret, with a copy button for each value
the admin pastes into the IdP.

Both lists search and page through web.paging in their admin API list's order and by its `?q=`, at
the same queries whatever their length. Deleting a connection and removing a domain are asked for
first, with who signs in through it and what stops; a POST without that confirmation changes nothing.
"""

from django.conf import settings
from django.contrib import messages
from django.core.validators import slug_re
from django.db.models import Count
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views import View

from accounts.models import Membership
from accounts.policy import policy_for_org
from core.errors import ServiceError
from core.permissions import Perm
from sso import policies
from sso.api import DomainViewSet, SsoConnectionSerializer, SsoConnectionViewSet
from sso.connections import certificates_expiring
from sso.forms import ConnectionCreateForm, ConnectionUpdateForm, DomainAddForm, mappings_text
from sso.models import Connection, Domain, Identity, Protocol
from sso.outcomes import SsoRefused
from sso.realm import login_url
from sso.views import oidc as oidc_views
from sso.views import saml as saml_views
from web.pages import OrgPageMixin, confirmed, form_apply_service_error
from web.paging import list_page

SLUG_PLACEHOLDER = "__slug__"
# What the admin enters at the IdP, by protocol: (label, url name, test id).
IDP_ENTRIES = {
    Protocol.OIDC: (("Redirect URI (sign-in redirect)", "sso:oidc-callback", "redirect-uri"),
                    ("Back-channel logout URI", "sso:oidc-backchannel-logout", "backchannel-logout-uri")),
    Protocol.SAML: (("SP entity id (audience)", "sso:saml-metadata", "sp-entity-id"),
                    ("ACS URL (single sign-on URL)", "sso:saml-acs", "sp-acs-url"),
                    ("SP metadata URL", "sso:saml-metadata", "sp-metadata-url")),
}


def idp_entries(org, protocol: str, slug: str = "") -> list[dict]:
    """The URLs the IdP needs, as sso.api shows them; with `<slug>` when the slug is not known yet."""
    entries = []
    for label, name, testid in IDP_ENTRIES[protocol]:
        path = reverse(name, kwargs={"org": org.slug, "connection": slug or SLUG_PLACEHOLDER})
        url = settings.IAM_CANONICAL_ORIGIN.rstrip("/") + path
        entries.append({"label": label, "url": url.replace(SLUG_PLACEHOLDER, "<slug>"), "testid": testid})
    return entries


def saml_test_start():
    """The SAML login starter, once sso.views.saml provides one (else "Test connection" is off)."""
    return getattr(saml_views, "login_start", None)


# --- connections ------------------------------------------------------------------------------


class ConnectionListView(OrgPageMixin, View):
    required = {"get": Perm.SSO_READ}
    template = "sso/connections.html"

    def get(self, request, org):
        """One page of the connections as the API lists them (by name, `?q=` on name and slug), with
        how many people's IdP accounts each links."""
        connections = (Connection.objects.for_org(self.org).select_related("org")
                       .annotate(linked=Count("identities")))
        page = list_page(request, connections, ordering=SsoConnectionViewSet.list_ordering,
                         search_fields=SsoConnectionViewSet.search_fields)
        rows = [{"connection": c, "login_url": settings.IAM_CANONICAL_ORIGIN.rstrip("/") + login_url(c),
                 "expiring": certificates_expiring(c)} for c in page.rows]
        return self.render_page(self.template, rows=rows, page=page)


class ConnectionNewView(OrgPageMixin, View):
    required = {"get": Perm.SSO_WRITE, "post": Perm.SSO_WRITE}
    template = "sso/connection_new.html"

    def get(self, request, org, protocol):
        return self.page(ConnectionCreateForm(protocol=self.protocol(protocol)))

    def post(self, request, org, protocol):
        form = ConnectionCreateForm(request.POST, protocol=self.protocol(protocol))
        if not form.is_valid():
            return self.page(form, status=400)
        try:
            connection = policies.connection_create(access=self.access, **form.service_arguments())
        except ServiceError as exc:
            form_apply_service_error(form, exc)
            return self.page(form, status=exc.status)
        messages.success(request, f"Created {connection.name}. “Test connection” checks the round trip.")
        return redirect("sso:connection-detail", org=self.org.slug, pk=connection.pk)

    def protocol(self, value: str) -> str:
        if value not in Protocol.values:
            raise Http404("No such protocol.")
        return value

    def page(self, form, status=200):
        # Once a slug is typed (the form came back with an error), the URLs are shown with it.
        slug = form.data.get("slug", "") if form.is_bound else ""
        slug = slug if slug_re.fullmatch(slug) and len(slug) <= 50 else ""
        return self.render_page(self.template, status=status, form=form, protocol=form.protocol,
                                protocol_label=Protocol(form.protocol).label,
                                entries=idp_entries(self.org, form.protocol, slug))


class ConnectionPage(OrgPageMixin, View):
    def connection(self, pk) -> Connection:
        """This org's connection (another org's id is a 404, like an unknown one)."""
        return get_object_or_404(Connection.objects.for_org(self.org).select_related("org"), pk=pk)

    def back(self, connection):
        return redirect("sso:connection-detail", org=self.org.slug, pk=connection.pk)


class ConnectionDetailView(ConnectionPage):
    required = {"get": Perm.SSO_READ, "post": Perm.SSO_WRITE}
    template = "sso/connection_detail.html"

    def get(self, request, org, pk):
        connection = self.connection(pk)
        return self.detail(connection, ConnectionUpdateForm(connection=connection))

    def post(self, request, org, pk):
        connection = self.connection(pk)
        form = ConnectionUpdateForm(request.POST, connection=connection)
        if not form.is_valid():
            return self.detail(connection, form, status=400)
        try:
            connection = policies.connection_update(access=self.access, connection=connection,
                                                    **form.service_arguments())
        except ServiceError as exc:
            form_apply_service_error(form, exc)
            return self.detail(self.connection(pk), form, status=exc.status)
        messages.success(request, f"Saved {connection.name}.")
        return self.back(connection)

    def detail(self, connection, form, status=200):
        shown = SsoConnectionSerializer(connection).data
        entries = idp_entries(self.org, connection.protocol, connection.slug)
        testable = connection.protocol == Protocol.OIDC or saml_test_start() is not None
        mapping_lines = mappings_text(self.org, connection.group_mappings).splitlines()
        return self.render_page(
            self.template, status=status, connection=connection, shown=shown, form=form, entries=entries,
            testable=testable, expiring=certificates_expiring(connection), mapping_lines=mapping_lines,
            protocol_label=Protocol(connection.protocol).label)


class ConnectionRefreshView(ConnectionPage):
    """Fetch what the IdP publishes again; a failure keeps what was stored and says why."""

    required = {"post": Perm.SSO_WRITE}

    def post(self, request, org, pk):
        connection = self.connection(pk)
        changed = policies.connection_refresh(access=self.access, connection=connection)
        connection = self.connection(pk)
        if connection.metadata_error:
            error = connection.metadata_error
            messages.error(request, f"The refresh failed (what was stored is kept): {error}")
        elif connection.protocol == Protocol.SAML and not connection.idp_metadata_url:
            messages.info(request, "This connection's metadata was pasted: paste new metadata to change it.")
        else:
            messages.success(request, "Refreshed: " + ("the IdP published changes, now stored." if changed
                                                       else "nothing changed."))
        return self.back(connection)


class ConnectionTestView(ConnectionPage):
    """"Test connection": a sign-in round trip that ends on a page of what the IdP sent and signs
    nobody in (sso.signin's test flows)."""

    required = {"post": Perm.SSO_WRITE}

    def post(self, request, org, pk):
        connection = self.connection(pk)
        start = oidc_views.login_start if connection.protocol == Protocol.OIDC else saml_test_start()
        if start is None:
            messages.error(request, "Testing a SAML connection is not available yet.")
            return self.back(connection)
        if not connection.enabled:
            messages.error(request, "Enable the connection first: a disabled connection accepts no answer.")
            return self.back(connection)
        try:
            return start(request, connection, test=True)
        except SsoRefused as exc:
            messages.error(request, exc.detail)
            return self.back(connection)


def connection_delete_preview(org, connection) -> dict:
    """What deleting `connection` ends: the people whose IdP accounts it links (and how many of them
    are members here), whether "SSO required" then blocks it (the last enabled connection cannot go:
    sso.connections refuses it), and the other enabled connections that keep working."""
    identities = Identity.objects.for_org(org).filter(connection=connection)
    members = Membership.objects.for_org(org).filter(user__in=identities.values("user"))
    others = Connection.objects.for_org(org).filter(enabled=True).exclude(pk=connection.pk).count()
    required = policy_for_org(org).sso_required
    return {"linked": identities.count(), "members": members.count(), "others_enabled": others,
            "sso_required": required, "blocked": required and others == 0}


class ConnectionDeleteView(ConnectionPage):
    """GET says who signs in through the connection and what stops; POST deletes it once confirmed."""

    # GET is the confirmation, and where the browser lands after a re-authentication.
    required = {"get": Perm.SSO_WRITE, "post": Perm.SSO_WRITE}
    template = "sso/connection_delete.html"

    def get(self, request, org, pk):
        return self.confirm(self.connection(pk))

    def post(self, request, org, pk):
        connection = self.connection(pk)
        if not confirmed(request):
            return self.confirm(connection)
        name = connection.name
        try:
            policies.connection_delete(access=self.access, connection=connection)
        except ServiceError as exc:
            messages.error(request, exc.detail)
            return self.confirm(connection, status=exc.status)
        messages.success(request, f"Deleted {name}: nobody signs in through it any more.")
        return redirect("sso:connections", org=self.org.slug)

    def confirm(self, connection, status=200):
        return self.render_page(self.template, status=status, connection=connection,
                                preview=connection_delete_preview(self.org, connection))


# --- domains -----------------------------------------------------------------------------------


class DomainListView(OrgPageMixin, View):
    required = {"get": Perm.SSO_READ, "post": Perm.SSO_WRITE}
    template = "sso/domains.html"

    def get(self, request, org):
        return self.page(DomainAddForm())

    def post(self, request, org):
        form = DomainAddForm(request.POST)
        if not form.is_valid():
            return self.page(form, status=400)
        try:
            domain = policies.domain_add(access=self.access, domain=form.cleaned_data["domain"])
        except ServiceError as exc:
            form_apply_service_error(form, exc)
            return self.page(form, status=exc.status)
        messages.success(request, f"Added {domain.domain}: publish its TXT record, then verify it.")
        return redirect("sso:domains", org=self.org.slug)

    def page(self, form, status=200):
        """One page of the domains as the API lists them (by name, `?q=` on the name)."""
        page = list_page(self.request, Domain.objects.for_org(self.org), ordering=DomainViewSet.list_ordering,
                         search_fields=DomainViewSet.search_fields)
        return self.render_page(self.template, status=status, form=form, domains=page.rows, page=page)


class DomainVerifyView(OrgPageMixin, View):
    required = {"post": Perm.SSO_WRITE}

    def post(self, request, org, pk):
        domain = self.scoped(Domain, pk=pk)
        try:
            domain = policies.domain_verify(access=self.access, domain=domain)
        except ServiceError as exc:
            messages.error(request, f"{domain.domain} is not verified: {exc.detail}")
        else:
            messages.success(request, f"{domain.domain} is verified.")
        return redirect("sso:domains", org=self.org.slug)


def domain_remove_preview(org, domain) -> dict:
    """What removing `domain` ends (only a verified domain counts for anything): the members with an
    address at it, the people whose IdP accounts are linked under such an address (they keep signing
    in through the link), and the connections that create accounts just in time."""
    if not domain.verified:
        return {"verified": False}
    at = f"@{domain.domain}"
    return {
        "verified": True,
        "members": Membership.objects.for_org(org).filter(user__email__iendswith=at).count(),
        "linked": Identity.objects.for_org(org).filter(email__iendswith=at).count(),
        "jit_connections": Connection.objects.for_org(org).filter(enabled=True, jit=True).count(),
    }


class DomainRemoveView(OrgPageMixin, View):
    """GET says what the domain stops doing; POST removes it once confirmed."""

    required = {"get": Perm.SSO_WRITE, "post": Perm.SSO_WRITE}
    template = "sso/domain_remove.html"

    def get(self, request, org, pk):
        return self.confirm(self.scoped(Domain, pk=pk))

    def post(self, request, org, pk):
        domain = self.scoped(Domain, pk=pk)
        if not confirmed(request):
            return self.confirm(domain)
        name = domain.domain
        try:
            policies.domain_remove(access=self.access, domain=domain)
        except ServiceError as exc:
            messages.error(request, exc.detail)
            return self.confirm(domain, status=exc.status)
        messages.success(request, f"Removed {name}.")
        return redirect("sso:domains", org=self.org.slug)

    def confirm(self, domain, status=200):
        return self.render_page(self.template, status=status, domain=domain,
                                preview=domain_remove_preview(self.org, domain))
