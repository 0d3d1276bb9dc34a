"""Run pages: the list, starting a run, and terminating one after a confirmation."""

from django.contrib import messages
from django.shortcuts import redirect
from django.views import View

from agents import policies
from agents.forms import RunStartForm
from agents.models import Run
from agents.views import confirmed
from core.errors import ServiceError
from core.permissions import Perm
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
