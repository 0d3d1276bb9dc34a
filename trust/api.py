"""Admin API: trust roots, attestations about an agent, its trust score now, and the org's trust
policy. Thin views over trust.policies."""

from django.db.models import Q
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from agents.models import Agent
from core.errors import Invalid, NotFound
from core.permissions import Perm
from trust import policies
from trust.models import DAY, Approval, ApprovalStatus, Attestation, GateBelow, TrustGate, TrustRoot
from trust.services import trust_policy_for_org
from web.api import OrgScopedAPIView, OrgScopedViewSet


def _agent(org, pk) -> Agent:
    """The agent named in the path; another org's is a 404, like an unknown one."""
    agent = Agent.objects.for_org(org).filter(pk=pk).first()
    if agent is None:
        raise NotFound("Agent not found.")
    return agent


class TrustRootSerializer(serializers.ModelSerializer):
    created_by = serializers.UUIDField(source="created_by_id", allow_null=True, read_only=True)

    class Meta:
        model = TrustRoot
        fields = ["id", "name", "jwks", "created_by", "created_at"]
        read_only_fields = fields


class TrustRootWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    jwks = serializers.JSONField(help_text='The root\'s public keys: {"keys": [JWK, ...]}, each with a kid.')


class TrustRootViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    """Parties whose signed statements about agents the org accepts."""

    model = TrustRoot
    list_ordering = "name"
    search_fields = ("name",)
    serializer_class = TrustRootSerializer
    required = {"list": Perm.TRUST_READ, "retrieve": Perm.TRUST_READ, "create": Perm.TRUST_WRITE,
                "destroy": Perm.TRUST_WRITE}

    def scope(self, queryset):
        return queryset.order_by("name")

    @extend_schema(request=TrustRootWriteSerializer, responses={201: TrustRootSerializer})
    def create(self, request, org):
        """Register a root by its public JWK set (a private key is refused; key ids are unique in
        the org, 409 when another root has one)."""
        data = self.validated(TrustRootWriteSerializer, request.data)
        root = policies.trust_root_add(access=self.access, name=data["name"], jwks=data["jwks"])
        return Response(TrustRootSerializer(root).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request, org, pk):
        """Remove the root: the attestations it signed stop counting at once."""
        policies.trust_root_remove(access=self.access, root=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class AttestationSerializer(serializers.ModelSerializer):
    root = serializers.UUIDField(source="root_id")
    root_name = serializers.CharField(source="root.name")
    live = serializers.SerializerMethodField(help_text="False once it has expired (by its timestamp).")

    class Meta:
        model = Attestation
        fields = ["id", "agent", "type", "weight", "root", "root_name", "kid", "jti", "issued_at",
                  "expires_at", "live", "created_at"]
        read_only_fields = fields

    def get_live(self, attestation) -> bool:
        return attestation.expires_at > self.context.get("now", timezone.now())


class AttestationWriteSerializer(serializers.Serializer):
    attestation = serializers.CharField(
        trim_whitespace=False, allow_blank=True,
        help_text="A compact JWS from a registered root (header kid), with claims sub 'agent:<id>', type, "
                  "weight (-50..50), iat, exp and optionally jti.")


class AttestationViewSet(mixins.ListModelMixin, OrgScopedViewSet):
    """Signed statements about one agent (`agents/{agent}/attestations`), live and expired."""

    model = Attestation
    list_ordering = "-created_at"
    serializer_class = AttestationSerializer
    required = {"list": Perm.TRUST_READ, "create": Perm.TRUST_WRITE}

    def scope(self, queryset):
        return queryset.filter(agent_id=self.kwargs["agent"]).select_related("root").order_by("-created_at")

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "now": timezone.now()}

    def list(self, request, *args, **kwargs):
        _agent(self.org, self.kwargs["agent"])
        return super().list(request, *args, **kwargs)

    @extend_schema(request=AttestationWriteSerializer, responses={201: AttestationSerializer})
    def create(self, request, org, agent):
        """Verify and record a statement: 400 `invalid_attestation` (audited) when it is not signed
        by a registered root's key, is about another agent, is expired or malformed."""
        data = self.validated(AttestationWriteSerializer, request.data)
        attestation = policies.attestation_submit(access=self.access, agent=_agent(self.org, agent),
                                                  compact=data["attestation"])
        return Response(AttestationSerializer(attestation, context=self.get_serializer_context()).data,
                        status=status.HTTP_201_CREATED)


