"""Agent pages: the list (search, filters, paging) and registration, the detail page (grant,
owners, secrets against the org's maximum age, its tokens per day, its last token, its audit
timeline), secrets, status, revocation, the agents it may delegate to, and the people it acts for
(their delegations, which can be revoked). The detail page costs the same number of queries
whatever the agent holds: each section is one capped query."""

import datetime

from django.contrib import messages
from django.db.models import Count, Prefetch, Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views import View

from accounts.models import Membership
from accounts.views.shown_once import no_store, redirect_to_shown, secret_hold, secret_take
from agents import policies, services
from agents.api import AgentViewSet
from agents.delegation import live_delegations
from agents.forms import (
    AgentCreateForm,
    AgentDelegatesForm,
    AgentGrantForm,
    SecretRotateForm,
    member_lookup,
)
from agents.models import RUN_LIVE, Agent, AgentSecret, AgentStatus, Connection, Delegation, Run, RunStatus
from agents.policy import agent_policy_for_org
from agents.rotation import overlap_check
from agents.selectors import (
    UNUSED_AFTER,
    agent_last_token,
    agent_timeline,
    agent_token_days,
    agents_secret_over_age_q,
    agents_unused_q,
)
from agents.views import BadFilter, choice_filter, confirmed, text_filter
from core.credentials import credential_live_q
from core.errors import ServiceError
from core.permissions import Perm
from trust.pages import agent_trust_panel
from web.charts import bar_chart
from web.pages import OrgPageMixin, form_apply_service_error
from web.paging import list_page

AGENT_RUNS_SHOWN = 20
AGENT_DELEGATIONS_SHOWN = 100
UNUSED_DAYS = UNUSED_AFTER.days
# The list's status filter: the stored status, with "contained" (suspended by trust containment) apart.
STATUS_FILTERS = {
    "active": Q(status=AgentStatus.ACTIVE),
    "suspended": Q(status=AgentStatus.SUSPENDED, contained_at__isnull=True),
    "contained": Q(status=AgentStatus.SUSPENDED, contained_at__isnull=False),
    "revoked": Q(status=AgentStatus.REVOKED),
}
# What a handle on the agent's page can show, and with which template.
SHOWN_TEMPLATES = {"agent": "agents/agent_created.html", "agent_secret": "agents/agent_secret_rotated.html"}


def _agents_with_secrets(org, queryset, rows=None):
    """Owners and secrets prefetched; `live_secrets` attached so templates need not call is_live(now),
    each secret flagged `over_age` when it is older than the org's maximum secret age. `rows`: agents
    already fetched (a list page's), to prefetch onto."""
    from django.db.models import prefetch_related_objects

    now = timezone.now()
    max_age = agent_policy_for_org(org).secret_max_age_days
    too_old = now - datetime.timedelta(days=max_age) if max_age else None
    owners = Membership.objects.for_org(org).select_related("user").order_by("user__email")
    lookups = (Prefetch("owners", queryset=owners),
               Prefetch("secrets", queryset=AgentSecret.objects.order_by("-created_at")))
    if rows is None:
        agents = list(queryset.prefetch_related(*lookups))
    else:
        agents = list(rows)
        prefetch_related_objects(agents, *lookups)
    for agent in agents:
        agent.all_secrets = []
        for s in agent.secrets.all():
            live = s.is_live(now)
            agent.all_secrets.append({"secret": s, "live": live,
                                      "over_age": live and too_old is not None and s.created_at < too_old})
        agent.live_secrets = [s["secret"] for s in agent.all_secrets if s["live"]]
        agent.over_age = any(s["over_age"] for s in agent.all_secrets)
    return agents


def agent_filters(request, org) -> tuple[Q, dict]:
    """The agents list's filters from the GET: status, owner (an email, from the picker), `secret=old`
    (a live secret past the org's maximum age) and `unused=90` (active, no secret used for 90 days),
    the last two as the overview links them. BadFilter for a value that is none of these."""
    match, shown = Q(), {}
    status = choice_filter(request, "status", tuple(STATUS_FILTERS))
    if status:
        match &= STATUS_FILTERS[status]
        shown["status"] = status
    owner_text = text_filter(request, "owner", 254)
    if owner_text:
        owner = member_lookup(org, owner_text)
        if owner is None:
            raise BadFilter(f"No active member of this organization has the email {owner_text}.")
        match &= Q(owners=owner)
        shown["owner"] = owner_text
    now = timezone.now()
    # The overview's "old secret" and "unused" items link here: the same conditions (agents.selectors).
    if choice_filter(request, "secret", ("old",)):
        match &= agents_secret_over_age_q(org, now)
        shown["secret"] = "old"
    if choice_filter(request, "unused", (str(UNUSED_DAYS),)):
        match &= agents_unused_q(org, now)
        shown["unused"] = str(UNUSED_DAYS)
    return match, shown


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
        """One page of the agents as the API lists them (`AgentViewSet.list_ordering`, `?q=` over its
        search fields), filtered; a filter nobody can apply is a 400 that says why."""
        agents = Agent.objects.for_org(self.org)
        try:
            match, shown = agent_filters(self.request, self.org)
            filter_error = ""
        except BadFilter as bad:
            match, shown, status, filter_error = Q(pk__in=[]), {}, 400, str(bad)
        page = list_page(self.request, agents.filter(match), ordering=AgentViewSet.list_ordering,
                         search_fields=AgentViewSet.search_fields)
        return self.render_page(self.template, status=status, form=form, page=page, filters=shown,
                                filter_error=filter_error,
                                agents=_agents_with_secrets(self.org, None, rows=page.rows),
                                statuses=tuple(STATUS_FILTERS),
                                has_connections=Connection.objects.for_org(self.org).exists())


