"""Admin API: agents (with their secrets), connections, runs and people's delegations to agents.
Thin views over agents.policies."""

from django.db.models import Q
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.models import Membership
from agents import policies
from agents.delegation import live_delegations
from agents.forms import OVERLAP_LIMIT_SECONDS, AgentPolicyForm
from agents.models import Agent, AgentPolicy, Connection, Delegation, DelegationStatus, Run
from agents.policy import AGENT_POLICY_FIELDS, agent_policy_for_org
from core.errors import NotFound
from core.permissions import Perm
from web.api import OrgScopedViewSet
from web.policy import PolicySection


class SecretSummarySerializer(serializers.Serializer):
    id = serializers.UUIDField()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)
    issued_to = serializers.UUIDField(source="created_by_id", allow_null=True,
                                      help_text="The person (user id) this secret was handed to.")


class AgentSerializer(serializers.ModelSerializer):
    owners = serializers.SerializerMethodField()
    may_delegate_to = serializers.SerializerMethodField(
        help_text="Client ids of the agents it may name in `may_act` (who may exchange its tokens).")
    secrets = SecretSummarySerializer(many=True, read_only=True)
    created_by = serializers.UUIDField(source="created_by_id", allow_null=True, read_only=True,
                                       help_text="The person (user id) who registered the agent.")

    class Meta:
        model = Agent
        fields = ["id", "name", "client_id", "status", "scopes", "audiences", "owners", "may_delegate_to",
                  "secrets", "created_by", "created_at", "revoked_at", "approved_versions", "networks"]
        read_only_fields = fields

    def get_owners(self, agent) -> list[dict]:
        return [{"member": str(m.pk), "email": m.user.email} for m in agent.owners.all()]

    def get_may_delegate_to(self, agent) -> list[str]:
        return sorted(target.client_id for target in agent.may_delegate_to.all())


class AgentWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(child=serializers.CharField(max_length=200), allow_empty=True)
    audiences = serializers.ListField(child=serializers.URLField(max_length=500), min_length=1)
    owner = serializers.UUIDField(required=False, help_text="A member id; defaults to the caller.")


class AgentGrantSerializer(serializers.Serializer):
    scopes = serializers.ListField(child=serializers.CharField(max_length=200), required=False)
    audiences = serializers.ListField(child=serializers.URLField(max_length=500), required=False)
    owners = serializers.ListField(child=serializers.UUIDField(), required=False, min_length=1)
    may_delegate_to = serializers.ListField(
        child=serializers.CharField(max_length=40), required=False, max_length=200,
        help_text="Client ids of this org's agents it may name in `may_act`; [] allows none.")
    approved_versions = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=100,
        help_text="Versions (`agent_version` at the token endpoint) its owners approved; [] approves any.")
    networks = serializers.ListField(
        child=serializers.CharField(max_length=50), required=False, max_length=50,
        help_text="CIDRs its tokens are expected from (host bits are dropped: 10.0.0.5/24 is 10.0.0.0/24).")


class RotateSerializer(serializers.Serializer):
    overlap_seconds = serializers.IntegerField(
        required=False, min_value=0, max_value=OVERLAP_LIMIT_SECONDS,
        error_messages={"max_value": "Between 0 and {max_value} seconds."})


class RotatedSerializer(serializers.Serializer):
    client_secret = serializers.CharField(help_text="Shown only in this response.")
    previous_secret_expires_at = serializers.DateTimeField(allow_null=True)


class EndedSerializer(serializers.Serializer):
    ended = serializers.IntegerField(help_text="How many previous secrets stopped working.")


def _members(org, ids) -> list[Membership]:
    """Members named in a body; one from another org is a 404, like one in the path."""
    wanted = set(ids)
    found = list(Membership.objects.for_org(org).filter(Q(pk__in=wanted)).select_related("user"))
    if len(found) != len(wanted):
        raise NotFound("Member not found.")
    return found