class AgentTrustView(OrgScopedAPIView):
    """The agent's trust score for now, with its components and their reasons."""

    required = {"get": Perm.TRUST_READ}

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request, org, agent):
        evaluation = policies.agent_trust(access=self.access, agent=_agent(self.org, agent))
        return Response(evaluation.as_dict(), headers={"Cache-Control": "no-store"})


# Trust policy ---------------------------------------------------------------------------------

WEIGHTS = ("identity", "behaviour", "compliance", "attestations")


class TrustWeightsSerializer(serializers.Serializer):
    identity = serializers.IntegerField(min_value=0, max_value=100, required=False)
    behaviour = serializers.IntegerField(min_value=0, max_value=100, required=False)
    compliance = serializers.IntegerField(min_value=0, max_value=100, required=False)
    attestations = serializers.IntegerField(min_value=0, max_value=100, required=False)


class TrustPolicySerializer(serializers.Serializer):
    org_floor = serializers.IntegerField(min_value=0, max_value=100, required=False,
                                         help_text="No agent scoring below it gets tasks.")
    weights = TrustWeightsSerializer(required=False)
    signal_half_life_seconds = serializers.IntegerField(min_value=3600, max_value=90 * DAY, required=False)
    secret_max_age_days = serializers.IntegerField(min_value=1, max_value=3650, required=False)
    required_attestations = serializers.ListField(
        child=serializers.CharField(max_length=100), max_length=50, required=False,
        help_text="Attestation types every agent must hold (compliance).")
    separation_of_duties = serializers.BooleanField(
        required=False, help_text="The agent's owners may not approve its escalated runs.")
    approval_ttl_seconds = serializers.IntegerField(
        min_value=300, max_value=30 * DAY, required=False, help_text="How long an escalated run waits.")

    def validate(self, attrs):
        # Refused rather than ignored: the caller expects a change (a misspelt weight, a "score").
        errors = {name: ["Unknown setting."] for name in sorted(set(self.initial_data) - set(self.fields))}
        weights = self.initial_data.get("weights")
        unknown = sorted(set(weights) - set(WEIGHTS)) if isinstance(weights, dict) else []
        if unknown:
            errors["weights"] = {name: ["Unknown component."] for name in unknown}
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


def _policy_body(policy) -> dict:
    return {
        "org_floor": policy.org_floor,
        "weights": {name: getattr(policy, f"weight_{name}") for name in WEIGHTS},
        "signal_half_life_seconds": policy.signal_half_life_seconds,
        "secret_max_age_days": policy.secret_max_age_days,
        "required_attestations": list(policy.required_attestations or []),
        "separation_of_duties": policy.separation_of_duties,
        "approval_ttl_seconds": policy.approval_ttl_seconds,
        "updated_at": serializers.DateTimeField().to_representation(policy.updated_at),
    }


def _weight_errors(fields: dict) -> dict:
    """The effect names the row's columns (weight_identity); the API nests them under `weights`."""
    out, weights = {}, {}
    for name, errors in (fields or {}).items():
        if name.startswith("weight_"):
            weights[name.removeprefix("weight_")] = errors
        else:
            out[name] = errors
    if weights:
        out["weights"] = weights
    return out


