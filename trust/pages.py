"""Trust pages for an org's owners: the approvals queue and an approval's page (the link approval
mails carry), the trust policy with its gates, trust roots and connection minimums, and the trust
panel on an agent's page (`agent_trust_panel`, which agents' detail page includes).

Every write goes through trust.policies (a connection's minimum through agents.policies); a
ServiceError is shown on its form, or as a message, with its own status, and changes nothing.
OrgPageMixin asks for a recent sign-in before any POST (accounts.reauth), so an approval given
here always follows a fresh proof, and the approve form survives the detour.

The forms live here, not in a trust/forms.py: each serves exactly one of these pages.
"""

import json

from django import forms
from django.contrib import messages
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.views import View

from agents import policies as agent_policies
from agents.models import Connection
from core.errors import ServiceError
from core.permissions import Perm
from trust import policies
from trust.api import ApprovalViewSet
from trust.models import (
    DAY,
    Approval,
    ApprovalStatus,
    Attestation,
    GateBelow,
    TrustGate,
    TrustRoot,
    TrustSignal,
)
from trust.scoring import score_history
from trust.services import trust_policy_for_org
from web.forms import PageForm
from web.pages import OrgPageMixin, confirmed, form_apply_service_error
from web.paging import list_page

SIGNALS_SHOWN = 20
MAX_JWKS_CHARS = 64_000
CHART_WIDTH, CHART_HEIGHT = 600, 120

# Forms ----------------------------------------------------------------------------------------


def _score_field(label, help_text=""):
    return forms.IntegerField(min_value=0, max_value=100, label=label, help_text=help_text)


class TrustPolicyForm(PageForm):
    org_floor = _score_field("Org floor", "No agent scoring below it gets tasks or tokens.")
    weight_identity = _score_field("Weight of identity")
    weight_behaviour = _score_field("Weight of behaviour")
    weight_compliance = _score_field("Weight of compliance")
    weight_attestations = _score_field("Weight of attestations")
    signal_half_life_seconds = forms.IntegerField(
        min_value=3600,
        max_value=90 * DAY,
        label="Signal half-life (seconds)",
        help_text="How fast reported signals fade: 604800 is 7 days.",
    )
    secret_max_age_days = forms.IntegerField(min_value=1, max_value=3650, label="Secret max age (days)")
    required_attestations = forms.CharField(
        required=False,
        max_length=6000,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Required attestations",
        help_text="Attestation types every agent must hold, one per line.",
    )

    @classmethod
    def for_policy(cls, policy):
        initial = {name: getattr(policy, name) for name in cls.base_fields}
        initial["required_attestations"] = "\n".join(policy.required_attestations or [])
        return cls(initial=initial)

    def clean_required_attestations(self) -> list[str]:
        types = [line.strip() for line in self.cleaned_data["required_attestations"].splitlines()]
        types = [t for t in types if t]
        if len(types) > 50 or any(len(t) > 100 for t in types):
            raise forms.ValidationError("At most 50 types of at most 100 characters each.")
        return types


class GateForm(PageForm):
    name = forms.CharField(max_length=100)
    operation = forms.CharField(max_length=100, help_text="The class of operation a run names.")
    min_score = _score_field("Minimum score")
    below = forms.ChoiceField(choices=GateBelow.choices, label="Below it")

    @classmethod
    def for_gate(cls, gate, data=None):
        initial = {
            "name": gate.name,
            "operation": gate.operation,
            "min_score": gate.min_score,
            "below": gate.below,
        }
        # Ids per gate: every gate's form is on the same page.
        return cls(data, initial=initial, auto_id=f"id_gate_{gate.pk.hex}_%s")


class RootForm(PageForm):
    name = forms.CharField(max_length=100)
    jwks = forms.CharField(
        max_length=MAX_JWKS_CHARS,
        widget=forms.Textarea(attrs={"rows": 6}),
        label="Public JWK set",
        help_text='Paste {"keys": [...]}: public keys only.',
    )

    def clean_jwks(self):
        try:
            value = json.loads(self.cleaned_data["jwks"])
        except ValueError:
            raise forms.ValidationError("This is not JSON.")
        if not isinstance(value, dict):
            raise forms.ValidationError('A JWK set is a JSON object: {"keys": [...]}.')
        return value


class MinTrustForm(PageForm):
    min_trust = _score_field("Minimum trust score")


class DecisionForm(PageForm):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("deny", "Deny")])
    comment = forms.CharField(max_length=500, required=False)


# The trust policy page ------------------------------------------------------------------------


