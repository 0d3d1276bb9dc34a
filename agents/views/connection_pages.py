"""Connection pages: the list (search, paging) and registration, the detail page (name, scopes,
minimum trust, the agents that hold its audience, and what the service did: its introspections and
the trust signals it reported, per day and the last of each), rotating the introspection secret and
deleting the connection, each of the last two after a confirmation that counts what it reaches."""

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse
from django.views import View

from accounts.views.shown_once import no_store, redirect_to_shown, secret_hold, secret_take
from agents import policies
from agents.api import ConnectionViewSet
from agents.delegation import live_delegations
from agents.forms import ConnectionCreateForm, ConnectionUpdateForm
from agents.models import Connection, Delegation
from agents.policy import agent_policy_for_org
from agents.selectors import connection_activity, connection_agents
from agents.views import confirmed
from core.errors import ServiceError
from core.permissions import Perm
from web.charts import bar_chart
from web.pages import OrgPageMixin, form_apply_service_error
from web.paging import list_page

SHOWN_TEMPLATES = {"connection": "agents/connection_created.html",
                   "connection_secret": "agents/connection_secret_rotated.html"}


def _show_once_after(page, connection, secret: str, kind: str):
    handle = secret_hold(page.request, org=page.org, kind=kind, secret=secret, connection=connection.pk)
    return redirect_to_shown(reverse("agents:connection-detail", args=[page.org.slug, connection.pk]), handle)


class ConnectionListView(OrgPageMixin, View):
    required = {"get": Perm.CONNECTION_READ, "post": Perm.CONNECTION_WRITE}
    template = "agents/connections.html"

    def get(self, request, org):
        return self.page(ConnectionCreateForm())

    def post(self, request, org):
        form = ConnectionCreateForm(request.POST)
        if not form.is_valid():
            return self.page(form, status=400)
        data = form.cleaned_data
        try:
            connection, secret = policies.connection_create(
                access=self.access, name=data["name"], audience=data["audience"], scopes=data["scopes"])
        except ServiceError as exc:
            form_apply_service_error(form, exc)
            return self.page(form, status=exc.status)
        return _show_once_after(self, connection, secret, "connection")

    def page(self, form, status=200):
        page = list_page(self.request, Connection.objects.for_org(self.org),
                         ordering=ConnectionViewSet.list_ordering,
                         search_fields=ConnectionViewSet.search_fields)
        return self.render_page(self.template, status=status, form=form, page=page, connections=page.rows)


class ConnectionPage(OrgPageMixin, View):
    def connection(self, pk) -> Connection:
        return self.scoped(Connection, pk=pk)

    def back(self, connection):
        return redirect("agents:connection-detail", org=self.org.slug, pk=connection.pk)


class ConnectionDetailView(ConnectionPage):
    required = {"get": Perm.CONNECTION_READ, "post": Perm.CONNECTION_WRITE}
    template = "agents/connection_detail.html"

    def get(self, request, org, pk):
        connection = self.connection(pk)
        shown = secret_take(request, org=self.org, kinds=SHOWN_TEMPLATES)
        if shown is not None:
            secret = shown.secret if shown.refs.get("connection") == str(connection.pk) else None
            template = SHOWN_TEMPLATES.get(shown.kind or "", SHOWN_TEMPLATES["connection"])
            return no_store(self.render_page(template, status=200 if secret else 410, connection=connection,
                                             secret=secret))
        return self.detail(connection, ConnectionUpdateForm.for_connection(connection))

    def post(self, request, org, pk):
        connection = self.connection(pk)
        form = ConnectionUpdateForm(request.POST)
        if not form.is_valid():
            return self.detail(connection, form, status=400)
        try:
            policies.connection_update(access=self.access, connection=connection,
                                       name=form.cleaned_data["name"], scopes=form.cleaned_data["scopes"])
        except ServiceError as exc:
            form_apply_service_error(form, exc)
            return self.detail(self.connection(pk), form, status=exc.status)
        messages.success(request, f"Saved {form.cleaned_data['name']}.")
        return self.back(connection)

    def detail(self, connection, form, status=200):
        activity = connection_activity(connection)
        return self.render_page(
            self.template, status=status, connection=connection, form=form,
            agents=connection_agents(connection), activity=activity,
            introspection_chart=bar_chart([("Introspections", activity["introspections"])],
                                          title="Introspections per day (14 days)"),
            signal_chart=bar_chart([("Signals", activity["signals"])],
                                   title="Trust signals reported per day (14 days)"),
            introspected=sum(n for _, n in activity["introspections"]),
            signalled=sum(n for _, n in activity["signals"]))


class ConnectionRotateView(ConnectionPage):
    """GET asks for confirmation (the current secret stops at once); POST rotates once confirmed."""

    required = {"get": Perm.CONNECTION_WRITE, "post": Perm.CONNECTION_WRITE}
    template = "agents/connection_rotate.html"

    def get(self, request, org, pk):
        return self.confirm(self.connection(pk))

    def post(self, request, org, pk):
        connection = self.connection(pk)
        if not confirmed(request):
            return self.confirm(connection)
        try:
            connection, secret = policies.connection_secret_rotate(access=self.access, connection=connection)
        except ServiceError as exc:
            messages.error(request, exc.detail)
            return self.confirm(connection, status=exc.status)
        return _show_once_after(self, connection, secret, "connection_secret")

    def confirm(self, connection, status=200):
        return self.render_page(self.template, status=status, connection=connection,
                                agents=len(connection_agents(connection)))


class ConnectionDeleteView(ConnectionPage):
    """GET asks for confirmation and names the agents that still use it (then it cannot go)."""

    required = {"get": Perm.CONNECTION_WRITE, "post": Perm.CONNECTION_WRITE}
    template = "agents/connection_delete.html"

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
        messages.success(request, f"Deleted {name}: its secret no longer works and agents cannot get tokens "
                                  "for its audience.")
        return redirect("agents:connections", org=self.org.slug)

    def confirm(self, connection, status=200):
        for_it = Delegation.objects.for_org(self.org).filter(audience=connection.audience)
        delegations = live_delegations(for_it)
        return self.render_page(self.template, status=status, connection=connection,
                                agents=connection_agents(connection), delegations=delegations.count(),
                                token_ttl=agent_policy_for_org(self.org).agent_token_ttl_seconds)
