from django.db import models
from django.utils import timezone

from audit.events import Outcome
from core.tenancy import OrgScopedQuerySet, org_scoped_manager

GENESIS_HASH = "0" * 64
PLATFORM_CHAIN = "platform"  # events that belong to no org (e.g. a login for an unknown email)


def chain_key(org) -> str:
    return str(org.pk) if org is not None else PLATFORM_CHAIN


class AuditChain(models.Model):
    """The head of one hash chain (one per org, plus the platform chain). Appends lock this row."""

    chain = models.CharField(max_length=36, primary_key=True)
    last_seq = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default=GENESIS_HASH)


class AuditVerifiedMark(models.Model):
    """How far a chain last verified, and where the next re-check of older entries starts
    (audit/verification.py). Not part of the log: rewritten by each verification, and MAC'd under an
    audit key so that nobody without it can move the mark past entries they changed."""

    chain = models.CharField(max_length=36, primary_key=True)
    seq = models.BigIntegerField()
    hash = models.CharField(max_length=64)
    recheck_seq = models.BigIntegerField(default=1)
    verified_at = models.DateTimeField()
    kid = models.CharField(max_length=32)
    mac = models.CharField(max_length=64)


class AppendOnlyError(Exception):
    pass


class AuditEntryQuerySet(OrgScopedQuerySet):
    """The log is append-only: bulk update and delete are refused before any SQL is sent.

    On PostgreSQL a trigger refuses UPDATE and DELETE too, so raw SQL cannot do it either.
    """

    def update(self, **kwargs):
        raise AppendOnlyError("audit entries are immutable")

    def delete(self):
        raise AppendOnlyError("audit entries are immutable")


class AuditEntry(models.Model):
    id = models.BigAutoField(primary_key=True)
    # No index of its own: the composite indexes below all lead with it, and every index costs the
    # append (the product's hottest write) an insert.
    org = models.ForeignKey(
        "core.Organization", null=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    chain = models.CharField(max_length=36)  # str(org_id), or PLATFORM_CHAIN
    seq = models.BigIntegerField()
    ts = models.DateTimeField(default=timezone.now)
    actor_type = models.CharField(max_length=16)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_display = models.CharField(max_length=254, blank=True)
    event_code = models.PositiveIntegerField()
    event_name = models.CharField(max_length=64)
    outcome = models.CharField(max_length=16, choices=Outcome.CHOICES)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    correlation_id = models.CharField(max_length=128, blank=True)
    target_type = models.CharField(max_length=32, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    data = models.JSONField(default=dict)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)  # SHA-256 of the canonical entry, as the contract says
    # `mac` is an HMAC-SHA256 of `hash` under the IAM_AUDIT_KEYS key `hash_kid` names (audit.chain);
    # both are "" for entries from before the chain was keyed, accepted only as a prefix that a keyed
    # entry seals.
    hash_kid = models.CharField(max_length=32, blank=True, default="")
    mac = models.CharField(max_length=64, blank=True, default="")

    objects = org_scoped_manager(queryset=AuditEntryQuerySet)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["chain", "seq"], name="audit_chain_seq_unique"),
            # Two entries claiming the same predecessor would be a fork.
            models.UniqueConstraint(fields=["chain", "prev_hash"], name="audit_chain_no_fork"),
        ]
        indexes = [
            models.Index(fields=["org", "event_code", "seq"]),
            models.Index(fields=["org", "actor_type", "actor_id", "seq"]),
            models.Index(fields=["org", "ts"]),
        ]

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("audit entries are immutable")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("audit entries are immutable")
