"""Agent pages: the list and registration, the detail page (grant), secrets, status, revocation,
the agents it may delegate to, and the people it acts for (their delegations, which can be revoked)."""

from django.contrib import messages
from django.db.models import Prefetch
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views import View

from accounts.models import Membership
from accounts.views.shown_once import no_store, redirect_to_shown, secret_hold, secret_take
from agents import policies, services
from agents.delegation import live_delegations
from agents.forms import AgentCreateForm, AgentDelegatesForm, AgentGrantForm, SecretRotateForm
from agents.models import Agent, AgentSecret, AgentStatus, Connection, Delegation, Run, RunStatus
from agents.views import confirmed
from core.errors import ServiceError
from core.permissions import Perm
from trust.pages import agent_trust_panel
from web.pages import OrgPageMixin, form_apply_service_error

AGENT_RUNS_SHOWN = 50
AGENT_DELEGATIONS_SHOWN = 100
# What a handle on the agent's page can show, and with which template.
SHOWN_TEMPLATES = {"agent": "agents/agent_created.html", "agent_secret": "agents/agent_secret_rotated.html"}


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
        handle = secret_hold(request, org=self.org, kind="agent", secret=secret, agent=agent.pk)
        return redirect_to_shown(reverse("agents:agent-detail", args=[self.org.slug, agent.pk]), handle)

    def page(self, form, status=200):
        agents = _agents_with_secrets(self.org, Agent.objects.for_org(self.org).order_by("name"))
        return self.render_page(self.template, status=status, form=form, agents=agents,
                                has_connections=Connection.objects.for_org(self.org).exists())


class AgentPage(OrgPageMixin, View):
    """The agent's detail page, which every agent action re-renders when the service refuses."""

    template = "agents/agent_detail.html"

    def agent(self, pk) -> Agent:
        """This org's agent with its owners, secrets and delegates (another org's id is a 404)."""
        delegates = Prefetch("may_delegate_to", queryset=Agent.objects.for_org(self.org).order_by("name"))
        agents = _agents_with_secrets(
            self.org, Agent.objects.for_org(self.org).filter(pk=pk).prefetch_related(delegates))
        if not agents:
            raise Http404("No such agent.")
        return agents[0]

    def detail(self, agent, status=200, grant_form=None, rotate_form=None, delegates_form=None):
        runs = (Run.objects.for_org(self.org).filter(agent=agent).select_related("agent")
                .order_by("-started_at")[:AGENT_RUNS_SHOWN])
        return self.render_page(
            self.template, status=status, agent=agent, runs=runs,
            usable=agent.status != AgentStatus.REVOKED,
            delegable=sorted(services.agent_delegable_now(agent)),
            delegations=self.delegations(agent),
            grant_form=grant_form or AgentGrantForm.for_agent(agent, self.org),
            rotate_form=rotate_form or SecretRotateForm(),
            delegates_form=delegates_form or AgentDelegatesForm.for_agent(agent),
            trust=agent_trust_panel(access=self.access, agent=agent),  # None without trust:read
        )

    def delegations(self, agent) -> list[dict]:
        """The agent's live delegations, newest first, each with whether the caller may revoke it."""
        live = list(live_delegations(Delegation.objects.for_org(self.org).filter(agent=agent))
                    .order_by("-created_at")[:AGENT_DELEGATIONS_SHOWN])
        revocable = policies.delegations_revocable(access=self.access, agent=agent, delegations=live)
        return [{"delegation": d, "revocable": d.pk in revocable} for d in live]

    def back(self, agent):
        return redirect("agents:agent-detail", org=self.org.slug, pk=agent.pk)

    def shown(self, request, pk):
        """The page a secret minted for this agent is shown on, once; None for an ordinary visit."""
        shown = secret_take(request, org=self.org, kinds=SHOWN_TEMPLATES)
        if shown is None:
            return None
        agent = self.agent(pk)
        secret = shown.secret if shown.refs.get("agent") == str(agent.pk) else None
        previous_end = parse_datetime(shown.refs.get("previous_end") or "") if secret else None
        template = SHOWN_TEMPLATES.get(shown.kind or "", SHOWN_TEMPLATES["agent"])
        return no_store(self.render_page(template, status=200 if secret else 410, agent=agent, secret=secret,
                                         previous_end=previous_end))


