"""Trust: what an agent's score is made of (signed attestations from registered roots, signals from
the services that see it act), the org's trust policy, and the score's history."""

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from core.tenancy import OrgScopedModel, org_scoped_manager

DAY = 24 * 3600


class TrustPolicy(models.Model):
    """An org's trust settings: the floor no agent below gets tasks, the components' weights, how
    fast signals fade, the longest a client secret may go unrotated and the attestations every agent
    must hold. Read with `trust.policy.trust_policy_for_org` (defaults until first changed)."""

    org = models.OneToOneField(
        "core.Organization", primary_key=True, on_delete=models.CASCADE, related_name="trust_policy"
    )
    org_floor = models.PositiveSmallIntegerField(default=20, validators=[MaxValueValidator(100)])
    weight_identity = models.PositiveSmallIntegerField(default=25, validators=[MaxValueValidator(100)])
    weight_behaviour = models.PositiveSmallIntegerField(default=35, validators=[MaxValueValidator(100)])
    weight_compliance = models.PositiveSmallIntegerField(default=15, validators=[MaxValueValidator(100)])
    weight_attestations = models.PositiveSmallIntegerField(default=25, validators=[MaxValueValidator(100)])
    signal_half_life_seconds = models.PositiveIntegerField(
        default=7 * DAY, validators=[MinValueValidator(3600), MaxValueValidator(90 * DAY)]
    )
    secret_max_age_days = models.PositiveIntegerField(
        default=90, validators=[MinValueValidator(1), MaxValueValidator(3650)]
    )
    required_attestations = models.JSONField(default=list, blank=True)
    # Escalated runs: who may not approve (the dispatcher never; the agent's owners when this is on)
    # and how long an approval request stays open.
    separation_of_duties = models.BooleanField(default=True)
    approval_ttl_seconds = models.PositiveIntegerField(
        default=DAY, validators=[MinValueValidator(300), MaxValueValidator(30 * DAY)]
    )
    updated_at = models.DateTimeField(default=timezone.now)

    objects = org_scoped_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(weight_identity__gt=0)
                | models.Q(weight_behaviour__gt=0)
                | models.Q(weight_compliance__gt=0)
                | models.Q(weight_attestations__gt=0),
                name="trust_policy_some_weight",
            ),
        ]


class TrustRoot(OrgScopedModel):
    """A party whose signed statements about agents the org accepts (a security review board, a CI
    pipeline, an evaluation vendor): its name and public JWK set. Attestations are verified against
    these keys only, never a key inside the statement."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    jwks = models.JSONField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "name"], name="trust_root_unique_name")]

    def __str__(self) -> str:
        return self.name


class Attestation(OrgScopedModel):
    """A verified statement about one agent: its type, a weight (-50..50) and an expiry, after which
    it stops counting by its timestamp."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey("agents.Agent", on_delete=models.CASCADE, related_name="attestations")
    root = models.ForeignKey(TrustRoot, on_delete=models.CASCADE, related_name="attestations")
    kid = models.CharField(max_length=200)
    type = models.CharField(max_length=100)
    weight = models.SmallIntegerField(validators=[MinValueValidator(-50), MaxValueValidator(50)])
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    jti = models.CharField(max_length=200, blank=True)
    digest = models.CharField(max_length=64)  # SHA-256 of the compact JWS: one statement counts once
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "digest"], name="attestation_unique_statement")]
        indexes = [models.Index(fields=["agent", "expires_at"])]


class SignalType(models.TextChoices):
    GUARDRAIL_VIOLATION = "guardrail_violation", "Guardrail violation"
    OUTPUT_FLAGGED = "output_flagged", "Output flagged"
    POLICY_VIOLATION = "policy_violation", "Policy violation"
    POSITIVE_REVIEW = "positive_review", "Positive review"


class Severity(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class TrustSignal(OrgScopedModel):
    """Something a downstream service saw the agent do, reported as its connection. It fades over
    the org's half-life, so an agent can recover."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey("agents.Agent", on_delete=models.CASCADE, related_name="trust_signals")
    connection = models.ForeignKey(
        "agents.Connection", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    type = models.CharField(max_length=32, choices=SignalType.choices)
    severity = models.CharField(max_length=10, choices=Severity.choices)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["agent", "-at"])]


class ScoreSample(OrgScopedModel):
    """The score as a gate or a reader saw it, for the agent page's chart."""

    agent = models.ForeignKey("agents.Agent", on_delete=models.CASCADE, related_name="score_samples")
    at = models.DateTimeField(default=timezone.now)
    score = models.PositiveSmallIntegerField()
    level = models.CharField(max_length=12)

    class Meta:
        indexes = [models.Index(fields=["agent", "-at"])]


class GateBelow(models.TextChoices):
    BLOCK = "block", "Block"
    ESCALATE = "escalate", "Escalate to a person"


class TrustGate(OrgScopedModel):
    """A policy gate for a class of operations: a run dispatched for `operation` needs the agent to
    score at least `min_score`; below it the run is blocked or waits for a person's approval."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    operation = models.CharField(max_length=100)
    min_score = models.PositiveSmallIntegerField(validators=[MaxValueValidator(100)])
    below = models.CharField(max_length=10, choices=GateBelow.choices, default=GateBelow.BLOCK)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "name"], name="trust_gate_unique_name")]
        indexes = [models.Index(fields=["org", "operation"])]

    def __str__(self) -> str:
        return self.name


class ApprovalStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    DENIED = "denied", "Denied"
    EXPIRED = "expired", "Expired"
    CANCELLED = "cancelled", "Cancelled"  # its run ended first (terminated, stopped, contained)


class Approval(OrgScopedModel):
    """An escalated run waiting for a person: what the gates saw when it was dispatched (score,
    level, reasons), who dispatched it and through which delegation chain, and until when it may be
    approved. Decided once; an open one past `expires_at` counts as expired by its timestamp."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    run = models.OneToOneField("agents.Run", on_delete=models.CASCADE, related_name="approval")
    agent = models.ForeignKey("agents.Agent", on_delete=models.CASCADE, related_name="approvals")
    operation = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=10, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING)
    score = models.PositiveSmallIntegerField()
    level = models.CharField(max_length=12)
    reasons = models.JSONField(default=list)
    gates = models.JSONField(default=list)
    chain = models.JSONField(default=list, blank=True)
    requested_by_type = models.CharField(max_length=16)
    requested_by_id = models.CharField(max_length=64, blank=True)
    requested_by_display = models.CharField(max_length=254, blank=True)
    # The person behind the dispatch (an API key's holder, the signed-in person), for separation
    # of duties: they may not approve their own request.
    requested_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    comment = models.CharField(max_length=500, blank=True)

    class Meta:
        indexes = [models.Index(fields=["org", "status", "-created_at"])]

    def status_at(self, now) -> str:
        if self.status == ApprovalStatus.PENDING and self.expires_at <= now:
            return ApprovalStatus.EXPIRED
        if self.status == ApprovalStatus.PENDING and self.run.status_at(now) != "pending_approval":
            return ApprovalStatus.CANCELLED
        return self.status
