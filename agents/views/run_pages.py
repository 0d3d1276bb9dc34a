"""Run pages: the list (search, state and agent filters, paging), starting a run, a run's page
(its state, the dispatch decision with the trust score it was taken at, the tokens bound to it and
its approval), stopping one gracefully, and terminating one after a confirmation."""

from django.contrib import messages
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.views import View

from agents import policies
from agents.api import RunViewSet
from agents.forms import RunStartForm, agent_lookup
from agents.models import RUN_LIVE, Agent, Run, RunStatus
from agents.views import BadFilter, choice_filter, confirmed, text_filter
from audit.events import AuditEvent
from audit.models import AuditEntry
from core.errors import ServiceError
from core.permissions import Perm
from trust.models import Approval
from web.pages import OrgPageMixin, form_apply_service_error
from web.paging import list_page

TOKENS_SHOWN = 50


def run_state_filter(state: str, now) -> Q:
    """Runs whose state *by their timestamps* (Run.status_at) is `state`: a stop past its deadline,
    or an approval nobody gave in time, reads terminated though no worker has written it."""
    stop_over = Q(status=RunStatus.STOPPING, stop_by__lte=now)
    wait_over = Q(status=RunStatus.PENDING_APPROVAL, pending_until__lte=now)
    if state == RunStatus.TERMINATED:
        return Q(status=RunStatus.TERMINATED) | stop_over | wait_over
    if state == RunStatus.STOPPING:
        return Q(status=state) & ~stop_over
    if state == RunStatus.PENDING_APPROVAL:
        return Q(status=state) & ~wait_over
    return Q(status=state)


def run_filters(request, org) -> tuple[Q, dict]:
    """The runs list's filters: `state` (a RunStatus), `agent` (an id, a name or a client id)."""
    match, shown = Q(), {}
    state = choice_filter(request, "state", tuple(RunStatus.values))
    if state:
        match &= run_state_filter(state, timezone.now())
        shown["state"] = state
    agent_text = text_filter(request, "agent", 100)
    if agent_text:
        agent = agent_lookup(Agent.objects.for_org(org), agent_text)
        if agent is None:
            raise BadFilter(f"No agent of this organization is named {agent_text}.")
        match &= Q(agent=agent)
        shown["agent"] = agent_text
        shown["agent_name"] = agent.name
    return match, shown


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
        """One page of the runs as the API lists them (`RunViewSet`), filtered and searched."""
        filter_error = ""
        try:
            match, shown = run_filters(self.request, self.org)
        except BadFilter as bad:
            match, shown, status, filter_error = Q(pk__in=[]), {}, 400, str(bad)
        runs = Run.objects.for_org(self.org).filter(match).select_related("agent")
        page = list_page(self.request, runs, ordering=RunViewSet.list_ordering,
                         search_fields=RunViewSet.search_fields)
        now = timezone.now()
        for run in page.rows:
            run.status_now = RunStatus(run.status_at(now))
        return self.render_page(self.template, status=status, form=form, page=page, runs=page.rows,
                                filters=shown, filter_error=filter_error, states=RunStatus.choices)


class RunTerminateView(OrgPageMixin, View):
    """GET asks for confirmation (it is also where re-authentication comes back to); POST ends the
    run once confirmed. `from=agent` returns to the agent's page instead of the runs list."""

    required = {"get": Perm.RUN_WRITE, "post": Perm.RUN_WRITE}
    template = "agents/run_terminate.html"

    def get(self, request, org, pk):
        return self.confirm(self.run(pk), request.GET.get("from", ""))

    def post(self, request, org, pk):
        run = self.run(pk)
        came_from = request.POST.get("from", "")
        if not confirmed(request):
            return self.confirm(run, came_from)
        try:
            policies.run_terminate(access=self.access, run=run)
        except ServiceError as exc:
            messages.error(request, exc.detail)
            return self.confirm(run, came_from, status=exc.status)
        messages.success(request, f"Terminated run {run.pk}; tokens bound to it stop working.")
        if came_from == "agent":
            return redirect("agents:agent-detail", org=self.org.slug, pk=run.agent_id)
        return redirect("agents:runs", org=self.org.slug)

    def run(self, pk) -> Run:
        return self.scoped(Run, pk=pk)

    def confirm(self, run, came_from: str, status=200):
        came_from = "agent" if came_from == "agent" else ""
        state = RunStatus(run.status_at(timezone.now()))
        return self.render_page(self.template, status=status, run=run, came_from=came_from,
                                run_status=state, live=state in RUN_LIVE, tokens=run_tokens(run).count(),
                                pending_approval=Approval.objects.for_org(self.org).filter(
                                    run=run, status="pending").exists())


def run_tokens(run):
    """The token.issued entries of tokens bound to the run (their `run` claim), newest first."""
    return (AuditEntry.objects.for_org(run.org_id)
            .filter(event_code=AuditEvent.TOKEN_ISSUED.code, actor_type="agent", actor_id=str(run.agent_id),
                    data__run=str(run.pk))
            .order_by("-seq"))


DECISION_EVENTS = (AuditEvent.TRUST_ALLOWED.code, AuditEvent.TRUST_ESCALATED.code,
                   AuditEvent.TRUST_DENIED.code)
DECISIONS_SHOWN = 20


def run_decisions(run):
    """The trust decisions taken about the run, newest first: its dispatch (trust.allow/escalate,
    the run as target) and any token issuance the gates refused for it (trust.deny naming the run),
    each with the score, level and reasons of that moment."""
    about_run = Q(target_type="run", target_id=str(run.pk)) | Q(data__run=str(run.pk))
    return (AuditEntry.objects.for_org(run.org_id).filter(event_code__in=DECISION_EVENTS)
            .filter(about_run).order_by("-seq"))


class RunDetailView(OrgPageMixin, View):
    required = {"get": Perm.RUN_READ}
    template = "agents/run_detail.html"

    def get(self, request, org, pk):
        run = get_object_or_404(Run.objects.for_org(self.org).select_related("agent"), pk=pk)
        approval = (Approval.objects.for_org(self.org).filter(run=run)
                    .select_related("run", "decided_by", "requested_by_user").first())
        # By the timestamps: a stop past its deadline or an approval nobody gave in time has ended it.
        now = timezone.now()
        status = RunStatus(run.status_at(now))
        tokens = list(run_tokens(run)[:TOKENS_SHOWN])
        return self.render_page(self.template, run=run, run_status=status, approval=approval,
                                approval_status=approval.status_at(now) if approval else None,
                                decisions=list(run_decisions(run)[:DECISIONS_SHOWN]),
                                live=status in RUN_LIVE, tokens=tokens, tokens_shown=TOKENS_SHOWN,
                                token_alive=status in (RunStatus.RUNNING, RunStatus.STOPPING))


class RunStopView(OrgPageMixin, View):
    """A graceful stop: the agent is told, and its tokens live until the deadline (agents.runs)."""

    required = {"post": Perm.RUN_WRITE}

    def post(self, request, org, pk):
        run = self.scoped(Run, pk=pk)
        try:
            run = policies.run_stop(access=self.access, run=run)
        except ServiceError as exc:
            messages.error(request, exc.detail)
        else:
            if run.status == RunStatus.STOPPING:
                messages.success(request, f"Asked run {run.pk} to stop; its tokens work until "
                                          f"{run.stop_by:%Y-%m-%d %H:%M:%S} UTC.")
            else:
                messages.info(request, f"Run {run.pk} is {run.get_status_display().lower()}.")
        return redirect("agents:run-detail", org=self.org.slug, pk=run.pk)