def _agents(org, client_ids) -> list[Agent]:
    """Agents named in a body by client id; one of another org is a 404, like an unknown one."""
    wanted = set(client_ids)
    found = list(Agent.objects.for_org(org).filter(client_id__in=wanted))
    if len(found) != len(wanted):
        raise NotFound("Agent not found.")
    return found


class AgentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    model = Agent
    list_ordering = "name"
    search_fields = ("name", "client_id")
    serializer_class = AgentSerializer
    required = {
        "list": Perm.AGENT_READ,
        "retrieve": Perm.AGENT_READ,
        "create": Perm.AGENT_WRITE,
        "partial_update": Perm.AGENT_WRITE,
        "suspend": Perm.AGENT_WRITE,
        "resume": Perm.AGENT_WRITE,
        "revoke": Perm.AGENT_WRITE,
        "rotate_secret": Perm.AGENT_CREDENTIALS,
        "end_previous_secret": Perm.AGENT_CREDENTIALS,
    }

    def scope(self, queryset):
        return queryset.prefetch_related("owners__user", "secrets", "may_delegate_to").order_by("name")

    @extend_schema(request=AgentWriteSerializer, responses={201: AgentSerializer})
    def create(self, request, org):
        data = self.validated(AgentWriteSerializer, request.data)
        owner = _members(self.org, [data["owner"]])[0] if data.get("owner") else None
        agent, secret = policies.agent_create(access=self.access, name=data["name"], scopes=data["scopes"],
                                              audiences=data["audiences"], owner=owner)
        body = {**self._out(agent.pk), "client_secret": secret}
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})

    @extend_schema(request=AgentGrantSerializer, responses={200: AgentSerializer})
    def partial_update(self, request, org, pk):
        """Change the grant, the owners, the agents it may delegate to, or several at once (all of it
        applies, or none)."""
        data = self.validated(AgentGrantSerializer, request.data)
        owners = _members(self.org, data["owners"]) if "owners" in data else None
        targets = _agents(self.org, data["may_delegate_to"]) if "may_delegate_to" in data else None
        policies.agent_update(access=self.access, agent=self.get_object(), scopes=data.get("scopes"),
                              audiences=data.get("audiences"), owners=owners, targets=targets,
                              approved_versions=data.get("approved_versions"), networks=data.get("networks"))
        return Response(self._out(pk))

    @extend_schema(request=RotateSerializer, responses={200: RotatedSerializer})
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, org, pk):
        """A new client secret (only in this response); the previous one works until the time given."""
        data = self.validated(RotateSerializer, request.data)
        secret, previous_end = policies.agent_secret_rotate(
            access=self.access, agent=self.get_object(), overlap_seconds=data.get("overlap_seconds"))
        return Response({"client_secret": secret, "previous_secret_expires_at": previous_end},
                        headers={"Cache-Control": "no-store"})

    @extend_schema(request=None, responses={200: EndedSerializer})
    @action(detail=True, methods=["post"], url_path="end-previous-secret")
    def end_previous_secret(self, request, org, pk):
        ended = policies.agent_secret_end_previous(access=self.access, agent=self.get_object())
        return Response({"ended": ended})

    @extend_schema(request=None, responses={200: AgentSerializer})
    @action(detail=True, methods=["post"])
    def suspend(self, request, org, pk):
        policies.agent_set_status(access=self.access, agent=self.get_object(), status="suspended")
        return Response(self._out(pk))

    @extend_schema(request=None, responses={200: AgentSerializer})
    @action(detail=True, methods=["post"])
    def resume(self, request, org, pk):
        policies.agent_set_status(access=self.access, agent=self.get_object(), status="active")
        return Response(self._out(pk))

    @extend_schema(request=None, responses={200: AgentSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request, org, pk):
        """Revoke the agent and everything issued under it (secrets, tokens, runs)."""
        policies.agent_revoke(access=self.access, agent=self.get_object())
        return Response(self._out(pk))

    def _out(self, pk) -> dict:
        return AgentSerializer(self.get_queryset().get(pk=pk)).data


class ConnectionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Connection
        fields = ["id", "name", "audience", "scopes", "client_id", "min_trust", "created_at"]
        read_only_fields = fields


# RFC 6749 §3.3 scope-token characters.
SCOPE_PATTERN = r"^[\x21\x23-\x5B\x5D-\x7E]{1,200}$"


class ConnectionWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    audience = serializers.URLField(max_length=500)
    scopes = serializers.ListField(child=serializers.RegexField(SCOPE_PATTERN), min_length=1)


class ConnectionUpdateSerializer(serializers.Serializer):
    """The audience is the connection's identity and cannot change; register another connection."""

    name = serializers.CharField(max_length=100, required=False)
    scopes = serializers.ListField(child=serializers.RegexField(SCOPE_PATTERN), min_length=1, required=False)
    min_trust = serializers.IntegerField(min_value=0, max_value=100, required=False,
                                         help_text="The trust score an agent needs for this service "
                                                   "(dispatch and token issuance); needs trust:write.")

    def validate(self, attrs):
        if "audience" in self.initial_data:  # refused rather than ignored: the caller expects a change
            raise serializers.ValidationError(
                {"audience": ["The audience cannot change; register another connection for it."]})
        return attrs


class ConnectionSecretSerializer(serializers.Serializer):
    client_id = serializers.CharField()
    client_secret = serializers.CharField(help_text="Shown only in this response.")


class ConnectionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    model = Connection
    list_ordering = "name"
    search_fields = ("name", "audience")
    serializer_class = ConnectionSerializer
    required = {"list": Perm.CONNECTION_READ, "retrieve": Perm.CONNECTION_READ,
                "create": Perm.CONNECTION_WRITE, "partial_update": Perm.CONNECTION_WRITE,
                "destroy": Perm.CONNECTION_WRITE, "rotate_secret": Perm.CONNECTION_WRITE}

    def scope(self, queryset):
        return queryset.order_by("name")

    @extend_schema(request=ConnectionWriteSerializer, responses={201: ConnectionSerializer})
    def create(self, request, org):
        data = self.validated(ConnectionWriteSerializer, request.data)
        connection, secret = policies.connection_create(access=self.access, **data)
        body = {**ConnectionSerializer(connection).data, "client_secret": secret}
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})

    @extend_schema(request=ConnectionUpdateSerializer, responses={200: ConnectionSerializer})
    def partial_update(self, request, org, pk):
        """Rename, or change the scopes it accepts (409 `scope_in_use` while an agent's grant needs one
        that would go)."""
        data = self.validated(ConnectionUpdateSerializer, request.data)
        connection = policies.connection_update(access=self.access, connection=self.get_object(),
                                                name=data.get("name"), scopes=data.get("scopes"),
                                                min_trust=data.get("min_trust"))
        return Response(ConnectionSerializer(connection).data)

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request, org, pk):
        """Remove it (409 `connection_in_use` while an agent's grant names its audience)."""
        policies.connection_delete(access=self.access, connection=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: ConnectionSecretSerializer})
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, org, pk):
        """A new introspection secret (only in this response); the previous one stops at once."""
        connection, secret = policies.connection_secret_rotate(access=self.access,
                                                               connection=self.get_object())
        return Response({"client_id": connection.client_id, "client_secret": secret},
                        headers={"Cache-Control": "no-store"})


