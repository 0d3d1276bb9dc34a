"""Single sign-on: the email domains an org has proved it owns (SSO connections follow)."""

import secrets
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from core.secrets import seal, unseal
from core.tenancy import OrgScopedModel

CHALLENGE_LABEL = "_agent-iam-challenge"
CHALLENGE_PREFIX = "agent-iam-verification="


def new_challenge() -> str:
    return secrets.token_urlsafe(24)


class Domain(OrgScopedModel):
    """An email domain an org claims. It counts (home-realm discovery, claiming accounts, "SSO
    required") only once verified: a DNS TXT record `txt_name` holding `txt_value` was found. One
    org at most holds a domain verified."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    domain = models.CharField(max_length=253)
    challenge = models.CharField(max_length=64, default=new_challenge)
    verified_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["org", "domain"], name="sso_domain_unique_in_org"),
            models.UniqueConstraint(
                fields=["domain"],
                condition=models.Q(verified_at__isnull=False),
                name="sso_domain_verified_once",
            ),
        ]

    def __str__(self) -> str:
        return self.domain

    @property
    def txt_name(self) -> str:
        return f"{CHALLENGE_LABEL}.{self.domain}"

    @property
    def txt_value(self) -> str:
        return f"{CHALLENGE_PREFIX}{self.challenge}"

    @property
    def verified(self) -> bool:
        return self.verified_at is not None


class Protocol(models.TextChoices):
    OIDC = "oidc", "OpenID Connect"
    SAML = "saml", "SAML 2.0"


class Connection(OrgScopedModel):
    """One of the org's identity providers. Secrets (the OIDC client secret, the SP's private key)
    and the IdP's signing certificates are kept sealed (core.secrets.seal, bound to this row and
    field) and opened in memory only while a flow runs. What the IdP published (OIDC discovery and
    JWKS, SAML metadata) is cached here and refreshed on a schedule."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=50)
    protocol = models.CharField(max_length=8, choices=Protocol.choices)
    enabled = models.BooleanField(default=True)
    default_role = models.CharField(max_length=20, default="member")
    jit = models.BooleanField(default=False)
    # OIDC `amr`/`acr` values, or SAML AuthnContextClassRefs, that prove a second factor.
    accepted_mfa = models.JSONField(default=list, blank=True)
    groups_attribute = models.CharField(max_length=200, default="groups", blank=True)
    # [{"group": "<IdP group>", "role": "<built-in>"} | {"group", "custom_role": id} | {"group", "team": id}]
    group_mappings = models.JSONField(default=list, blank=True)
    notes = models.TextField(blank=True)

    # OIDC
    issuer = models.CharField(max_length=500, blank=True)
    client_id = models.CharField(max_length=255, blank=True)
    client_secret_sealed = models.TextField(blank=True)
    scopes = models.CharField(max_length=500, default="openid email profile", blank=True)
    provider_metadata = models.JSONField(default=dict, blank=True)  # the discovery document
    jwks = models.JSONField(default=dict, blank=True)
    id_token_hs256 = models.BooleanField(default=False)  # also accept HS256 keyed with the client secret

    # SAML
    idp_entity_id = models.CharField(max_length=500, blank=True)
    idp_sso_url = models.CharField(max_length=1000, blank=True)
    idp_metadata_url = models.CharField(max_length=1000, blank=True)
    idp_metadata_sealed = models.TextField(blank=True)
    idp_certificates_sealed = models.TextField(blank=True)  # a JSON list of PEM certificates
    # Public facts about those certificates, for the page and expiry warnings: fingerprint, not_after.
    idp_certificates_info = models.JSONField(default=list, blank=True)
    sp_private_key_sealed = models.TextField(blank=True)
    sp_certificate = models.TextField(blank=True)  # public: it is in the SP metadata
    allow_idp_initiated = models.BooleanField(default=False)

    metadata_fetched_at = models.DateTimeField(null=True, blank=True)
    metadata_error = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["org", "slug"], name="sso_connection_slug_unique_in_org"),
        ]

    def __str__(self) -> str:
        return self.name

    def seal_context(self, field: str) -> str:
        return f"sso.connection:{self.org_id}:{self.pk}:{field}"

    def seal(self, field: str, plaintext: str) -> None:
        """Store `plaintext` sealed in `<field>_sealed` (bound to this row and field)."""
        setattr(self, f"{field}_sealed", seal(plaintext.encode(), context=self.seal_context(field))
                if plaintext else "")

    def unsealed(self, field: str) -> str:
        """The plaintext of `<field>_sealed`, in memory only for the flow that needs it."""
        value = getattr(self, f"{field}_sealed")
        return unseal(value, context=self.seal_context(field)).decode() if value else ""


class Identity(OrgScopedModel):
    """A person's account at one IdP of the org: (org, issuer, subject) is who signed in, never
    the email the IdP asserts. For SAML the issuer is the IdP's entity id, the subject its NameID."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="identities")
    issuer = models.CharField(max_length=500)
    subject = models.CharField(max_length=500)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    email = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_login_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["org", "issuer", "subject"], name="sso_identity_unique"),
        ]


class Flow(OrgScopedModel):
    """One sign-in in progress: the OIDC `state` (its HMAC is the lookup key) with its nonce and
    PKCE verifier, or the SAML AuthnRequest ID with the RelayState it maps to. Bound to the browser
    session that started it; spent by one conditional UPDATE; dead after `expires_at`."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    state_hash = models.CharField(max_length=64, unique=True)
    session_hash = models.CharField(max_length=64)
    nonce = models.CharField(max_length=100, blank=True)
    verifier_sealed = models.TextField(blank=True)
    request_id = models.CharField(max_length=100, blank=True, db_index=True)
    next_url = models.CharField(max_length=1000, blank=True)
    test = models.BooleanField(default=False)  # "test connection": show the claims, sign nobody in
    # Re-authentication of the person already signed in (the IdP is asked to authenticate afresh).
    reauth = models.BooleanField(default=False)
    # SAML: the verified assertion between the ACS (a cross-site POST, no session cookie) and the
    # same-site finish step that checks the session; sealed, single use with the flow.
    result_sealed = models.TextField(blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    consumed_at = models.DateTimeField(null=True, blank=True)


class SeenAssertion(OrgScopedModel):
    """SAML assertion IDs already accepted, kept until their NotOnOrAfter: a replayed assertion
    (even from a fresh browser) finds its ID here. The unique constraint makes the check atomic."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    assertion_id = models.CharField(max_length=200)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "assertion_id"], name="sso_assertion_once"),
        ]


class IdpSession(OrgScopedModel):
    """Which of our sessions an IdP session created (OIDC `sid`, SAML SessionIndex), so that a
    back-channel logout from the IdP ends exactly those."""

    id = models.BigAutoField(primary_key=True)
    identity = models.ForeignKey(Identity, on_delete=models.CASCADE, related_name="sessions")
    idp_session = models.CharField(max_length=255, blank=True, db_index=True)
    session_key_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
