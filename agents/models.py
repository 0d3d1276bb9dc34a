"""Agents (non-human principals), their client secrets, the downstream services they call
(connections), the task runs they perform, and each org's token-signing keys."""

import secrets
import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from core.credentials import Credential
from core.tenancy import OrgScopedModel, org_scoped_manager


def new_client_id(prefix: str) -> str:
    # Server-minted and typed by its prefix, so a client id can never be mistaken for a user id.
    return f"{prefix}_{secrets.token_hex(12)}"


class AgentStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    REVOKED = "revoked", "Revoked"


class Agent(OrgScopedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    client_id = models.CharField(max_length=40, unique=True)
    status = models.CharField(max_length=10, choices=AgentStatus.choices, default=AgentStatus.ACTIVE)
    # The grant: what this agent may ask for. Checked against its owners at grant time and again at
    # every token issuance.
    scopes = models.JSONField(default=list)
    audiences = models.JSONField(default=list)
    owners = models.ManyToManyField("accounts.Membership", related_name="owned_agents")
    # The agents of this org it may name in `may_act` (RFC 8693 §4.4), set by its owners: only they
    # may later exchange a token it hands them.
    may_delegate_to = models.ManyToManyField("self", symmetrical=False, blank=True,
                                             related_name="may_receive_from")
    # The person who registered it. Who last received a secret is each secret's `created_by`.
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Compliance and identity inputs of its trust score (trust.scoring): the versions its owners
    # approved, the networks (CIDRs) its tokens are expected from, and the version it last reported
    # at the token endpoint (`agent_version`).
    approved_versions = models.JSONField(default=list, blank=True)
    networks = models.JSONField(default=list, blank=True)
    reported_version = models.CharField(max_length=64, blank=True)
    # Set when its trust score fell below the org's floor and it was suspended for it (trust.
    # containment): an owner can resume it only once the score has recovered.
    contained_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "name"], name="agent_unique_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def subject(self) -> str:
        return f"agent:{self.pk}"


class AgentSecret(Credential):
    """A client secret. At most two are live: the current one and, during a rotation window, the
    previous one, whose `expires_at` ends it at authentication time whether or not a worker runs."""

    PREFIX = "ags"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="secrets")
    window_closed_audited = models.BooleanField(default=False)

    objects = org_scoped_manager("agent__org")

    class Meta:
        indexes = [models.Index(fields=["agent", "-created_at"])]


class Connection(OrgScopedModel, Credential):
    """A downstream service (resource server): its audience, the scopes it accepts, and its own
    credentials for the introspection endpoint, presented with its public `client_id`."""

    PREFIX = "cns"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    audience = models.URLField(max_length=500)
    scopes = models.JSONField(default=list)
    client_id = models.CharField(max_length=40, unique=True)
    # Connections registered before the credential kernel do not know their secret's lookup id.
    lookup_id = models.CharField(max_length=32, unique=True, null=True, blank=True)
    # The lowest trust score (trust.scoring) an agent may hold to be given a task or a token for it.
    min_trust = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(100)])

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["org", "audience"], name="connection_unique_audience"),
            models.UniqueConstraint(fields=["org", "name"], name="connection_unique_name"),
        ]

    def __str__(self) -> str:
        return self.audience


class RunStatus(models.TextChoices):
    PENDING_APPROVAL = "pending_approval", "Waiting for approval"
    RUNNING = "running", "Running"
    STOPPING = "stopping", "Stopping"
    COMPLETED = "completed", "Completed"
    TERMINATED = "terminated", "Terminated"


RUN_LIVE = (RunStatus.PENDING_APPROVAL, RunStatus.RUNNING, RunStatus.STOPPING)