class TrustPage(OrgPageMixin, View):
    """The trust page, which each of its forms re-renders (with its errors) when refused."""

    template = "trust/trust.html"

    def page(self, status=200, edited=None, **forms_given):
        """`edited`: (gate id, bound form) of a refused gate change; `forms_given`: the others."""
        policy = trust_policy_for_org(self.org)
        gates = [
            {"gate": gate, "form": edited[1] if edited and edited[0] == gate.pk else GateForm.for_gate(gate)}
            for gate in TrustGate.objects.for_org(self.org).order_by("name")
        ]
        roots = [
            {"root": root, "kids": [k.get("kid") for k in (root.jwks or {}).get("keys", [])]}
            for root in TrustRoot.objects.for_org(self.org).order_by("name")
        ]
        connections = []
        if self.access.has(Perm.CONNECTION_READ):
            connections = [
                {
                    "connection": c,
                    "form": forms_given.get("min_trust", {}).get(c.pk)
                    or MinTrustForm(initial={"min_trust": c.min_trust}, auto_id=f"id_conn_{c.pk.hex}_%s"),
                }
                for c in Connection.objects.for_org(self.org).order_by("name")
            ]
        return self.render_page(
            self.template,
            status=status,
            policy=policy,
            gates=gates,
            roots=roots,
            connections=connections,
            policy_form=forms_given.get("policy_form") or TrustPolicyForm.for_policy(policy),
            gate_form=forms_given.get("gate_form") or GateForm(auto_id="id_new_gate_%s"),
            root_form=forms_given.get("root_form") or RootForm(auto_id="id_root_%s"),
        )

    def back(self):
        return redirect("trust:trust", org=self.org.slug)


class TrustPolicyView(TrustPage):
    required = {"get": Perm.TRUST_READ, "post": Perm.TRUST_WRITE}

    def get(self, request, org):
        return self.page()

    def post(self, request, org):
        form = TrustPolicyForm(request.POST)
        if not form.is_valid():
            return self.page(status=400, policy_form=form)
        try:
            policies.trust_policy_update(access=self.access, **form.cleaned_data)
        except ServiceError as exc:
            form_apply_service_error(form, exc)
            return self.page(status=exc.status, policy_form=form)
        messages.success(request, "Saved the trust policy.")
        return self.back()


class GateAddView(TrustPage):
    required = {"post": Perm.TRUST_WRITE}

    def post(self, request, org):
        form = GateForm(request.POST, auto_id="id_new_gate_%s")
        if not form.is_valid():
            return self.page(status=400, gate_form=form)
        try:
            gate = policies.trust_gate_add(access=self.access, **form.cleaned_data)
        except ServiceError as exc:
            form_apply_service_error(form, exc)
            return self.page(status=exc.status, gate_form=form)
        messages.success(request, f"Added the gate {gate.name}.")
        return self.back()


class GateChangeView(TrustPage):
    required = {"post": Perm.TRUST_WRITE}

    def post(self, request, org, pk):
        gate = self.scoped(TrustGate, pk=pk)
        form = GateForm.for_gate(gate, request.POST)
        if not form.is_valid():
            return self.page(status=400, edited=(gate.pk, form))
        try:
            gate = policies.trust_gate_change(access=self.access, gate=gate, **form.cleaned_data)
        except ServiceError as exc:
            form_apply_service_error(form, exc)
            return self.page(status=exc.status, edited=(gate.pk, form))
        messages.success(request, f"Saved the gate {gate.name}.")
        return self.back()


class GateDeleteView(TrustPage):
    """Deleting a gate lowers what runs of its operation must meet at once, so it is asked for on a
    confirmation page that says what still applies to them."""

    required = {"post": Perm.TRUST_WRITE}
    confirm_template = "trust/gate_delete.html"

    def post(self, request, org, pk):
        gate = self.scoped(TrustGate, pk=pk)
        if not confirmed(request):
            return self.confirm(gate)
        policies.trust_gate_remove(access=self.access, gate=gate)
        messages.success(request, f"Deleted the gate {gate.name}.")
        return self.back()

    def confirm(self, gate):
        others = TrustGate.objects.for_org(self.org).filter(operation=gate.operation).exclude(pk=gate.pk)
        waiting = Approval.objects.for_org(self.org).filter(operation=gate.operation,
                                                              status=ApprovalStatus.PENDING)
        return self.render_page(self.confirm_template, gate=gate, others=list(others.order_by("name")),
                                waiting=waiting.count(), floor=trust_policy_for_org(self.org).org_floor)


