"""Admin API: SCIM tokens (the secret only in the creating response) and group mappings.

Thin views over scim.tokens and scim.provisioning: validate, call one service, serialize.
"""

from django.conf import settings
from django.db.models import Count
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from core.errors import NotFound
from core.permissions import Perm
from core.roles import TeamRole
from rbac.models import Role, Team
from scim import mappings
from scim.models import MAPPABLE_BUILTIN_ROLES, GroupMapping, MappingKind, ScimGroup, ScimToken
from scim.selectors import TOKEN_STATES, token_state_filter, token_status, with_last_failure
from scim.tokens import scim_token_create, scim_token_revoke
from web.api import OrgScopedViewSet


def scim_base_url() -> str:
    """What an owner pastes into the IdP (Okta, Entra ID) as the SCIM connector's base URL."""
    return f"{settings.IAM_CANONICAL_ORIGIN.rstrip('/')}/scim/v2/"


# --- SCIM tokens ------------------------------------------------------------------------------


class ScimTokenSerializer(serializers.ModelSerializer):
    created_by = serializers.EmailField(source="created_by.email", read_only=True, default=None)
    display = serializers.CharField(read_only=True)
    status = serializers.SerializerMethodField()
    last_failure_at = serializers.DateTimeField(
        read_only=True, default=None,
        help_text="When the SCIM endpoint last refused this token (a wrong secret, an ended token, a "
                  "write it refused); null if never.")

    class Meta:
        model = ScimToken
        # Never the secret or its hash: only the lookup id, which identifies and proves nothing.
        fields = ["id", "name", "display", "created_at", "created_by", "last_used_at", "last_failure_at",
                  "expires_at", "revoked_at", "status"]
        read_only_fields = fields

    def get_status(self, token) -> str:
        return token_status(token)


class ScimTokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, help_text="Which IdP uses it, e.g. Okta production.")


class ScimTokenCreatedSerializer(ScimTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="The bearer token. Shown only in this response.")
    scim_base_url = serializers.CharField(read_only=True)

    class Meta(ScimTokenSerializer.Meta):
        fields = ScimTokenSerializer.Meta.fields + ["token", "scim_base_url"]


class ScimTokenRevokeSerializer(serializers.Serializer):
    grace_seconds = serializers.IntegerField(
        required=False, default=0, min_value=0,
        help_text="0 ends the token now; otherwise it keeps working this long (at most 604800).")


class _TokenFilters(serializers.Serializer):
    state = serializers.ChoiceField(choices=list(TOKEN_STATES), required=False)


_TOKEN_FILTERS = [
    OpenApiParameter("state", str, enum=list(TOKEN_STATES),
                     description="; ".join(f"{k}: {v}" for k, v in TOKEN_STATES.items())),
]


class ScimTokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    model = ScimToken
    list_ordering = "-created_at"
    search_fields = ("name",)
    serializer_class = ScimTokenSerializer
    required = {
        "list": Perm.SCIM_READ,
        "retrieve": Perm.SCIM_READ,
        "create": Perm.SCIM_WRITE,
        "revoke": Perm.SCIM_WRITE,
    }
    # A SCIM token can create and remove members, so minting or ending one is gated like API keys.

    def scope(self, queryset):
        queryset = queryset.select_related("created_by").order_by("-created_at")
        if self.action != "list":
            return queryset
        state = self.validated(_TokenFilters, self.request.query_params).get("state")
        return queryset.filter(token_state_filter(self.org, state)) if state else queryset

    @extend_schema(parameters=_TOKEN_FILTERS)
    def list(self, request, *args, **kwargs):
        """The org's SCIM tokens, newest first; `?q=` searches their names, `?state=` filters."""
        page = with_last_failure(self.org, self.paginate_queryset(self.get_queryset()))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def retrieve(self, request, *args, **kwargs):
        (token,) = with_last_failure(self.org, [self.get_object()])
        return Response(self.get_serializer(token).data)

    @extend_schema(request=ScimTokenCreateSerializer, responses={201: ScimTokenCreatedSerializer})
    def create(self, request, org):
        data = self.validated(ScimTokenCreateSerializer, request.data)
        token, secret = scim_token_create(access=self.access, name=data["name"])
        body = {**ScimTokenSerializer(token).data, "token": secret, "scim_base_url": scim_base_url()}
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})

    @extend_schema(request=ScimTokenRevokeSerializer, responses={200: ScimTokenSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request, org, pk):
        """End the token now, or after `grace_seconds` while the IdP moves to a new token."""
        data = self.validated(ScimTokenRevokeSerializer, request.data)
        token = scim_token_revoke(access=self.access, token=self.get_object(),
                                  grace_seconds=data["grace_seconds"])
        (token,) = with_last_failure(self.org, [self.get_queryset().get(pk=token.pk)])
        return Response(ScimTokenSerializer(token).data)


# --- Group mappings ---------------------------------------------------------------------------


class RefSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()


class GroupRefSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    display_name = serializers.CharField()


class GroupMappingSerializer(serializers.ModelSerializer):
    group = GroupRefSerializer(read_only=True)
    role = RefSerializer(read_only=True, allow_null=True)
    team = RefSerializer(read_only=True, allow_null=True)
    created_by = serializers.EmailField(source="created_by.email", read_only=True, default=None)

    class Meta:
        model = GroupMapping
        fields = ["id", "group", "kind", "builtin_role", "role", "team", "team_role", "created_by",
                  "created_at"]
        read_only_fields = fields


class GroupMappingCreateSerializer(serializers.Serializer):
    group = serializers.UUIDField(help_text="A SCIM group id of this org.")
    kind = serializers.ChoiceField(choices=MappingKind.choices)
    # Owner is not among the choices: a directory group never makes anyone an owner.
    builtin_role = serializers.ChoiceField(choices=[r.value for r in MAPPABLE_BUILTIN_ROLES], required=False,
                                           help_text="For kind builtin_role.")
    role = serializers.UUIDField(required=False, help_text="A custom role id, for kind custom_role.")
    team = serializers.UUIDField(required=False, help_text="A team id, for kind team.")
    team_role = serializers.ChoiceField(choices=TeamRole.choices, required=False, help_text="For kind team.")

    # The fields each kind needs; fields another kind uses are ignored.
    NEEDS = {MappingKind.BUILTIN_ROLE: ("builtin_role",), MappingKind.CUSTOM_ROLE: ("role",),
             MappingKind.TEAM: ("team", "team_role")}

    def validate(self, attrs):
        missing = [f for f in self.NEEDS[attrs["kind"]] if not attrs.get(f)]
        if missing:
            raise serializers.ValidationError({f: [f"Required for kind {attrs['kind']}."] for f in missing})
        return attrs


def _one_of_org(model, org, pk, what: str):
    """An id named in a body; another org's is a 404, like one in the path."""
    found = model.objects.for_org(org).filter(pk=pk).first()
    if found is None:
        raise NotFound(f"{what} not found.")
    return found


class ScimGroupSerializer(serializers.ModelSerializer):
    members = serializers.IntegerField(source="member_count", read_only=True,
                                       help_text="How many of the org's SCIM users the IdP put in it.")

    class Meta:
        model = ScimGroup
        fields = ["id", "display_name", "external_id", "members", "created_at", "updated_at"]
        read_only_fields = fields


class ScimGroupViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    """The groups the org's IdP pushed over SCIM, read-only here (the IdP owns them): what a group
    mapping can name, searched by display name or external id (the mapping form's picker)."""

    model = ScimGroup
    list_ordering = "display_name"
    search_fields = ("display_name", "external_id")
    serializer_class = ScimGroupSerializer
    required = {"list": Perm.SCIM_READ, "retrieve": Perm.SCIM_READ}

    def scope(self, queryset):
        return queryset.annotate(member_count=Count("members")).order_by("display_name")


class GroupMappingViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    model = GroupMapping
    list_ordering = "created_at"
    search_fields = ("group__display_name",)
    serializer_class = GroupMappingSerializer
    required = {
        "list": Perm.SCIM_READ,
        "retrieve": Perm.SCIM_READ,
        "create": Perm.SCIM_WRITE,
        "destroy": Perm.SCIM_WRITE,
    }
    # A mapping grants (or, deleted, takes back) roles for every member of a group: a role change.

    def scope(self, queryset):
        return queryset.select_related("group", "role", "team", "created_by").order_by("created_at")

    @extend_schema(request=GroupMappingCreateSerializer, responses={201: GroupMappingSerializer})
    def create(self, request, org):
        data = self.validated(GroupMappingCreateSerializer, request.data)
        kind = data["kind"]
        group = _one_of_org(ScimGroup, self.org, data["group"], "SCIM group")
        targets = {}
        if kind == MappingKind.BUILTIN_ROLE:
            targets["builtin_role"] = data["builtin_role"]
        elif kind == MappingKind.CUSTOM_ROLE:
            targets["role"] = _one_of_org(Role, self.org, data["role"], "Role")
        else:
            targets["team"] = _one_of_org(Team, self.org, data["team"], "Team")
            targets["team_role"] = data["team_role"]
        mapping = mappings.mapping_create(access=self.access, group=group, kind=kind, **targets)
        out = GroupMappingSerializer(self.get_queryset().get(pk=mapping.pk)).data
        return Response(out, status=status.HTTP_201_CREATED)

    @extend_schema(description="Delete the mapping; the grants it made are taken back.")
    def destroy(self, request, org, pk):
        mappings.mapping_delete(access=self.access, mapping=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