class AgentDetailView(AgentPage):
    required = {"get": Perm.AGENT_READ, "post": Perm.AGENT_WRITE}

    def get(self, request, org, pk):
        return self.shown(request, pk) or self.detail(self.agent(pk))

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
        if not form.is_valid():  # a window of 0 needs its box ticked (SecretRotateForm.clean)
            return self.detail(agent, status=400, rotate_form=form)
        try:
            secret, previous_end = policies.agent_secret_rotate(
                access=self.access, agent=agent, overlap_seconds=form.cleaned_data["overlap_seconds"])
        except ServiceError as exc:
            form_apply_service_error(form, exc)
            return self.detail(agent, status=exc.status, rotate_form=form)
        handle = secret_hold(request, org=self.org, kind="agent_secret", secret=secret, agent=agent.pk,
                             previous_end=previous_end.isoformat() if previous_end else "")
        return redirect_to_shown(reverse("agents:agent-detail", args=[self.org.slug, agent.pk]), handle)


class AgentEndPreviousView(AgentPage):
    required = {"post": Perm.AGENT_CREDENTIALS}

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
    """GET asks whether to suspend (it is also where re-authentication comes back to); POST resumes,
    or suspends once confirmed."""

    required = {"get": Perm.AGENT_WRITE, "post": Perm.AGENT_WRITE}
    confirm_template = "agents/agent_suspend.html"

    def get(self, request, org, pk):
        return self.confirm(self.scoped(Agent, pk=pk))

    def post(self, request, org, pk):
        agent = self.scoped(Agent, pk=pk)
        status = request.POST.get("status", "")
        if status == AgentStatus.SUSPENDED and not confirmed(request):
            return self.confirm(agent)
        try:
            policies.agent_set_status(access=self.access, agent=agent, status=status)
        except ServiceError as exc:
            messages.error(request, exc.detail)
            return self.detail(self.agent(pk), status=exc.status)
        messages.success(request, f"{agent.name} is {agent.get_status_display().lower()}.")
        return self.back(agent)

    def confirm(self, agent, status=200):
        running = Run.objects.for_org(self.org).filter(agent=agent, status=RunStatus.RUNNING).count()
        return self.render_page(self.confirm_template, status=status, agent=agent, running=running)


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


class AgentDelegatesView(AgentPage):
    """The agents this one may name in `may_act`; refusals (a target stronger than the caller,
    someone not answering for the agent) show on the form."""

    required = {"post": Perm.AGENT_WRITE}

    def post(self, request, org, pk):
        agent = self.agent(pk)
        form = AgentDelegatesForm(request.POST, agent=agent)
        if not form.is_valid():  # another org's agent, or this one, is no choice here
            return self.detail(agent, status=400, delegates_form=form)
        try:
            policies.agent_delegates_set(access=self.access, agent=agent,
                                         targets=list(form.cleaned_data["may_delegate_to"]))
        except ServiceError as exc:
            form_apply_service_error(form, exc)
            return self.detail(self.agent(pk), status=exc.status, delegates_form=form)
        messages.success(request, f"Saved the agents {agent.name} may delegate to.")
        return self.back(agent)


class DelegationRevokeView(OrgPageMixin, View):
    """GET asks for confirmation (it is also where re-authentication comes back to); POST revokes
    once confirmed. Seeing a delegation needs what seeing its agent needs; who may revoke it (the
    person, an owner of the agent, an admin) is the policy wrapper's decision."""

    required = {"get": Perm.AGENT_READ, "post": Perm.AGENT_READ}
    template = "agents/delegation_revoke.html"

    def get(self, request, org, pk):
        return self.confirm(self.delegation(pk))

    def post(self, request, org, pk):
        delegation = self.delegation(pk)
        if not confirmed(request):
            return self.confirm(delegation)
        try:
            revoked = policies.delegation_revoke(access=self.access, delegation=delegation)
        except ServiceError as exc:
            messages.error(request, exc.detail)
            return self.confirm(delegation, status=exc.status)
        if revoked:
            messages.success(request, f"{delegation.agent.name} no longer acts for "
                                      f"{delegation.person_email}; tokens issued under it stop working "
                                      "on their next use.")
        else:
            messages.info(request, "That delegation had already ended.")
        return redirect("agents:agent-detail", org=self.org.slug, pk=delegation.agent_id)

    def delegation(self, pk) -> Delegation:
        """This org's delegation with its agent (another org's id is a 404)."""
        return get_object_or_404(Delegation.objects.for_org(self.org).select_related("agent"), pk=pk)

    def confirm(self, delegation, status=200):
        return self.render_page(self.template, status=status, delegation=delegation,
                                live=delegation.is_live())