class RootAddView(TrustPage):
    required = {"post": Perm.TRUST_WRITE}

    def post(self, request, org):
        form = RootForm(request.POST, auto_id="id_root_%s")
        if not form.is_valid():
            return self.page(status=400, root_form=form)
        try:
            root = policies.trust_root_add(access=self.access, **form.cleaned_data)
        except ServiceError as exc:
            form_apply_service_error(form, exc)
            return self.page(status=exc.status, root_form=form)
        messages.success(request, f"Registered the trust root {root.name}.")
        return self.back()


class RootRemoveView(TrustPage):
    """Removing a root takes its attestations out of every score at once (an agent may fall below
    the floor), so it is asked for on a confirmation page first."""

    required = {"get": Perm.TRUST_WRITE, "post": Perm.TRUST_WRITE}
    confirm_template = "trust/root_remove.html"

    def get(self, request, org, pk):
        return self.confirm(self.scoped(TrustRoot, pk=pk))

    def post(self, request, org, pk):
        root = self.scoped(TrustRoot, pk=pk)
        if not confirmed(request):
            return self.confirm(root)
        try:
            policies.trust_root_remove(access=self.access, root=root)
        except ServiceError as exc:
            messages.error(request, exc.detail)
            return self.confirm(root, status=exc.status)
        messages.success(request, f"Removed the trust root {root.name}; its attestations no longer count.")
        return self.back()

    def confirm(self, root, status=200):
        counted = Attestation.objects.for_org(self.org).filter(root=root, expires_at__gt=timezone.now())
        return self.render_page(self.confirm_template, status=status, root=root, live=counted.count())


class ConnectionMinTrustView(TrustPage):
    required = {"post": Perm.TRUST_WRITE}

    def post(self, request, org, pk):
        connection = self.scoped(Connection, pk=pk)
        form = MinTrustForm(request.POST, auto_id=f"id_conn_{connection.pk.hex}_%s")
        if not form.is_valid():
            return self.page(status=400, min_trust={connection.pk: form})
        try:
            agent_policies.connection_update(
                access=self.access, connection=connection, min_trust=form.cleaned_data["min_trust"]
            )
        except ServiceError as exc:
            form_apply_service_error(form, exc)
            return self.page(status=exc.status, min_trust={connection.pk: form})
        messages.success(
            request, f"{connection.name} now needs a trust score of {form.cleaned_data['min_trust']}."
        )
        return self.back()


# Approvals ------------------------------------------------------------------------------------


def _with_status(approvals, now) -> list[Approval]:
    approvals = list(approvals)
    for approval in approvals:
        approval.status_now = ApprovalStatus(approval.status_at(now))
    return approvals


APPROVAL_STATES = ("pending", "approved", "denied", "expired", "cancelled", "all")


def approvals_in_state(queryset, state: str, now):
    """Approvals whose state *now* (Approval.status_at) is `state`: a pending one past its expiry reads
    expired, and one whose run ended first reads cancelled, though nobody wrote it."""
    run_waiting = Q(run__status="pending_approval") & (
        Q(run__pending_until__isnull=True) | Q(run__pending_until__gt=now))
    live = Q(status=ApprovalStatus.PENDING, expires_at__gt=now)
    if state == ApprovalStatus.PENDING:
        return queryset.filter(live & run_waiting)
    if state == ApprovalStatus.EXPIRED:
        return queryset.filter(Q(status=ApprovalStatus.EXPIRED)
                               | Q(status=ApprovalStatus.PENDING, expires_at__lte=now))
    if state == ApprovalStatus.CANCELLED:
        return queryset.filter(Q(status=ApprovalStatus.CANCELLED) | (live & ~run_waiting))
    if state in (ApprovalStatus.APPROVED, ApprovalStatus.DENIED):
        return queryset.filter(status=state)
    return queryset


class ApprovalListView(OrgPageMixin, View):
    """The approvals, as the API lists them (ApprovalViewSet's ordering and search), by state: the
    queue (pending) unless another state is asked for. An unknown state is a 400 that says so."""

    required = {"get": Perm.TRUST_READ}

    def get(self, request, org):
        now = timezone.now()
        status, error = 200, ""
        state = request.GET.get("state", "").strip() or ApprovalStatus.PENDING
        rows = Approval.objects.for_org(self.org).select_related("agent", "run", "decided_by")
        if state not in APPROVAL_STATES:
            status, error = 400, f"Unknown state {state[:40]!r}: choose one of {', '.join(APPROVAL_STATES)}."
            state, rows = ApprovalStatus.PENDING, rows.none()
        else:
            rows = approvals_in_state(rows, state, now)
        page = list_page(request, rows, ordering=ApprovalViewSet.list_ordering,
                         search_fields=ApprovalViewSet.search_fields)
        waiting = approvals_in_state(Approval.objects.for_org(self.org), ApprovalStatus.PENDING, now).count()
        return self.render_page(
            "trust/approvals.html", status=status, page=page, approvals=_with_status(page.rows, now),
            state=state, states=APPROVAL_STATES, filter_error=error, waiting=waiting,
        )


