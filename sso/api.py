"""Admin API for SSO: the org's email domains and their DNS verification."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from core.permissions import Perm
from sso import policies
from sso.models import Domain
from web.api import OrgScopedViewSet


class DomainSerializer(serializers.ModelSerializer):
    txt_name = serializers.CharField(read_only=True, help_text="Where to publish the TXT record.")
    txt_value = serializers.CharField(read_only=True, help_text="The TXT record's value.")
    verified = serializers.BooleanField(read_only=True)

    class Meta:
        model = Domain
        fields = ["id", "domain", "txt_name", "txt_value", "verified", "verified_at", "created_at"]
        read_only_fields = fields


class DomainWriteSerializer(serializers.Serializer):
    domain = serializers.CharField(max_length=300)


class DomainViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    """Email domains the org claims; each counts once its DNS TXT challenge is verified."""

    model = Domain
    list_ordering = "domain"
    search_fields = ("domain",)
    serializer_class = DomainSerializer
    required = {
        "list": Perm.SSO_READ,
        "retrieve": Perm.SSO_READ,
        "create": Perm.SSO_WRITE,
        "verify": Perm.SSO_WRITE,
        "destroy": Perm.SSO_WRITE,
    }

    def scope(self, queryset):
        return queryset.order_by("domain")

    @extend_schema(request=DomainWriteSerializer, responses={201: DomainSerializer})
    def create(self, request, org):
        """Claim a domain: publish `txt_value` as a TXT record at `txt_name`, then verify."""
        data = self.validated(DomainWriteSerializer, request.data)
        domain = policies.domain_add(access=self.access, domain=data["domain"])
        return Response(DomainSerializer(domain).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: DomainSerializer})
    @action(detail=True, methods=["post"])
    def verify(self, request, org, pk):
        """Look the TXT record up now: 409 `domain_not_verified` while it is missing, 409
        `domain_claimed` when another org verified the domain, 503 `dns_unavailable`."""
        domain = policies.domain_verify(access=self.access, domain=self.get_object())
        return Response(DomainSerializer(domain).data)

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request, org, pk):
        policies.domain_remove(access=self.access, domain=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