class Run(OrgScopedModel):
    """One task an agent performs. Tokens bound to it (`run` claim) die when it ends."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="runs")
    description = models.CharField(max_length=500, blank=True)
    started_by_type = models.CharField(max_length=16)  # human | api_key | agent | workflow
    started_by_id = models.CharField(max_length=64, blank=True)
    started_by_display = models.CharField(max_length=254, blank=True)
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.RUNNING)
    cancel_requested = models.BooleanField(default=False)
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    # What the dispatch decided (trust.dispatch): the operation and services the run needs, the
    # decision and the score it was taken at.
    operation = models.CharField(max_length=100, blank=True)
    audiences = models.JSONField(default=list, blank=True)
    decision = models.CharField(max_length=10, blank=True)
    trust_score = models.PositiveSmallIntegerField(null=True, blank=True)
    trust_level = models.CharField(max_length=12, blank=True)
    # A graceful stop: the agent is told to stop, and its tokens live until this deadline.
    stop_by = models.DateTimeField(null=True, blank=True)
    # An escalated run waits for approval until then (its approval's expiry), and ends after.
    pending_until = models.DateTimeField(null=True, blank=True)

    def status_at(self, now) -> str:
        """The status by the timestamps, whether or not a worker has run: a stop whose deadline has
        passed, or an approval nobody gave in time, has ended the run."""
        if self.status == RunStatus.STOPPING and self.stop_by and self.stop_by <= now:
            return RunStatus.TERMINATED
        if self.status == RunStatus.PENDING_APPROVAL and self.pending_until and self.pending_until <= now:
            return RunStatus.TERMINATED
        return self.status

    class Meta:
        indexes = [models.Index(fields=["org", "-started_at"])]


class SigningKey(OrgScopedModel):
    """One of an org's token-signing keys. Published from `created_at`, signs from `activates_at`
    (after resource servers have had time to fetch the new JWKS), stops signing at `retired_at`, and
    is unpublished at `unpublish_at` (when every token it signed has expired)."""

    kid = models.CharField(max_length=64, primary_key=True)
    alg = models.CharField(max_length=10)
    private_key = models.TextField()  # PEM, sealed with AES-256-GCM (core.secrets.seal)
    public_jwk = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)
    activates_at = models.DateTimeField(default=timezone.now)
    retired_at = models.DateTimeField(null=True, blank=True)
    unpublish_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["org", "activates_at"])]


class RevokedToken(models.Model):
    """A revoked token id, kept in the database as well as the fast store, so the store can be
    rebuilt after losing its data (see agents.revocation)."""

    jti = models.CharField(max_length=64, primary_key=True)
    org = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField(db_index=True)

    objects = org_scoped_manager()


class AgentPolicy(models.Model):
    """An org's settings for agents: enforced at every token issuance and rotation, and when an
    owner leaves. Read with `agents.policy.agent_policy_for_org` (defaults until first changed)."""

    org = models.OneToOneField("core.Organization", primary_key=True, on_delete=models.CASCADE,
                               related_name="agent_policy")
    # Capability-token lifetime cap, longest secret-rotation overlap, signing algorithm.
    agent_token_ttl_seconds = models.PositiveIntegerField(
        default=300, validators=[MinValueValidator(30), MaxValueValidator(3600)])
    secret_overlap_max_seconds = models.PositiveIntegerField(
        default=24 * 3600, validators=[MinValueValidator(0), MaxValueValidator(7 * 24 * 3600)])
    # The longest a client secret works (0: no limit). A secret made while it is set expires then, by
    # its `expires_at` (checked at authentication); older secrets are flagged on the org's overview.
    secret_max_age_days = models.PositiveIntegerField(
        default=0, validators=[MinValueValidator(0), MaxValueValidator(3650)])
    token_alg = models.CharField(max_length=10, default="ES256",
                                 choices=[("ES256", "ES256"), ("EdDSA", "EdDSA"), ("RS256", "RS256")])
    # What happens to agents whose only acting owner leaves. "reassign" hands them to the fallback
    # owner (when that member can still act); otherwise they are suspended and their credentials end.
    deprovision_agents = models.CharField(
        max_length=10, default="suspend", choices=[("suspend", "Suspend them and revoke their credentials"),
                                                   ("reassign", "Hand them to the fallback owner")])
    deprovision_fallback_owner = models.ForeignKey(
        "accounts.Membership", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Delegation: how many hand-offs a chain may have from its root principal (a person's approval
    # is one, each token exchange another), the longest a person may approve an agent for, whether
    # delegated tokens come with a refresh token, and whether a person's delegations end with
    # their last session.
    max_delegation_depth = models.PositiveSmallIntegerField(
        default=3, validators=[MinValueValidator(1), MaxValueValidator(8)])
    delegation_max_lifetime_seconds = models.PositiveIntegerField(
        default=7 * 24 * 3600, validators=[MinValueValidator(300), MaxValueValidator(90 * 24 * 3600)])
    delegation_refresh_tokens = models.BooleanField(default=True)
    delegations_end_with_session = models.BooleanField(default=False)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = org_scoped_manager()


class CutoffKind(models.TextChoices):
    AGENT = "agent", "Agent"
    RUN = "run", "Run"
    CRED = "cred", "Client secret"
    DELEGATION = "dlg", "Delegation"


class RevocationCutoff(models.Model):
    """The latest revocation cutoff of one agent (`agent:<id>`), run or client secret: every token
    issued under it at or before `cutoff_at` is dead. The durable copy of the fast store's cutoff
    keys (agents.revocation), written in the transaction that causes it, so a key the store loses is
    read back from here. Useless, and pruned, once `expires_at` (the cutoff plus the longest token
    life) has passed.

    No org column: the subjects are globally unique ids, verification reads a row by them alone,
    and a deleted org's rows are pruned within the hour like any other."""

    kind = models.CharField(max_length=8, choices=CutoffKind.choices)
    subject = models.CharField(max_length=64)
    cutoff_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "subject"], name="revocation_cutoff_unique")]


class DelegationStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    REVOKED = "revoked", "Revoked"


class Delegation(OrgScopedModel):
    """A person's approval that an agent may act for them: for one audience, within `scopes`, until
    `expires_at` (by timestamp). Every token issued under it carries its id (`dlg`) and dies with
    it; what a token gets is re-read at each issuance: the person's permissions of the moment ∩ the
    agent's grant ∩ the connection's scopes ∩ these scopes."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="delegations")
    # The person, and their membership while it exists (a removed member's record stays, revoked).
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    membership = models.ForeignKey("accounts.Membership", null=True, on_delete=models.SET_NULL,
                                   related_name="delegations")
    person_email = models.EmailField(max_length=254)
    audience = models.URLField(max_length=500)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=DelegationStatus.choices,
                              default=DelegationStatus.ACTIVE)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=32, blank=True)

    class Meta:
        indexes = [models.Index(fields=["org", "-created_at"]), models.Index(fields=["user", "status"])]

    def __str__(self) -> str:
        return f"{self.agent} for {self.person_email}"

    def is_live(self, now=None) -> bool:
        return self.status == DelegationStatus.ACTIVE and self.expires_at > (now or timezone.now())


class DeviceStatus(models.TextChoices):
    PENDING = "pending", "Waiting for the person"
    APPROVED = "approved", "Approved"
    DENIED = "denied", "Denied"
    ISSUED = "issued", "Tokens issued"


class DeviceAuthorization(OrgScopedModel, Credential):
    """One RFC 8628 request: the agent holds the device code (a credential, stored as its keyed
    hash), the person types the short user code (kept as a keyed hash too). Both end by timestamp;
    the code is spent by one conditional UPDATE when the tokens are issued."""

    PREFIX = "dvc"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="device_authorizations")
    user_code_hash = models.CharField(max_length=64, unique=True)
    audience = models.URLField(max_length=500)
    scopes = models.JSONField(default=list)
    status = models.CharField(max_length=10, choices=DeviceStatus.choices, default=DeviceStatus.PENDING)
    interval = models.PositiveSmallIntegerField(default=5)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    requested_ip = models.GenericIPAddressField(null=True, blank=True)
    decided_by = models.ForeignKey("accounts.Membership", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    delegation = models.ForeignKey(Delegation, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    class Meta:
        indexes = [models.Index(fields=["agent", "-created_at"])]


class RefreshToken(OrgScopedModel, Credential):
    """A refresh token bound to one delegation (its family). Spent on use by one conditional UPDATE;
    presenting a spent one again revokes the delegation and with it the whole family (OAuth 2.1
    §4.3.1). `created_by` is the person who approved the delegation."""

    PREFIX = "rft"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    delegation = models.ForeignKey(Delegation, on_delete=models.CASCADE, related_name="refresh_tokens")
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="+")
    spent_at = models.DateTimeField(null=True, blank=True)