class TrustPolicyView(OrgScopedAPIView):
    """The org's trust policy: its floor, the components' weights, how fast signals fade, the
    longest a client secret may go unrotated and the attestations every agent must hold."""

    required = {"get": Perm.TRUST_READ, "patch": Perm.TRUST_WRITE}

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request, org):
        return Response(_policy_body(trust_policy_for_org(self.org)))

    @extend_schema(request=TrustPolicySerializer, responses={200: OpenApiTypes.OBJECT})
    def patch(self, request, org):
        """Any of the policy's fields; the others stay as they are (all of it applies, or none)."""
        if not isinstance(request.data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Send a JSON object."]})
        data = dict(self.validated(TrustPolicySerializer, request.data, partial=True))
        changes = {f"weight_{name}": value for name, value in dict(data.pop("weights", {})).items()}
        changes.update(data)
        if not changes:
            return Response(_policy_body(trust_policy_for_org(self.org)))
        try:
            policy = policies.trust_policy_update(access=self.access, **changes)
        except Invalid as exc:
            raise Invalid(exc.detail, code=exc.code, fields=_weight_errors(exc.fields)) from exc
        return Response(_policy_body(policy))


# Dispatch gates and approvals -----------------------------------------------------------------


class TrustGateSerializer(serializers.ModelSerializer):
    class Meta:
        model = TrustGate
        fields = ["id", "name", "operation", "min_score", "below", "created_at"]
        read_only_fields = fields


class TrustGateWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    operation = serializers.CharField(max_length=100, help_text="The class of operation a run names.")
    min_score = serializers.IntegerField(min_value=0, max_value=100)
    below = serializers.ChoiceField(choices=GateBelow.choices, default=GateBelow.BLOCK,
                                    help_text="What happens to a run below min_score.")


class TrustGateViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    """Policy gates for classes of operations: a minimum score and what happens below it."""

    model = TrustGate
    list_ordering = "name"
    search_fields = ("name", "operation")
    serializer_class = TrustGateSerializer
    required = {"list": Perm.TRUST_READ, "retrieve": Perm.TRUST_READ, "create": Perm.TRUST_WRITE,
                "partial_update": Perm.TRUST_WRITE, "destroy": Perm.TRUST_WRITE}

    def scope(self, queryset):
        return queryset.order_by("name")

    @extend_schema(request=TrustGateWriteSerializer, responses={201: TrustGateSerializer})
    def create(self, request, org):
        data = self.validated(TrustGateWriteSerializer, request.data)
        gate = policies.trust_gate_add(access=self.access, **data)
        return Response(TrustGateSerializer(gate).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=TrustGateWriteSerializer, responses={200: TrustGateSerializer})
    def partial_update(self, request, org, pk):
        data = self.validated(TrustGateWriteSerializer, request.data, partial=True)
        gate = policies.trust_gate_change(access=self.access, gate=self.get_object(), **data)
        return Response(TrustGateSerializer(gate).data)

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request, org, pk):
        policies.trust_gate_remove(access=self.access, gate=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class ApprovalSerializer(serializers.ModelSerializer):
    status = serializers.SerializerMethodField(
        help_text="pending, approved, denied or expired (by its timestamp).")
    agent_name = serializers.CharField(source="agent.name")
    requested_by = serializers.SerializerMethodField()
    decided_by = serializers.UUIDField(source="decided_by_id", allow_null=True)

    class Meta:
        model = Approval
        fields = ["id", "run", "agent", "agent_name", "operation", "status", "score", "level", "reasons",
                  "gates", "chain", "requested_by", "created_at", "expires_at", "decided_by", "decided_at",
                  "comment"]
        read_only_fields = fields

    def get_status(self, approval) -> str:
        return approval.status_at(timezone.now())

    def get_requested_by(self, approval) -> dict:
        return {"type": approval.requested_by_type, "id": approval.requested_by_id,
                "display": approval.requested_by_display}


class ApprovalDecisionSerializer(serializers.Serializer):
    comment = serializers.CharField(max_length=500, required=False, allow_blank=True)


class ApprovalViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    """Runs a trust gate escalated, waiting for a person (`?status=pending` for the queue)."""

    model = Approval
    list_ordering = "-created_at"
    search_fields = ("agent__name", "operation")
    serializer_class = ApprovalSerializer
    required = {"list": Perm.TRUST_READ, "retrieve": Perm.TRUST_READ, "approve": Perm.TRUST_APPROVE,
                "deny": Perm.TRUST_APPROVE}

    def scope(self, queryset):
        queryset = queryset.select_related("agent").order_by("-created_at")
        wanted = self.request.query_params.get("status")
        now = timezone.now()
        if wanted == ApprovalStatus.PENDING:
            return queryset.filter(status=ApprovalStatus.PENDING, expires_at__gt=now)
        if wanted == ApprovalStatus.EXPIRED:
            return queryset.filter(Q(status=ApprovalStatus.EXPIRED)
                                   | Q(status=ApprovalStatus.PENDING, expires_at__lte=now))
        if wanted in (ApprovalStatus.APPROVED, ApprovalStatus.DENIED):
            return queryset.filter(status=wanted)
        return queryset

    def _decide(self, request, approve: bool):
        data = self.validated(ApprovalDecisionSerializer, request.data or {})
        approval = policies.approval_decide(access=self.access, approval=self.get_object(), approve=approve,
                                            comment=data.get("comment", ""))
        return Response(ApprovalSerializer(approval).data)

    @extend_schema(request=ApprovalDecisionSerializer, responses={200: ApprovalSerializer})
    @action(detail=True, methods=["post"])
    def approve(self, request, org, pk):
        """Approve: the run starts running and may mint run-bound tokens. 403 `separation_of_duties`
        for the person who dispatched it (and, when the org says so, the agent's owners); 409
        `approval_expired` or `approval_decided`."""
        return self._decide(request, True)

    @extend_schema(request=ApprovalDecisionSerializer, responses={200: ApprovalSerializer})
    @action(detail=True, methods=["post"])
    def deny(self, request, org, pk):
        """Deny: the run ends."""
        return self._decide(request, False)
