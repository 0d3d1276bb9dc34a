"""Pages: agents (grant, secrets, status, revocation), connections and runs.

Every write goes through agents.services, which enforces the rules and audits; a ServiceError is
shown on the form (or as a message) with its own status. Secrets are rendered into one 201 response
and kept nowhere else.
"""

from django.contrib import messages
from django.db.models import Prefetch
from django.http import Http404
from django.shortcuts import redirect
from django.utils import timezone
from django.views import View

from accounts.models import Membership
from agents import policies, services
from agents.forms import AgentCreateForm, AgentGrantForm, ConnectionCreateForm, RunStartForm, SecretRotateForm
from agents.models import Agent, AgentSecret, AgentStatus, Connection, Run
from core.errors import ServiceError
from core.permissions import Perm
from web.pages import OrgPageMixin, form_apply_service_error

RUNS_SHOWN = 200
AGENT_RUNS_SHOWN = 50


def _secret_response(page, template: str, **context):
    # The secret is rendered into this one response and kept nowhere (not the session, not a
    # message), so it cannot be shown again; no-store keeps it out of the browser cache too.
    response = page.render_page(template, status=201, **context)
    response["Cache-Control"] = "no-store"
    return response


def _agents_with_secrets(org, queryset):
    """Owners and secrets prefetched; `live_secrets` attached so templates need not call is_live(now)."""
    now = timezone.now()
    owners = Membership.objects.for_org(org).select_related("user").order_by("user__email")
    agents = list(queryset.prefetch_related(
        Prefetch("owners", queryset=owners),
        Prefetch("secrets", queryset=AgentSecret.objects.order_by("-created_at")),
    ))
    for agent in agents:
        agent.all_secrets = [{"secret": s, "live": s.is_live(now)} for s in agent.secrets.all()]
        agent.live_secrets = [s for s in agent.secrets.all() if s.is_live(now)]
    return agents


# --- Agents -----------------------------------------------------------------------------------


class AgentListView(OrgPageMixin, View):
    required = {"get": Perm.AGENT_READ, "post": Perm.AGENT_WRITE}
    template = "agents/agents.html"

    def get(self, request, org):
        return self.page(AgentCreateForm(org=self.org, membership=self.access.membership))

    def post(self, request, org):
        form = AgentCreateForm(request.POST, org=self.org, membership=self.access.membership)
        if not form.is_valid():
            return self.page(form, status=400)
        data = form.cleaned_data
        try:
            agent, secret = policies.agent_create(
                access=self.access, name=data["name"], scopes=data["scopes"], audiences=data["audiences"],
                owner=data["owner"])
        except ServiceError as exc:
            form_apply_service_error(form, exc)
            return self.page(form, status=exc.status)
        return _secret_response(self, "agents/agent_created.html", agent=agent, secret=secret)

    def page(self, form, status=200):
        agents = _agents_with_secrets(self.org, Agent.objects.for_org(self.org).order_by("name"))
        return self.render_page(self.template, status=status, form=form, agents=agents,
                                has_connections=Connection.objects.for_org(self.org).exists())


class AgentPage(OrgPageMixin, View):
    """The agent's detail page, which every agent action re-renders when the service refuses."""

    template = "agents/agent_detail.html"

    def agent(self, pk) -> Agent:
        """This org's agent with its owners and secrets (another org's id is a 404)."""
        agents = _agents_with_secrets(self.org, Agent.objects.for_org(self.org).filter(pk=pk))
        if not agents:
            raise Http404("No such agent.")
        return agents[0]

    def detail(self, agent, status=200, grant_form=None, rotate_form=None):
        runs = (Run.objects.for_org(self.org).filter(agent=agent).select_related("agent")
                .order_by("-started_at")[:AGENT_RUNS_SHOWN])
        return self.render_page(
            self.template, status=status, agent=agent, runs=runs,
            usable=agent.status != AgentStatus.REVOKED,
            delegable=sorted(services.agent_delegable_now(agent)),
            grant_form=grant_form or AgentGrantForm.for_agent(agent, self.org),
            rotate_form=rotate_form or SecretRotateForm(),
        )

    def back(self, agent):
        return redirect("agents:agent-detail", org=self.org.slug, pk=agent.pk)


class AgentDetailView(AgentPage):
    required = {"get": Perm.AGENT_READ, "post": Perm.AGENT_WRITE}
    # A grant change is a change of what a principal may do, gated like a member's role change.

    def get(self, request, org, pk):
        return self.detail(self.agent(pk))

    def post(self, request, org, pk):
        agent = self.agent(pk)
        form = AgentGrantForm(request.POST, org=self.org)
        if not form.is_valid():
            return self.detail(agent, status=400, grant_form=form)
        data = form.cleaned_data
        try:
            policies.agent_grant_update(access=self.access, agent=agent, scopes=data["scopes"],
                                        audiences=data["audiences"], owners=list(data["owners"]))
        except ServiceError as exc:
            form_apply_service_error(form, exc)
            # Re-read: the page must show the grant as stored, not the refused one.
            return self.detail(self.agent(pk), status=exc.status, grant_form=form)
        messages.success(request, f"Saved the grant of {agent.name}.")
        return self.back(agent)


