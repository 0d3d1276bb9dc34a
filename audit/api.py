"""Admin API: the audit log (read-only), chain verification, signed checkpoints and the access-review
export."""

from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers
from rest_framework.response import Response

from audit.chain import format_ts
from audit.checkpoints import checkpoint_issue_recorded
from audit.keys import public_jwks
from audit.models import AuditEntry
from audit.selectors import audit_filter
from audit.services import access_review_export, audit_verify_recorded
from core.permissions import Perm
from web.api import OrgScopedAPIView, OrgScopedViewSet
from web.pagination import AdminCursorPagination


class AuditEntrySerializer(serializers.ModelSerializer):
    ts = serializers.SerializerMethodField()
    org = serializers.SerializerMethodField()
    actor = serializers.SerializerMethodField()
    event = serializers.SerializerMethodField()
    target = serializers.SerializerMethodField()

    class Meta:
        model = AuditEntry
        fields = ["id", "seq", "ts", "org", "actor", "event", "outcome", "ip", "user_agent",
                  "correlation_id", "target", "data", "prev_hash", "hash"]
        read_only_fields = fields

    def get_ts(self, entry) -> str:
        return format_ts(entry.ts)

    def get_org(self, entry) -> str | None:
        return str(entry.org_id) if entry.org_id else None

    def get_actor(self, entry) -> dict:
        return {"type": entry.actor_type, "id": entry.actor_id, "display": entry.actor_display}

    def get_event(self, entry) -> dict:
        return {"code": entry.event_code, "name": entry.event_name}

    def get_target(self, entry) -> dict:
        return {"type": entry.target_type, "id": entry.target_id}


class AuditCursor(AdminCursorPagination):
    ordering = "-seq"
    page_size = 50
    max_page_size = 500
    page_size_query_param = "page_size"


_FILTERS = [
    OpenApiParameter("actor", str, description='"type:id" or an id'),
    OpenApiParameter("event", str, description="an event code (e.g. 201) or name (org.created)"),
    OpenApiParameter("since", OpenApiTypes.DATETIME, description="inclusive, ISO 8601"),
    OpenApiParameter("until", OpenApiTypes.DATETIME, description="exclusive, ISO 8601"),
]


class _AuditFilters(serializers.Serializer):
    actor = serializers.CharField(required=False, max_length=100)
    event = serializers.CharField(required=False, max_length=64)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


class AuditEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    """Read-only by construction: no write actions exist, and the model refuses updates."""

    model = AuditEntry
    serializer_class = AuditEntrySerializer
    pagination_class = AuditCursor
    lookup_value_regex = "[0-9]+"
    required = {"list": Perm.AUDIT_READ, "retrieve": Perm.AUDIT_READ}

    def scope(self, queryset):
        filters = _AuditFilters(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return audit_filter(queryset.order_by("-seq"), **filters.validated_data)

    @extend_schema(parameters=_FILTERS)
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)


class AuditVerifyView(OrgScopedAPIView):
    required = {"get": Perm.AUDIT_READ}

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request, org):
        """Walk this org's hash chain and name the first entry that breaks it, if any."""
        verdict = audit_verify_recorded(org=self.org, actor=self.access.actor)
        return Response(verdict.as_dict())


class AuditCheckpointView(OrgScopedAPIView):
    required = {"get": Perm.AUDIT_READ}

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request, org):
        """A signed checkpoint of this org's chain head (409 `audit_chain_broken` when the chain does not
        verify). Keep it: `audit_verify --checkpoint` later proves the chain still holds that entry."""
        return Response(checkpoint_issue_recorded(org=self.org, actor=self.access.actor))


class AuditCheckpointKeysView(OrgScopedAPIView):
    required = {"get": Perm.AUDIT_READ}

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request, org):
        """The Ed25519 public keys (JWK Set) that verify checkpoints offline, the current one first."""
        return Response(public_jwks())


class _ExportOptions(serializers.Serializer):
    bom = serializers.BooleanField(required=False, default=False)


class AccessReviewExportView(OrgScopedAPIView):
    reauth_reads = frozenset({"get"})  # the whole org's data, handed out
    required = {"get": Perm.ACCESS_REVIEW_EXPORT}
    sources = ()  # the kinds of principal (audit.exports.ReviewSource), handed in by iam_project

    @extend_schema(
        parameters=[OpenApiParameter("bom", bool, description="begin with a UTF-8 byte order mark (Excel)")],
        responses={(200, "text/csv"): OpenApiTypes.STR},
    )
    def get(self, request, org):
        """Every principal (people, agents, API keys, SCIM tokens) with its roles, teams and effective
        permissions, as RFC 4180 CSV in UTF-8."""
        options = _ExportOptions(data=request.query_params)
        options.is_valid(raise_exception=True)
        rows = access_review_export(org=self.org, actor=self.access.actor, sources=self.sources,
                                    bom=options.validated_data["bom"])
        filename = f"access-review-{self.org.slug}-{timezone.now():%Y%m%dT%H%M%SZ}.csv"
        response = StreamingHttpResponse(rows, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        response["Cache-Control"] = "no-store"
        return response