class RunSerializer(serializers.ModelSerializer):
    started_by = serializers.SerializerMethodField()
    status = serializers.SerializerMethodField(help_text="pending_approval, running, stopping, completed "
                                                         "or terminated (by its timestamps).")
    trust = serializers.SerializerMethodField(help_text="The score and level the dispatch was decided at.")
    approval = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = ["id", "agent", "description", "operation", "audiences", "status", "decision", "trust",
                  "approval", "started_by", "cancel_requested", "stop_by", "started_at", "ended_at"]
        read_only_fields = fields

    def get_started_by(self, run) -> dict:
        return {"type": run.started_by_type, "id": run.started_by_id, "display": run.started_by_display}

    def get_status(self, run) -> str:
        return run.status_at(timezone.now())

    def get_trust(self, run) -> dict | None:
        return None if run.trust_score is None else {"score": run.trust_score, "level": run.trust_level}

    def get_approval(self, run) -> str | None:
        approval = getattr(run, "approval", None) if run.decision == "escalate" else None
        return str(approval.pk) if approval else None


class RunWriteSerializer(serializers.Serializer):
    agent = serializers.UUIDField()
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    operation = serializers.CharField(max_length=100, required=False, allow_blank=True,
                                      help_text="The class of operation, for the org's trust gates.")
    audiences = serializers.ListField(child=serializers.CharField(max_length=500), required=False,
                                      min_length=1, help_text="The services the run needs (default: all "
                                                              "of the agent's).")


