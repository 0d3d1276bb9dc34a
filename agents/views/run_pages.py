"""Run pages: the list, starting a run, a run's page (its state, the dispatch decision and any
approval), stopping one gracefully, and terminating one after a confirmation."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.views import View

from agents import policies
from agents.forms import RunStartForm
from agents.models import RUN_LIVE, Run, RunStatus
from agents.views import confirmed
from core.errors import ServiceError
from core.permissions import Perm
from trust.models import Approval
from web.pages import OrgPageMixin, form_apply_service_error

RUNS_SHOWN = 200


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
        runs = Run.objects.for_org(self.org).select_related("agent").order_by("-started_at")[:RUNS_SHOWN]
        return self.render_page(self.template, status=status, form=form, runs=runs, shown=RUNS_SHOWN)


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
        return self.render_page(self.template, status=status, run=run, came_from=came_from)


class RunDetailView(OrgPageMixin, View):
    required = {"get": Perm.RUN_READ}
    template = "agents/run_detail.html"

    def get(self, request, org, pk):
        run = get_object_or_404(Run.objects.for_org(self.org).select_related("agent"), pk=pk)
        approval = Approval.objects.for_org(self.org).filter(run=run).select_related("decided_by").first()
        # By the timestamps: a stop past its deadline or an approval nobody gave in time has ended it.
        status = RunStatus(run.status_at(timezone.now()))
        return self.render_page(self.template, run=run, run_status=status, approval=approval,
                                live=status in RUN_LIVE)


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
