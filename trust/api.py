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
        queryset = queryset.select_related("agent", "run").order_by("-created_at")
        wanted = self.request.query_params.get("status")
        now = timezone.now()
        if wanted == ApprovalStatus.PENDING:
            return queryset.filter(status=ApprovalStatus.PENDING, expires_at__gt=now,
                                   run__status="pending_approval")
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


# OpenID AuthZEN 1.0: the dispatch decision for a policy enforcement point ---------------------
#
# `POST /authzen/<org>/access/v1/evaluation` (and `.../evaluations`, the boxcarred form), answered
# for a downstream service authenticated as its connection with its introspection credentials over
# HTTP Basic, as the signals endpoint authenticates it (trust.views). Plain Django views, like the
# OAuth endpoints: the wire format is the specification's, and the caller is not an org member.
#
# The decision is dispatch's (trust.dispatch.dispatch_evaluate) for the operation the resource
# names and the asking connection's audience only; `true` only for "allow" (an escalation is a
# "no" here: a person's approval is asked through `POST runs`). A service speaks only of agents
# that call it: an agent of another org, an unknown client id and one that does not hold the
# connection's audience get the same answer, so the answer says nothing of what exists elsewhere.
# Nothing the request says beyond the subject's id and the operation is read (a score or a
# decision in `context` or `properties` counts for nothing). Every evaluation is on record
# (trust.allow / trust.escalate / trust.deny, path "authzen"); nothing else is written, no run
# starts. Errors are 400/401 JSON in RFC 6749's shape (the connection authenticates as a client),
# never cached; the audit middleware echoes a well-formed X-Request-ID on every answer.

import json  # noqa: E402 (this section is appended)
from dataclasses import dataclass as _dataclass  # noqa: E402

from django.conf import settings as _settings  # noqa: E402
from django.core.exceptions import RequestDataTooBig  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.views.decorators.cache import cache_control  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402

from agents.issuance import OAuthError  # noqa: E402
from agents.models import Connection  # noqa: E402
from agents.oauth import NO_STORE, request_origin  # noqa: E402
from agents.tokens import public_origin  # noqa: E402
from audit.actors import Actor  # noqa: E402
from audit.events import AuditEvent, Outcome  # noqa: E402
from audit.services import Target, audit_record  # noqa: E402
from core.models import Organization  # noqa: E402
from core.ratelimit import counters_incr  # noqa: E402
from trust.dispatch import Decision, dispatch_evaluate  # noqa: E402
from trust.views import _basic_credentials, _connection, _error  # noqa: E402

AUTHZEN_MAX_TEXT = 200  # a subject id, an action name, an operation: longer is not one of ours
AUTHZEN_MAX_DEPTH = 16  # how deeply a body may nest (a deeper one is a parser attack, not a request)
AUTHZEN_MAX_EVALUATIONS = 50  # per boxcarred request
DEFAULT_AUTHZEN_PER_MINUTE = 1200  # evaluations per connection; IAM_AUTHZEN_PER_MINUTE overrides it
AUTHZEN_SEMANTICS = ("execute_all", "deny_on_first_deny", "permit_on_first_permit")

_NOT_CALLING = "No agent with that client id calls this service."
_OUTCOME_EVENTS = {"allow": AuditEvent.TRUST_ALLOWED, "escalate": AuditEvent.TRUST_ESCALATED,
                   "block": AuditEvent.TRUST_DENIED}
_USER_REASONS = {
    "escalate": "This task needs a person's approval before the agent may take it.",
    "block": "The agent may not take this task now.",
}