class RunStopSerializer(serializers.Serializer):
    grace_seconds = serializers.IntegerField(min_value=0, max_value=600, required=False,
                                             help_text="How long its tokens live (default 60).")


class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    model = Run
    list_ordering = "-started_at"
    search_fields = ("description", "agent__name", "operation")
    serializer_class = RunSerializer
    required = {"list": Perm.RUN_READ, "retrieve": Perm.RUN_READ, "create": Perm.RUN_WRITE,
                "terminate": Perm.RUN_WRITE, "stop": Perm.RUN_WRITE, "complete": Perm.RUN_WRITE}

    def scope(self, queryset):
        return queryset.select_related("approval").order_by("-started_at")

    @extend_schema(request=RunWriteSerializer, responses={201: RunSerializer, 202: RunSerializer})
    def create(self, request, org):
        """Dispatch a run through the trust gates: 201 running (`decision: allow`), 202 waiting for a
        person's approval (`decision: escalate`, `approval`), or 403 `dispatch_blocked` with the
        reasons. Each carries the `trust` score and level as evaluated."""
        from trust.policies import run_dispatch
        from trust.runs import DispatchBlocked

        data = self.validated(RunWriteSerializer, request.data)
        agent = Agent.objects.for_org(self.org).filter(pk=data["agent"]).first()
        if agent is None:
            raise NotFound("Agent not found.")
        try:
            dispatched = run_dispatch(access=self.access, agent=agent,
                                      description=data.get("description", ""),
                                      operation=data.get("operation") or None,
                                      audiences=data.get("audiences"),
                                      claims=request.auth if isinstance(request.auth, dict) else None)
        except DispatchBlocked as blocked:
            decision = blocked.decision
            return Response({"error": "dispatch_blocked",
                             "detail": "The agent may not be given this task now: " + "; ".join(
                                 decision.reasons[:3]),
                             "reasons": decision.reasons, "decision": "block", "trust": decision.trust},
                            status=status.HTTP_403_FORBIDDEN)
        body = {**RunSerializer(dispatched.run).data, "decision": dispatched.decision.decision,
                "trust": dispatched.decision.trust}
        if dispatched.approval is not None:
            body["approval"] = str(dispatched.approval.pk)
            body["reasons"] = dispatched.decision.reasons
            return Response(body, status=status.HTTP_202_ACCEPTED)
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: RunSerializer})
    @action(detail=True, methods=["post"])
    def terminate(self, request, org, pk):
        """End the run: tokens bound to it stop working on their next use."""
        run = policies.run_terminate(access=self.access, run=self.get_object())
        return Response(RunSerializer(run).data)

    @extend_schema(request=None, responses={200: RunSerializer})
    @action(detail=True, methods=["post"])
    def complete(self, request, org, pk):
        """The work is done: the run reads completed and its tokens stop working."""
        run = policies.run_complete(access=self.access, run=self.get_object())
        return Response(RunSerializer(run).data)

    @extend_schema(request=RunStopSerializer, responses={200: RunSerializer})
    @action(detail=True, methods=["post"])
    def stop(self, request, org, pk):
        """Stop gracefully: the agent reads `stopping` and `stop_by`; no new token is issued for the
        run, and those it holds live until `stop_by`."""
        data = self.validated(RunStopSerializer, request.data or {})
        run = policies.run_stop(access=self.access, run=self.get_object(),
                                grace_seconds=data.get("grace_seconds"))
        return Response(RunSerializer(run).data)


