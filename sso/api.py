"""Admin API for SSO: the org's connections, and its email domains with their DNS verification."""

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from core.permissions import Perm
from sso import policies
from sso.connections import certificates_expiring
from sso.models import Connection, Domain, Protocol
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


def _absolute(name: str, connection) -> str:
    path = reverse(name, kwargs={"org": connection.org.slug, "connection": connection.slug})
    return settings.IAM_CANONICAL_ORIGIN.rstrip("/") + path


class SsoConnectionSerializer(serializers.ModelSerializer):
    """A connection as the API shows it: never a secret (the client secret or the SP's key)."""

    client_secret_set = serializers.SerializerMethodField()
    login_url = serializers.SerializerMethodField()
    accepted_amr = serializers.SerializerMethodField(help_text="OIDC: the accepted_mfa values.")
    accepted_authn_contexts = serializers.SerializerMethodField(help_text="SAML: the accepted_mfa values.")
    redirect_uri = serializers.SerializerMethodField()
    backchannel_logout_uri = serializers.SerializerMethodField()
    sp_entity_id = serializers.SerializerMethodField()
    sp_acs_url = serializers.SerializerMethodField()
    sp_metadata_url = serializers.SerializerMethodField()
    idp_certificates = serializers.SerializerMethodField()

    class Meta:
        model = Connection
        fields = [
            "id",
            "name",
            "slug",
            "protocol",
            "enabled",
            "default_role",
            "jit",
            "accepted_mfa",
            "accepted_amr",
            "accepted_authn_contexts",
            "groups_attribute",
            "group_mappings",
            "notes",
            "login_url",
            "issuer",
            "client_id",
            "client_secret_set",
            "scopes",
            "id_token_hs256",
            "redirect_uri",
            "backchannel_logout_uri",
            "idp_entity_id",
            "idp_sso_url",
            "idp_metadata_url",
            "idp_certificates",
            "allow_idp_initiated",
            "sp_entity_id",
            "sp_acs_url",
            "sp_metadata_url",
            "metadata_fetched_at",
            "metadata_error",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def _oidc(self, c) -> bool:
        return c.protocol == Protocol.OIDC

    def get_client_secret_set(self, c) -> bool:
        return bool(c.client_secret_sealed)

    def get_login_url(self, c) -> str:
        return _absolute("sso:oidc-login" if self._oidc(c) else "sso:saml-login", c)

    def get_accepted_amr(self, c) -> list | None:
        return list(c.accepted_mfa) if self._oidc(c) else None

    def get_accepted_authn_contexts(self, c) -> list | None:
        return None if self._oidc(c) else list(c.accepted_mfa)

    def get_redirect_uri(self, c) -> str | None:
        return _absolute("sso:oidc-callback", c) if self._oidc(c) else None

    def get_backchannel_logout_uri(self, c) -> str | None:
        return _absolute("sso:oidc-backchannel-logout", c) if self._oidc(c) else None

    def get_sp_entity_id(self, c) -> str | None:
        return None if self._oidc(c) else _absolute("sso:saml-metadata", c)

    def get_sp_acs_url(self, c) -> str | None:
        return None if self._oidc(c) else _absolute("sso:saml-acs", c)

    def get_sp_metadata_url(self, c) -> str | None:
        return None if self._oidc(c) else _absolute("sso:saml-metadata", c)

    def get_idp_certificates(self, c) -> list | None:
        if self._oidc(c):
            return None
        expiring = {i["fingerprint_sha256"] for i in certificates_expiring(c)}
        return [
            {
                **{k: v for k, v in info.items() if k != "warned_on"},
                "expiring": info["fingerprint_sha256"] in expiring,
            }
            for info in c.idp_certificates_info or []
        ]


class _Strings(serializers.ListField):
    child = serializers.CharField(max_length=200)

    def __init__(self, **kwargs):
        super().__init__(required=False, max_length=50, **kwargs)


class SsoConnectionWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    slug = serializers.SlugField(max_length=50)
    protocol = serializers.ChoiceField(choices=Protocol.choices)
    default_role = serializers.CharField(max_length=20, required=False)
    jit = serializers.BooleanField(required=False)
    enabled = serializers.BooleanField(required=False)
    accepted_amr = _Strings(help_text="OIDC: amr (or acr) values that prove a second factor.")
    accepted_authn_contexts = _Strings(help_text="SAML: AuthnContextClassRefs that prove a second factor.")
    groups_attribute = serializers.CharField(max_length=200, required=False, allow_blank=True)
    group_mappings = serializers.JSONField(required=False)
    notes = serializers.CharField(max_length=5000, required=False, allow_blank=True)
    issuer = serializers.CharField(max_length=500, required=False)
    client_id = serializers.CharField(max_length=255, required=False)
    client_secret = serializers.CharField(
        max_length=2000, required=False, write_only=True, trim_whitespace=False
    )
    scopes = serializers.CharField(max_length=500, required=False)
    id_token_hs256 = serializers.BooleanField(required=False)
    idp_metadata_xml = serializers.CharField(max_length=1_000_000, required=False, trim_whitespace=False)
    idp_metadata_url = serializers.URLField(max_length=1000, required=False)
    allow_idp_initiated = serializers.BooleanField(required=False)


class SsoConnectionUpdateSerializer(SsoConnectionWriteSerializer):
    name = serializers.CharField(max_length=100, required=False)
    slug = None
    protocol = None


def _service_fields(data: dict, protocol: str) -> dict:
    fields = dict(data)
    for alias in ("accepted_amr", "accepted_authn_contexts"):
        if alias in fields:
            fields["accepted_mfa"] = fields.pop(alias)
    return fields


class SsoConnectionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    """The org's SSO connections (OIDC or SAML). Creating one imports the IdP's discovery document
    or metadata; secrets are write-only and stored sealed."""

    model = Connection
    list_ordering = "name"
    search_fields = ("name", "slug")
    serializer_class = SsoConnectionSerializer
    required = {
        "list": Perm.SSO_READ,
        "retrieve": Perm.SSO_READ,
        "create": Perm.SSO_WRITE,
        "partial_update": Perm.SSO_WRITE,
        "destroy": Perm.SSO_WRITE,
        "refresh_metadata": Perm.SSO_WRITE,
    }

    def scope(self, queryset):
        return queryset.select_related("org").order_by("name")

    @extend_schema(request=SsoConnectionWriteSerializer, responses={201: SsoConnectionSerializer})
    def create(self, request, org):
        """OIDC: `issuer` (discovered from `{issuer}/.well-known/openid-configuration`), `client_id`,
        `client_secret`, optional `scopes`, `accepted_amr`. SAML: `idp_metadata_xml` or
        `idp_metadata_url`, optional `accepted_authn_contexts`, `allow_idp_initiated`."""
        data = self.validated(SsoConnectionWriteSerializer, request.data)
        connection = policies.connection_create(access=self.access, **_service_fields(data, data["protocol"]))
        return Response(SsoConnectionSerializer(connection).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=SsoConnectionUpdateSerializer, responses={200: SsoConnectionSerializer})
    def partial_update(self, request, org, pk):
        """Any updatable field; `client_secret` replaces the secret, `issuer` is discovered again,
        new `idp_metadata_xml`/`idp_metadata_url` replaces the IdP's certificates."""
        connection = self.get_object()
        data = self.validated(SsoConnectionUpdateSerializer, request.data)
        connection = policies.connection_update(
            access=self.access, connection=connection, **_service_fields(data, connection.protocol)
        )
        return Response(SsoConnectionSerializer(connection).data)

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request, org, pk):
        policies.connection_delete(access=self.access, connection=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: SsoConnectionSerializer})
    @action(detail=True, methods=["post"], url_path="refresh-metadata")
    def refresh_metadata(self, request, org, pk):
        """Fetch the IdP's discovery document and keys, or its metadata URL, again now."""
        connection = self.get_object()
        policies.connection_refresh(access=self.access, connection=connection)
        return Response(SsoConnectionSerializer(self.get_queryset().get(pk=pk)).data)