class AgentRotateView(AgentPage):
    required = {"post": Perm.AGENT_CREDENTIALS}

    def post(self, request, org, pk):
        agent = self.agent(pk)
        form = SecretRotateForm(request.POST)
        if not form.is_valid():
            return self.detail(agent, status=400, rotate_form=form)
        try:
            secret, previous_end = policies.agent_secret_rotate(
                access=self.access, agent=agent, overlap_seconds=form.cleaned_data["overlap_seconds"])
        except ServiceError as exc:
            form_apply_service_error(form, exc)
            return self.detail(agent, status=exc.status, rotate_form=form)
        return _secret_response(self, "agents/agent_secret_rotated.html", agent=agent, secret=secret,
                                previous_end=previous_end)


class AgentEndPreviousView(AgentPage):
    required = {"post": Perm.AGENT_CREDENTIALS}
    # No re-authentication: ending a secret only takes access away, and in an incident it must
    # not wait for a password prompt.

    def post(self, request, org, pk):
        agent = self.agent(pk)
        try:
            ended = policies.agent_secret_end_previous(access=self.access, agent=agent)
        except ServiceError as exc:
            messages.error(request, exc.detail)
            return self.detail(agent, status=exc.status)
        messages.success(request, f"Ended {ended} previous secret(s); only the newest one works now.")
        return self.back(agent)


class AgentStatusView(AgentPage):
    required = {"post": Perm.AGENT_WRITE}

    def post(self, request, org, pk):
        agent = self.agent(pk)
        status = request.POST.get("status", "")
        try:
            policies.agent_set_status(access=self.access, agent=agent, status=status)
        except ServiceError as exc:
            messages.error(request, exc.detail)
            return self.detail(agent, status=exc.status)
        messages.success(request, f"{agent.name} is {agent.get_status_display().lower()}.")
        return self.back(agent)


class AgentRevokeView(AgentPage):
    required = {"get": Perm.AGENT_WRITE, "post": Perm.AGENT_WRITE}
    confirm_template = "agents/agent_revoke.html"

    def get(self, request, org, pk):
        return self.render_page(self.confirm_template, agent=self.scoped(Agent, pk=pk))

    def post(self, request, org, pk):
        agent = self.scoped(Agent, pk=pk)
        try:
            policies.agent_revoke(access=self.access, agent=agent)
        except ServiceError as exc:
            messages.error(request, exc.detail)
            return self.render_page(self.confirm_template, status=exc.status, agent=agent)
        messages.success(request, f"Revoked {agent.name}: its secrets, tokens and runs no longer work.")
        return self.back(agent)


# --- Connections ------------------------------------------------------------------------------


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
        return _secret_response(self, "agents/connection_created.html", connection=connection, secret=secret)

    def page(self, form, status=200):
        connections = Connection.objects.for_org(self.org).order_by("name")
        return self.render_page(self.template, status=status, form=form, connections=connections)


# --- Runs -------------------------------------------------------------------------------------


class RunListView(OrgPageMixin, View):
    required = {"get": Perm.RUN_READ, "post": Perm.RUN_WRITE}
    template = "agents/runs.html"

    def get(self, request, org):
        return self.page(RunStartForm(org=self.org))

    def post(self, request, org):
        form = RunStartForm(request.POST, org=self.org)
        if not form.is_valid():
            return self.page(form, status=400)
        try:
            run = policies.run_start(access=self.access, agent=form.cleaned_data["agent"],
                                     description=form.cleaned_data["description"])
        except ServiceError as exc:
            form_apply_service_error(form, exc)
            return self.page(form, status=exc.status)
        messages.success(request, f"Started run {run.pk} of {run.agent.name}.")
        return redirect("agents:runs", org=self.org.slug)

    def page(self, form, status=200):
        return _runs_page(self, form, status)


def _runs_page(page, form, status=200):
    runs = Run.objects.for_org(page.org).select_related("agent").order_by("-started_at")[:RUNS_SHOWN]
    return page.render_page(RunListView.template, status=status, form=form, runs=runs, shown=RUNS_SHOWN)


class RunTerminateView(OrgPageMixin, View):
    required = {"post": Perm.RUN_WRITE}

    def post(self, request, org, pk):
        run = self.scoped(Run, pk=pk)
        try:
            policies.run_terminate(access=self.access, run=run)
        except ServiceError as exc:
            messages.error(request, exc.detail)
            return _runs_page(self, RunStartForm(org=self.org), status=exc.status)
        messages.success(request, f"Terminated run {run.pk}; tokens bound to it stop working.")
        # Back to where the button was: the agent's page or the runs list.
        if request.POST.get("from") == "agent":
            return redirect("agents:agent-detail", org=self.org.slug, pk=run.agent_id)
        return redirect("agents:runs", org=self.org.slug)