# Why a decision was refused, in the words the approval's page shows.
REFUSALS = {
    "approval_expired": "This approval has expired: its run has ended and can no longer be approved.",
    "approval_decided": "This approval has already been decided.",
}


class ApprovalDetailView(OrgPageMixin, View):
    required = {"get": Perm.TRUST_READ, "post": Perm.TRUST_APPROVE}
    template = "trust/approval_detail.html"

    def get(self, request, org, pk):
        return self.detail(self.approval(pk))

    def post(self, request, org, pk):
        approval = self.approval(pk)
        form = DecisionForm(request.POST)
        if not form.is_valid():
            return self.detail(approval, status=400, form=form)
        approve = form.cleaned_data["decision"] == "approve"
        try:
            policies.approval_decide(
                access=self.access, approval=approval, approve=approve, comment=form.cleaned_data["comment"]
            )
        except ServiceError as exc:
            messages.error(request, REFUSALS.get(exc.code, exc.detail))
            return self.detail(self.approval(pk), status=exc.status, form=form)
        if approve:
            messages.success(
                request, f"Approved the run of {approval.agent.name}: it is running and may get tokens now."
            )
        else:
            messages.success(request, f"Denied the run of {approval.agent.name}: it has ended.")
        return redirect("trust:approvals", org=self.org.slug)

    def approval(self, pk) -> Approval:
        """This org's approval (another org's id is a 404, like an unknown one)."""
        rows = Approval.objects.for_org(self.org).select_related(
            "agent", "run", "decided_by", "requested_by_user"
        )
        return get_object_or_404(rows, pk=pk)

    def detail(self, approval, status=200, form=None):
        now = timezone.now()
        (approval,) = _with_status([approval], now)
        mine = (
            approval.requested_by_user_id is not None
            and approval.requested_by_user_id == self.request.user.pk
        )
        return self.render_page(
            self.template,
            status=status,
            approval=approval,
            form=form or DecisionForm(),
            is_dispatcher=mine,
            open=approval.status_now == ApprovalStatus.PENDING,
        )


# The agent's trust panel ----------------------------------------------------------------------


def score_chart(samples, floor: int) -> dict | None:
    """An inline SVG polyline of the score over time (oldest on the left), drawn on the server: the
    page loads no script and no asset for it. `samples` come newest first (score_history)."""
    samples = list(reversed(samples))
    if not samples:
        return None
    start = samples[0].at
    span = (samples[-1].at - start).total_seconds() or 1.0

    def y(score) -> float:
        return round(CHART_HEIGHT - score * CHART_HEIGHT / 100, 1)

    if len(samples) == 1:
        points = f"0,{y(samples[0].score)} {CHART_WIDTH},{y(samples[0].score)}"
    else:
        points = " ".join(
            f"{round((s.at - start).total_seconds() * CHART_WIDTH / span, 1)},{y(s.score)}" for s in samples
        )
    scores = [s.score for s in samples]
    return {
        "points": points,
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "floor_y": y(floor),
        "first": samples[0],
        "last": samples[-1],
        "count": len(samples),
        "low": min(scores),
        "high": max(scores),
    }


def agent_trust_panel(*, access, agent) -> dict | None:
    """What the agent page's trust section shows; None for a reader without trust:read."""
    if not access.has(Perm.TRUST_READ):
        return None
    evaluation = policies.agent_trust(access=access, agent=agent)  # keeps a history sample a minute
    attestations = (
        Attestation.objects.for_org(access.org)
        .filter(agent=agent, expires_at__gt=evaluation.evaluated_at)
        .select_related("root")
        .order_by("expires_at")
    )
    signals = (
        TrustSignal.objects.for_org(access.org)
        .filter(agent=agent)
        .select_related("connection")
        .order_by("-at")[:SIGNALS_SHOWN]
    )
    floor = trust_policy_for_org(access.org).org_floor
    return {
        "evaluation": evaluation,
        "components": [
            {"name": name, "score": round(c.score), "weight": c.weight, "reasons": c.reasons}
            for name, c in evaluation.components.items()
        ],
        "attestations": list(attestations),
        "signals": list(signals),
        "chart": score_chart(score_history(agent), floor),
        "floor": floor,
    }
