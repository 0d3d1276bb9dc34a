"""Admin API: members and org API keys. Thin views: validate, call one service, serialize."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.forms import SecurityPolicyForm
from accounts.models import ApiKey, Membership, MembershipSource, MembershipStatus, SecurityPolicy
from accounts.people_selectors import MFA_FILTERS, member_filter
from accounts.policy import policy_for_org
from accounts.selectors import member_search
from accounts.services import POLICY_FIELDS
from core.permissions import Perm
from core.roles import BuiltinRole
from rbac import policies
from rbac.selectors import roles_in_org
from web.api import OrgScopedViewSet
from web.policy import PolicySection


class RoleRefSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()


class MemberTeamSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="team.id")
    name = serializers.CharField(source="team.name")
    role = serializers.CharField()


class MemberSerializer(serializers.ModelSerializer):
    user_id = serializers.UUIDField(source="user.id", read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)
    name = serializers.CharField(source="user.display_name", read_only=True)
    custom_roles = RoleRefSerializer(many=True, read_only=True)
    teams = MemberTeamSerializer(source="team_memberships", many=True, read_only=True)
    last_login_at = serializers.DateTimeField(source="user.last_login", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "user_id", "email", "name", "role", "status", "source", "custom_roles",
                  "teams", "created_at", "last_login_at"]
        read_only_fields = fields

    def to_representation(self, membership):
        data = super().to_representation(membership)
        if membership.status == MembershipStatus.INVITED:
            # Until the person accepts, the org knows the address it typed and nothing else: not
            # whether an account exists, its name, its id or when it last signed in.
            data.update(user_id=None, name="", last_login_at=None)
        return data


class MemberCreateSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    role = serializers.ChoiceField(choices=BuiltinRole.choices, default=BuiltinRole.MEMBER)
    custom_roles = serializers.ListField(child=serializers.UUIDField(), required=False)


class MemberUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=BuiltinRole.choices, required=False)
    status = serializers.ChoiceField(
        choices=[MembershipStatus.ACTIVE, MembershipStatus.SUSPENDED], required=False
    )
    custom_roles = serializers.ListField(child=serializers.UUIDField(), required=False)


class _MemberFilters(serializers.Serializer):
    role = serializers.ChoiceField(choices=BuiltinRole.choices, required=False)
    status = serializers.ChoiceField(choices=MembershipStatus.choices, required=False)
    source = serializers.ChoiceField(choices=MembershipSource.choices, required=False)
    mfa = serializers.ChoiceField(choices=MFA_FILTERS, required=False)


_MEMBER_FILTERS = [
    OpenApiParameter("role", str, enum=BuiltinRole.values, description="only members with this org role"),
    OpenApiParameter("status", str, enum=MembershipStatus.values, description="only members in this status"),
    OpenApiParameter("source", str, enum=MembershipSource.values, description="how they joined"),
    OpenApiParameter("mfa", str, enum=list(MFA_FILTERS),
                     description="none: no confirmed second factor; enrolled: at least one"),
]


class MemberViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    model = Membership
    list_ordering = "created_at"
    search_fields = ("user__email", "user__display_name")
    serializer_class = MemberSerializer
    required = {
        "list": Perm.MEMBER_READ,
        "retrieve": Perm.MEMBER_READ,
        "create": Perm.MEMBER_WRITE,
        "partial_update": Perm.MEMBER_WRITE,
        "destroy": Perm.MEMBER_WRITE,
        "revoke_sessions": Perm.MEMBER_WRITE,
        "send_password_reset": Perm.MEMBER_WRITE,
        "resend_invitation": Perm.MEMBER_WRITE,
    }

    def search_filter(self, text: str):
        return member_search(text)

    def scope(self, queryset):
        queryset = (
            queryset.select_related("user")
            .prefetch_related("custom_roles", "team_memberships__team")
            .order_by("created_at")
        )
        if self.action != "list":
            return queryset
        return queryset.filter(member_filter(**self.validated(_MemberFilters, self.request.query_params)))

    @extend_schema(parameters=_MEMBER_FILTERS)
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(request=MemberCreateSerializer, responses={201: MemberSerializer})
    def create(self, request, org):
        """Invite a person by address: a pending membership and a mailed link to accept it. The answer
        is the same whether or not the address has an account."""
        data = self.validated(MemberCreateSerializer, request.data)
        roles = roles_in_org(self.org, data.get("custom_roles", []))
        membership = policies.member_add(
            access=self.access, email=data["email"], role=data["role"], custom_roles=roles
        )
        return Response(self._out(membership.pk), status=status.HTTP_201_CREATED)

    @extend_schema(request=MemberUpdateSerializer, responses={200: MemberSerializer})
    def partial_update(self, request, org, pk):
        membership = self.get_object()
        data = self.validated(MemberUpdateSerializer, request.data)
        roles = roles_in_org(self.org, data["custom_roles"]) if "custom_roles" in data else None
        policies.member_update(
            access=self.access, membership=membership, role=data.get("role"),
            status=data.get("status"), custom_roles=roles,
        )
        return Response(self._out(membership.pk))

    def destroy(self, request, org, pk):
        policies.member_remove(access=self.access, membership=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"], url_path="revoke-sessions")
    def revoke_sessions(self, request, org, pk):
        """End every browser session of this member; they must sign in again."""
        count = policies.member_sessions_revoke(access=self.access, membership=self.get_object())
        return Response({"revoked": count})

    @extend_schema(request=None, responses={202: None})
    @action(detail=True, methods=["post"], url_path="send-password-reset")
    def send_password_reset(self, request, org, pk):
        """Mail the member a single-use reset link. Nobody but the member sees it."""
        policies.member_password_reset_send(access=self.access, membership=self.get_object())
        return Response(status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: None})
    @action(detail=True, methods=["post"], url_path="resend-invitation")
    def resend_invitation(self, request, org, pk):
        """Mail a pending invitation again with a new link; the previous link stops working.
        `DELETE` on a pending member cancels the invitation."""
        policies.member_invitation_resend(access=self.access, membership=self.get_object())
        return Response(status=status.HTTP_202_ACCEPTED)

    def _out(self, pk) -> dict:
        return MemberSerializer(self.get_queryset().get(pk=pk)).data


class ApiKeySerializer(serializers.ModelSerializer):
    created_by = serializers.EmailField(source="created_by.email", read_only=True, default=None)
    display = serializers.CharField(read_only=True)

    class Meta:
        model = ApiKey
        fields = ["id", "name", "display", "permissions", "created_by", "created_at",
                  "expires_at", "last_used_at", "revoked_at"]
        read_only_fields = fields


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    permissions = serializers.ListField(child=serializers.CharField(max_length=64), min_length=1)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class ApiKeyCreatedSerializer(ApiKeySerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown only in this response.")

    class Meta(ApiKeySerializer.Meta):
        fields = ApiKeySerializer.Meta.fields + ["secret"]


class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    model = ApiKey
    list_ordering = "-created_at"
    search_fields = ("name",)
    serializer_class = ApiKeySerializer
    required = {
        "list": Perm.API_KEY_READ,
        "retrieve": Perm.API_KEY_READ,
        "create": Perm.API_KEY_WRITE,
        "destroy": Perm.API_KEY_WRITE,
    }

    def scope(self, queryset):
        return queryset.select_related("created_by").order_by("-created_at")

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: ApiKeyCreatedSerializer})
    def create(self, request, org):
        data = self.validated(ApiKeyCreateSerializer, request.data)
        key, secret = policies.api_key_create(access=self.access, **data)
        body = ApiKeySerializer(key).data
        body["secret"] = secret
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})

    @extend_schema(description="Revoke the key. It stops working on the next request.")
    def destroy(self, request, org, pk):
        policies.api_key_revoke(access=self.access, key=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class SecurityPolicySerializer(serializers.ModelSerializer):
    class Meta:
        model = SecurityPolicy
        fields = [*POLICY_FIELDS, "updated_at"]
        read_only_fields = ["updated_at"]


# Sign-in, session, password, MFA and lockout rules, on the security page and in `security-policy`.
POLICY_SECTION = PolicySection(
    read=policy_for_org, serializer=SecurityPolicySerializer, form=SecurityPolicyForm,
    update=policies.policy_update,
    groups=(
        ("Sessions", ("session_absolute_minutes", "session_idle_minutes")),
        ("Passwords", ("password_min_length", "password_require_lower", "password_require_upper",
                       "password_require_digit", "password_require_symbol", "password_history",
                       "password_max_age_days")),
        ("Two-step verification", ("mfa_required",)),
        ("Single sign-on", ("sso_required", "sso_break_glass")),
        ("Lockout", ("lockout_threshold", "lockout_minutes")),
    ),
)