class AgentPage(OrgPageMixin, View):
    """The agent's detail page, which every agent action re-renders when the service refuses."""

    template = "agents/agent_detail.html"

    def agent(self, pk) -> Agent:
        """This org's agent with its owners, secrets and delegates (another org's id is a 404)."""
        others = Agent.objects.for_org(self.org).order_by("name")
        agents = _agents_with_secrets(
            self.org, Agent.objects.for_org(self.org).filter(pk=pk).prefetch_related(
                Prefetch("may_delegate_to", queryset=others), Prefetch("may_receive_from", queryset=others)))
        if not agents:
            raise Http404("No such agent.")
        return agents[0]

    def detail(self, agent, status=200, grant_form=None, rotate_form=None, delegates_form=None):
        runs = (Run.objects.for_org(self.org).filter(agent=agent).select_related("agent")
                .order_by("-started_at")[:AGENT_RUNS_SHOWN])
        issued, denied = agent_token_days(agent)
        last = agent_last_token(agent)
        can_audit = self.access.has(Perm.AUDIT_READ)
        return self.render_page(
            self.template, status=status, agent=agent, runs=runs, runs_shown=AGENT_RUNS_SHOWN,
            usable=agent.status != AgentStatus.REVOKED,
            delegable=sorted(services.agent_delegable_now(agent)),
            delegations=self.delegations(agent),
            max_age_days=agent_policy_for_org(self.org).secret_max_age_days,
            token_chart=bar_chart([("Issued", issued), ("Denied", denied)], title="Tokens per day (14 days)"),
            tokens_issued=sum(n for _, n in issued), tokens_denied=sum(n for _, n in denied),
            last_token=last, last_token_audience=(last.data or {}).get("audience") if last else None,
            timeline=agent_timeline(agent) if can_audit else None,
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
        form = AgentGrantForm(request.POST, org=self.org, current_owners=list(agent.owners.all()))
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
    """The rotate form posts here; a valid one is first asked for on a confirmation page that says
    until when the current secret keeps working (or that it stops now, ending the agent's live runs),
    and only the POST from that page's button rotates."""

    required = {"post": Perm.AGENT_CREDENTIALS}
    confirm_template = "agents/agent_rotate.html"

    def post(self, request, org, pk):
        agent = self.agent(pk)
        form = SecretRotateForm(request.POST)
        if not form.is_valid():  # a window of 0 needs its box ticked (SecretRotateForm.clean)
            return self.detail(agent, status=400, rotate_form=form)
        try:
            overlap_check(agent_policy_for_org(self.org), form.cleaned_data["overlap_seconds"])
        except ServiceError as exc:
            form_apply_service_error(form, exc)
            return self.detail(agent, status=exc.status, rotate_form=form)
        if not confirmed(request):
            return self.confirm(agent, form.cleaned_data["overlap_seconds"], form.cleaned_data["end_now"])
        try:
            secret, previous_end = policies.agent_secret_rotate(
                access=self.access, agent=agent, overlap_seconds=form.cleaned_data["overlap_seconds"])
        except ServiceError as exc:
            form_apply_service_error(form, exc)
            return self.detail(agent, status=exc.status, rotate_form=form)
        handle = secret_hold(request, org=self.org, kind="agent_secret", secret=secret, agent=agent.pk,
                             previous_end=previous_end.isoformat() if previous_end else "")
        return redirect_to_shown(reverse("agents:agent-detail", args=[self.org.slug, agent.pk]), handle)


    def confirm(self, agent, overlap: int, end_now: bool):
        now = timezone.now()
        current = agent.live_secrets[0] if agent.live_secrets else None
        until = None
        if current is not None and overlap:
            window_end = now + datetime.timedelta(seconds=overlap)
            until = min(window_end, current.expires_at or window_end)
        live_runs = Run.objects.for_org(self.org).filter(agent=agent, status__in=RUN_LIVE).count()
        return self.render_page(self.confirm_template, agent=agent, overlap=overlap, end_now=end_now,
                                current=current, until=until, superseded=agent.live_secrets[1:],
                                live_runs=live_runs)


class AgentEndPreviousView(AgentPage):
    """GET asks whether to end the rotation window now (the previous secret stops at once, with the
    tokens it got); POST ends it once confirmed."""

    required = {"get": Perm.AGENT_CREDENTIALS, "post": Perm.AGENT_CREDENTIALS}
    confirm_template = "agents/agent_end_previous.html"

    def get(self, request, org, pk):
        return self.confirm(self.agent(pk))

    def post(self, request, org, pk):
        agent = self.agent(pk)
        if not confirmed(request):
            return self.confirm(agent)
        try:
            ended = policies.agent_secret_end_previous(access=self.access, agent=agent)
        except ServiceError as exc:
            messages.error(request, exc.detail)
            return self.detail(agent, status=exc.status)
        messages.success(request, f"Ended {ended} previous secret(s); only the newest one works now.")
        return self.back(agent)

    def confirm(self, agent):
        return self.render_page(self.confirm_template, agent=agent, current=agent.live_secrets[:1],
                                previous=agent.live_secrets[1:])


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
        return self.render_page(self.confirm_template, status=status, agent=agent,
                                **agent_consequences(self.org, agent))


def agent_consequences(org, agent) -> dict:
    """What suspending or revoking the agent reaches, counted: its live secrets, its runs by state,
    the live delegations people gave it, and the agents that may hand it tokens. Five queries."""
    now = timezone.now()
    counted = {}
    for row in (Run.objects.for_org(org).filter(agent=agent, status__in=RUN_LIVE)
                .values("status").order_by().annotate(n=Count("pk"))):
        counted[row["status"]] = row["n"]
    live_secrets = AgentSecret.objects.for_org(org).filter(credential_live_q(now), agent=agent).count()
    return {
        "running": counted.get(RunStatus.RUNNING, 0),
        "stopping": counted.get(RunStatus.STOPPING, 0),
        "waiting": counted.get(RunStatus.PENDING_APPROVAL, 0),
        "live_runs": sum(counted.values()),
        "live_secrets": live_secrets,
        "live_delegations": live_delegations(Delegation.objects.for_org(org).filter(agent=agent),
                                             now).count(),
        "senders": agent.may_receive_from.count(),
    }


class AgentRevokeView(AgentPage):
    """GET asks for confirmation with what revoking ends, counted; POST revokes once confirmed."""

    required = {"get": Perm.AGENT_WRITE, "post": Perm.AGENT_WRITE}
    confirm_template = "agents/agent_revoke.html"

    def get(self, request, org, pk):
        return self.confirm(self.scoped(Agent, pk=pk))

    def post(self, request, org, pk):
        agent = self.scoped(Agent, pk=pk)
        if not confirmed(request):
            return self.confirm(agent)
        try:
            policies.agent_revoke(access=self.access, agent=agent)
        except ServiceError as exc:
            messages.error(request, exc.detail)
            return self.confirm(agent, status=exc.status)
        messages.success(request, f"Revoked {agent.name}: its secrets, tokens and runs no longer work.")
        return self.back(agent)

    def confirm(self, agent, status=200):
        return self.render_page(self.confirm_template, status=status, agent=agent,
                                **agent_consequences(self.org, agent))


class AgentDelegatesView(AgentPage):
    """The agents this one may name in `may_act`; refusals (a target stronger than the caller,
    someone not answering for the agent) show on the form."""

    required = {"post": Perm.AGENT_WRITE}

    def post(self, request, org, pk):
        agent = self.agent(pk)
        form = AgentDelegatesForm(request.POST, agent=agent, current=list(agent.may_delegate_to.all()))
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
                                live=delegation.is_live(), **delegation_consequences(self.org, delegation))


def delegation_consequences(org, delegation) -> dict:
    """What revoking reaches: its refresh tokens still usable, and the tokens issued under it so far
    (token.issued entries naming it). Two queries."""
    from agents.models import RefreshToken
    from audit.events import AuditEvent
    from audit.models import AuditEntry

    now = timezone.now()
    refresh = (RefreshToken.objects.for_org(org)
               .filter(credential_live_q(now), delegation=delegation, spent_at__isnull=True).count())
    issued = (AuditEntry.objects.for_org(org).filter(event_code=AuditEvent.TOKEN_ISSUED.code,
                                                      actor_type="agent", actor_id=str(delegation.agent_id),
                                                      data__delegation=str(delegation.pk)).count())
    return {"refresh_tokens": refresh, "tokens_issued": issued}
