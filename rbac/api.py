"""Admin API: custom roles, the permission catalogue, teams and team members."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from accounts.models import Membership
from core.permissions import Perm
from core.roles import BUILTIN_ROLES, BuiltinRole, TeamRole
from rbac import policies
from rbac.models import Role, Team, TeamMembership
from rbac.selectors import roles_in_org
from web.api import UUID_PATTERN, OrgScopedAPIView, OrgScopedViewSet


class RoleSerializer(serializers.ModelSerializer):
    class Meta:
        model = Role
        fields = ["id", "name", "description", "permissions", "created_at"]
        read_only_fields = ["id", "created_at"]


class RoleWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    permissions = serializers.ListField(child=serializers.CharField(max_length=64))


class CatalogueEntrySerializer(serializers.Serializer):
    id = serializers.CharField()
    category = serializers.CharField()
    description = serializers.CharField()


class BuiltinRoleSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    permissions = serializers.ListField(child=serializers.CharField())


class RoleViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    model = Role
    list_ordering = "name"
    search_fields = ("name", "description")
    serializer_class = RoleSerializer
    required = {
        "list": Perm.ROLE_READ,
        "retrieve": Perm.ROLE_READ,
        "builtin": Perm.ROLE_READ,
        "create": Perm.ROLE_WRITE,
        "partial_update": Perm.ROLE_WRITE,
        "destroy": Perm.ROLE_WRITE,
    }

    def scope(self, queryset):
        return queryset.order_by("name")

    @extend_schema(request=RoleWriteSerializer, responses={201: RoleSerializer})
    def create(self, request, org):
        role = policies.role_create(access=self.access, **self.validated(RoleWriteSerializer, request.data))
        return Response(RoleSerializer(role).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=RoleWriteSerializer, responses={200: RoleSerializer})
    def partial_update(self, request, org, pk):
        data = self.validated(RoleWriteSerializer, request.data, partial=True)
        role = policies.role_update(access=self.access, role=self.get_object(), **data)
        return Response(RoleSerializer(role).data)

    def destroy(self, request, org, pk):
        policies.role_delete(access=self.access, role=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={200: BuiltinRoleSerializer(many=True)})
    @action(detail=False, methods=["get"])
    def builtin(self, request, org):
        """The built-in roles and the permissions each grants."""
        return Response(
            [{"id": role.value, "name": role.label, "permissions": sorted(BUILTIN_ROLES[role])}
             for role in BuiltinRole]
        )


class PermissionCatalogueView(OrgScopedAPIView):
    required = {"get": Perm.ROLE_READ}

    @extend_schema(responses={200: CatalogueEntrySerializer(many=True)})
    def get(self, request, org):
        """Every permission in the catalogue, with its category and description."""
        return Response(
            [{"id": p.value, "category": p.category, "description": p.description} for p in Perm]
        )


class TeamMemberSerializer(serializers.ModelSerializer):
    member = serializers.UUIDField(source="membership_id")
    email = serializers.EmailField(source="membership.user.email")

    class Meta:
        model = TeamMembership
        fields = ["member", "email", "role", "created_at"]


class TeamSerializer(serializers.ModelSerializer):
    roles = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    members = TeamMemberSerializer(source="memberships", many=True, read_only=True)

    class Meta:
        model = Team
        fields = ["id", "name", "description", "roles", "members", "created_at"]
        read_only_fields = fields


class TeamWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    roles = serializers.ListField(child=serializers.UUIDField(), required=False)


class TeamMemberWriteSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=TeamRole.choices, default=TeamRole.MEMBER)


class TeamMemberAddSerializer(TeamMemberWriteSerializer):
    member = serializers.UUIDField()


class TeamViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    model = Team
    list_ordering = "name"
    search_fields = ("name", "description")
    serializer_class = TeamSerializer
    # Team admins manage their own team without TEAM_WRITE: the services check their standing.
    required = {
        "list": Perm.TEAM_READ,
        "retrieve": Perm.TEAM_READ,
        "create": Perm.TEAM_WRITE,
        "partial_update": Perm.TEAM_READ,
        "destroy": Perm.TEAM_READ,
        "add_member": Perm.TEAM_READ,
        "member": Perm.TEAM_READ,
    }

    def scope(self, queryset):
        return queryset.prefetch_related("roles", "memberships__membership__user").order_by("name")

    @extend_schema(request=TeamWriteSerializer, responses={201: TeamSerializer})
    def create(self, request, org):
        data = self.validated(TeamWriteSerializer, request.data)
        data["roles"] = roles_in_org(self.org, data.get("roles", []))
        team = policies.team_create(access=self.access, **data)
        return Response(self._out(team.pk), status=status.HTTP_201_CREATED)

    @extend_schema(request=TeamWriteSerializer, responses={200: TeamSerializer})
    def partial_update(self, request, org, pk):
        team = self.get_object()
        data = self.validated(TeamWriteSerializer, request.data, partial=True)
        if "roles" in data:
            data["roles"] = roles_in_org(self.org, data["roles"])
        policies.team_update(access=self.access, team=team, **data)
        return Response(self._out(team.pk))

    def destroy(self, request, org, pk):
        policies.team_delete(access=self.access, team=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=TeamMemberAddSerializer, responses={201: TeamSerializer})
    @action(detail=True, methods=["post"], url_path="members")
    def add_member(self, request, org, pk):
        team = self.get_object()
        data = self.validated(TeamMemberAddSerializer, request.data)
        membership = get_object_or_404(Membership.objects.for_org(self.org), pk=data["member"])
        policies.team_member_add(access=self.access, team=team, membership=membership,
                                 role=data["role"])
        return Response(self._out(team.pk), status=status.HTTP_201_CREATED)

    @extend_schema(request=TeamMemberWriteSerializer, responses={200: TeamSerializer})
    @action(detail=True, methods=["patch", "delete"],
            url_path=f"members/(?P<member_id>{UUID_PATTERN})")
    def member(self, request, org, pk, member_id):
        team = self.get_object()
        team_membership = TeamMembership.objects.filter(team=team, membership_id=member_id).first()
        if team_membership is None:
            raise NotFound()
        if request.method == "DELETE":
            policies.team_member_remove(access=self.access, team_membership=team_membership)
            return Response(status=status.HTTP_204_NO_CONTENT)
        data = self.validated(TeamMemberWriteSerializer, request.data)
        policies.team_member_update(access=self.access, team_membership=team_membership,
                                    role=data["role"])
        return Response(self._out(team.pk))

    def _out(self, pk) -> dict:
        return TeamSerializer(self.get_queryset().get(pk=pk)).data