class DelegationSerializer(serializers.ModelSerializer):
    agent = serializers.UUIDField(source="agent_id")
    agent_client_id = serializers.CharField(source="agent.client_id")
    agent_name = serializers.CharField(source="agent.name")
    person = serializers.UUIDField(source="user_id", allow_null=True,
                                   help_text="The person (user id) the agent acts for.")
    status = serializers.SerializerMethodField(help_text='"active", "revoked" or "expired".')

    class Meta:
        model = Delegation
        fields = ["id", "agent", "agent_client_id", "agent_name", "person", "person_email", "audience",
                  "scopes", "status", "created_at", "expires_at", "revoked_at", "revoked_reason"]
        read_only_fields = fields

    def get_status(self, delegation) -> str:
        # It ends by its timestamp; no job marks it expired, so the answer says so itself.
        if delegation.status == DelegationStatus.ACTIVE and delegation.expires_at <= timezone.now():
            return "expired"
        return delegation.status


class _DelegationFilters(serializers.Serializer):
    agent = serializers.UUIDField(required=False)
    status = serializers.ChoiceField(choices=["live"], required=False)


_DELEGATION_FILTERS = [
    OpenApiParameter("agent", OpenApiTypes.UUID, description="an agent id: only that agent's delegations"),
    OpenApiParameter("status", str, enum=["live"], description="live: active and not yet expired"),
]


class DelegationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    """People's approvals that an agent acts for them. Every member may ask to revoke one; the
    policy wrapper decides (the person who granted it, an owner of its agent, or an admin)."""

    model = Delegation
    list_ordering = "-created_at"
    search_fields = ("person_email", "agent__name", "agent__client_id", "audience")
    serializer_class = DelegationSerializer
    required = {"list": Perm.AGENT_READ, "retrieve": Perm.AGENT_READ, "revoke": Perm.ORG_READ}

    def scope(self, queryset):
        queryset = queryset.select_related("agent").order_by("-created_at")
        if self.action != "list":
            return queryset
        filters = self.validated(_DelegationFilters, self.request.query_params)
        if "agent" in filters:
            queryset = queryset.filter(agent_id=filters["agent"])
        if filters.get("status") == "live":
            queryset = live_delegations(queryset)
        return queryset

    @extend_schema(parameters=_DELEGATION_FILTERS)
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(request=None, responses={200: DelegationSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request, org, pk):
        """End the delegation: every token issued under it stops working on its next use, and its
        refresh tokens end. Revoking one that has already ended changes nothing."""
        policies.delegation_revoke(access=self.access, delegation=self.get_object())
        return Response(DelegationSerializer(self.get_queryset().get(pk=pk)).data)


class AgentPolicySerializer(serializers.ModelSerializer):
    class Meta:
        model = AgentPolicy
        fields = [*AGENT_POLICY_FIELDS, "updated_at"]
        read_only_fields = ["updated_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance is not None:  # another org's member id reads exactly like a missing one
            members = Membership.objects.for_org(self.instance.org_id)
            self.fields["deprovision_fallback_owner"].queryset = members


# Agent token and rotation limits, what happens to agents whose owner leaves, and how far people's
# delegations to agents reach.
POLICY_SECTION = PolicySection(
    read=agent_policy_for_org, serializer=AgentPolicySerializer, form=AgentPolicyForm,
    update=policies.agent_policy_update,
    groups=(
        ("Agents", ("agent_token_ttl_seconds", "secret_overlap_max_seconds", "secret_max_age_days",
                    "token_alg")),
        ("Deprovisioning", ("deprovision_agents", "deprovision_fallback_owner")),
        ("Delegation", ("max_delegation_depth", "delegation_max_lifetime_seconds",
                        "delegation_refresh_tokens", "delegations_end_with_session")),
    ),
)