def _walk(value) -> None:
    """Refuse NUL characters (no text column holds one) and deep nesting, without recursing."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > AUTHZEN_MAX_DEPTH:
            raise OAuthError("invalid_request", "The body is nested too deeply.")
        if isinstance(item, str):
            if "\x00" in item:
                raise OAuthError("invalid_request", "Values may not contain NUL characters.")
        elif isinstance(item, dict):
            stack.extend((k, depth + 1) for k in item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def _authzen_json(request) -> dict:
    if request.content_type != "application/json":
        raise OAuthError("invalid_request", "Send a JSON object (Content-Type: application/json).")
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise OAuthError("invalid_request", "The body is not JSON.")
    if not isinstance(body, dict):
        raise OAuthError("invalid_request", "Send a JSON object.")
    _walk(body)
    return body


def _entity(body: dict, name: str, keys: tuple) -> dict:
    """One of the request's entities: an object whose `keys` are non-empty strings (400 if not, as
    the specification has it for a missing required attribute)."""
    entity = body.get(name)
    if not isinstance(entity, dict):
        raise OAuthError("invalid_request", f"{name} is required and must be an object.")
    for key in keys:
        value = entity.get(key)
        if not isinstance(value, str) or not 0 < len(value) <= AUTHZEN_MAX_TEXT:
            raise OAuthError("invalid_request", f"{name}.{key} must be a string of 1 to "
                                                f"{AUTHZEN_MAX_TEXT} characters.")
    for key in ("properties",):
        if key in entity and not isinstance(entity[key], dict):
            raise OAuthError("invalid_request", f"{name}.{key} must be an object.")
    return entity


@_dataclass(frozen=True)
class AuthzenRequest:
    subject: dict
    action: dict
    resource: dict


def _authzen_request(body: dict) -> AuthzenRequest:
    if "context" in body and not isinstance(body["context"], dict):
        raise OAuthError("invalid_request", "context must be an object.")
    return AuthzenRequest(_entity(body, "subject", ("type", "id")), _entity(body, "action", ("name",)),
                          _entity(body, "resource", ("type", "id")))


def _authzen_batch(body: dict) -> tuple[list[AuthzenRequest], str]:
    """The evaluations of a boxcarred request, each with the top-level entities as its defaults;
    without an `evaluations` array (or with an empty one) it is a single evaluation."""
    evaluations = body.get("evaluations")
    options = body.get("options", {})
    if not isinstance(options, dict):
        raise OAuthError("invalid_request", "options must be an object.")
    semantic = options.get("evaluations_semantic", "execute_all")
    if semantic not in AUTHZEN_SEMANTICS:
        raise OAuthError("invalid_request", "options.evaluations_semantic must be one of: "
                                            + ", ".join(AUTHZEN_SEMANTICS) + ".")
    if evaluations is None or evaluations == []:
        return [_authzen_request(body)], semantic
    if not isinstance(evaluations, list) or not all(isinstance(e, dict) for e in evaluations):
        raise OAuthError("invalid_request", "evaluations must be an array of objects.")
    if len(evaluations) > AUTHZEN_MAX_EVALUATIONS:
        raise OAuthError("invalid_request", f"At most {AUTHZEN_MAX_EVALUATIONS} evaluations per request.")
    defaults = {k: body[k] for k in ("subject", "action", "resource", "context") if k in body}
    return [_authzen_request({**defaults, **item}) for item in evaluations], semantic


def _authzen_throttle(connection: Connection, count: int) -> None:
    """Each evaluation counts, a boxcarred one as many as it holds (one round trip: the key once
    per evaluation, the last count is the total)."""
    limit = getattr(_settings, "IAM_AUTHZEN_PER_MINUTE", DEFAULT_AUTHZEN_PER_MINUTE)
    try:
        used = max(counters_incr([f"authzen:{connection.pk}"] * count, 60))
    except Exception:
        raise OAuthError("temporarily_unavailable", "Try again shortly.", 503)
    if used > limit:
        raise OAuthError("slow_down", "Too many evaluations; try again in a minute.", 429)


def _not_evaluated(reason_id: str, admin: str, user: str = _NOT_CALLING) -> dict:
    return {"decision": False, "context": {
        "id": reason_id, "reason_admin": {"en": admin}, "reason_user": {"en": user},
        "outcome": "block", "reasons": [admin]}}


def _decided(decision: Decision) -> dict:
    context = {"id": decision.decision, "outcome": decision.decision, "trust": decision.trust,
               "reasons": decision.reasons[:20]}
    if decision.decision != "allow":
        context["reason_admin"] = {"en": "; ".join(decision.reasons[:5]) or decision.decision}
        context["reason_user"] = {"en": _USER_REASONS[decision.decision]}
    return {"decision": decision.decision == "allow", "context": context}


def _record(connection: Connection, *, event: AuditEvent, target, data: dict) -> None:
    actor = Actor.for_connection(connection)
    outcome = Outcome.SUCCESS if event is AuditEvent.TRUST_ALLOWED else Outcome.DENIED
    audit_record(org=connection.org, actor=actor, event=event, outcome=outcome, target=target,
                 data={**data, "path": "authzen", "audiences": [connection.audience],
                       "dispatched_by": {"type": actor.type, "id": actor.id}})


def _authzen_evaluate(connection: Connection, ask: AuthzenRequest) -> dict:
    """One evaluation's answer (a Decision object of the specification), on record."""
    operation = ask.resource["id"] if ask.resource["type"] == "operation" else None
    refusal = None
    if ask.subject["type"] != "agent":
        refusal = ("unsupported_subject", "Only subjects of type agent are evaluated here.")
    elif ask.action["name"] != "dispatch":
        refusal = ("unsupported_action", "Only the action dispatch is evaluated here.")
    elif ask.resource["type"] != "operation":
        refusal = ("unsupported_resource", "Only resources of type operation are evaluated here.")
    agent = None
    if refusal is None:
        agent = Agent.objects.for_org(connection.org_id).select_related("org").filter(
            client_id=ask.subject["id"]).first()
        if agent is None or connection.audience not in (agent.audiences or ()):
            agent, refusal = None, ("unknown_subject", _NOT_CALLING)
    if refusal is not None:
        _record(connection, event=AuditEvent.TRUST_DENIED, target=Target.of(connection),
                data={"decision": "block", "operation": operation, "reasons": [refusal[0]]})
        return _not_evaluated(*refusal)
    decision = dispatch_evaluate(agent, operation=operation, audiences=[connection.audience])
    _record(connection, event=_OUTCOME_EVENTS[decision.decision], target=Target.of(agent),
            data=decision.audit_data(agent=str(agent.pk), operation=operation))
    return _decided(decision)


def _authzen_answer(request, org: str, batch: bool) -> JsonResponse:
    try:
        if "\x00" in org or b"\x00" in request.body:
            raise OAuthError("invalid_request", "The request may not contain NUL characters.")
        client_id, secret = _basic_credentials(request)
        connection = _connection(org, client_id, secret)
        _authzen_throttle(connection, 1)  # before the body is read: malformed requests count too
        body = _authzen_json(request)
        asks, semantic = _authzen_batch(body) if batch else ([_authzen_request(body)], "execute_all")
        if len(asks) > 1:
            _authzen_throttle(connection, len(asks) - 1)
    except RequestDataTooBig:
        return _error(OAuthError("invalid_request", "The request body is too large."))
    except OAuthError as exc:
        return _error(exc)
    if not batch:
        return JsonResponse(_authzen_evaluate(connection, asks[0]), headers=NO_STORE)
    answers = []
    for ask in asks:
        answers.append(_authzen_evaluate(connection, ask))
        decided = answers[-1]["decision"]
        if (semantic == "deny_on_first_deny" and not decided) or (
                semantic == "permit_on_first_permit" and decided):
            break
    return JsonResponse({"evaluations": answers}, headers=NO_STORE)


def _post_only(request):
    if request.method == "POST":
        return None
    response = JsonResponse({"error": "invalid_request", "error_description": "Use POST."}, status=405,
                            headers=NO_STORE)
    response["Allow"] = "POST"
    return response


@csrf_exempt
def authzen_evaluation(request, org):
    """AuthZEN Access Evaluation: may this agent be dispatched for this operation now?"""
    return _post_only(request) or _authzen_answer(request, org, batch=False)


@csrf_exempt
def authzen_evaluations(request, org):
    """AuthZEN Access Evaluations: several evaluations in one request (at most 50)."""
    return _post_only(request) or _authzen_answer(request, org, batch=True)


@cache_control(max_age=300, public=True)
def authzen_metadata(request, org):
    """The PDP's metadata (AuthZEN §9) at `/.well-known/authzen-configuration/authzen/<org>`."""
    if request.method not in ("GET", "HEAD"):
        response = JsonResponse({"error": "invalid_request", "error_description": "Use GET."}, status=405)
        response["Allow"] = "GET, HEAD"
        return response
    if "\x00" in org or not Organization.objects.filter(slug=org).exists():
        return JsonResponse({"error": "not_found", "error_description": "No such policy decision point."},
                            status=404)
    pdp = f"{public_origin(request_origin(request))}/authzen/{org}"
    return JsonResponse({
        "policy_decision_point": pdp,
        "access_evaluation_endpoint": f"{pdp}/access/v1/evaluation",
        "access_evaluations_endpoint": f"{pdp}/access/v1/evaluations",
    })
