"""The credential kernel: every non-human secret (org API keys, agent client secrets, connections'
introspection secrets, SCIM tokens) is one of these rows and is checked by the same code.

A credential reads `<prefix>_<lookup id>_<secret>` (core.secrets). The row keeps the lookup id, the
HMAC of the secret and the id of the key that made it; it is live until `revoked_at` or `expires_at`,
both decided by timestamp where it is used, whether or not any background job has run. `last_used_at`
is written at most once per `LAST_USED_RESOLUTION`, so a busy credential does not write on every use.
"""

from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.secrets import MintedCredential, credential_mint, credential_parse, secret_hash, secret_matches

LAST_USED_RESOLUTION = timedelta(minutes=1)


class Credential(models.Model):
    PREFIX: ClassVar[str] = ""

    lookup_id = models.CharField(max_length=32, unique=True)
    secret_hash = models.CharField(max_length=64)
    hash_kid = models.CharField(max_length=32)
    # The human who made it: a credential never outlives or out-ranks the person behind it.
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @classmethod
    def mint(cls) -> tuple[dict, str]:
        """Fields for a new row of this kind, and the secret to show once (it is stored nowhere)."""
        minted: MintedCredential = credential_mint(cls.PREFIX)
        fields = {"lookup_id": minted.lookup_id, "secret_hash": minted.secret_hash,
                  "hash_kid": minted.hash_kid}
        return fields, minted.display

    @property
    def display(self) -> str:
        """How lists show it: the prefix and lookup id, which identify it and prove nothing."""
        return f"{self.PREFIX}_{self.lookup_id}_…"

    def refusal(self, now=None) -> str | None:
        """Why this credential does not work now ("revoked", "expired"), or None when it does."""
        now = now or timezone.now()
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return None

    def is_live(self, now=None) -> bool:
        return self.refusal(now) is None


def credential_live_q(now=None) -> Q:
    """The query form of `Credential.is_live`: not revoked, and no end set or the end still ahead."""
    now = now or timezone.now()
    return Q(revoked_at__isnull=True) & (Q(expires_at__isnull=True) | Q(expires_at__gt=now))


def touch_due(last_used_at, now) -> bool:
    return last_used_at is None or now - last_used_at > LAST_USED_RESOLUTION


class CredentialRefused(Exception):
    """A presented credential does not authenticate. `credential` is the row it named, if any (a
    refusal of a known credential is a security event its owner's org should see)."""

    def __init__(self, reason: str, credential=None):
        super().__init__(reason)
        self.reason, self.credential = reason, credential


@dataclass(frozen=True)
class Presented:
    lookup_id: str
    secret: str


def credential_presented(raw: str, prefix: str) -> Presented | None:
    parsed = credential_parse(raw, prefix)
    return Presented(*parsed) if parsed else None


def credential_check(credential, secret: str, now=None) -> None:
    """The secret against the row's keyed hash (constant time, so timing tells nothing about the
    stored hash), then liveness by timestamp. Raises CredentialRefused."""
    if not secret_matches(secret, credential.secret_hash, credential.hash_kid):
        raise CredentialRefused("bad_secret", credential)
    reason = credential.refusal(now)
    if reason:
        raise CredentialRefused(reason, credential)


def credential_touch(credential, now) -> None:
    """Record the use, at most once per LAST_USED_RESOLUTION (one UPDATE by primary key)."""
    if touch_due(credential.last_used_at, now):
        type(credential)._base_manager.filter(pk=credential.pk).update(last_used_at=now)
        credential.last_used_at = now


def credential_authenticate(raw: str, queryset):
    """The live credential of `queryset`'s model that `raw` is, touched; else CredentialRefused.

    `queryset` is where to look it up (unscoped: a credential names its own org) and what to
    select with it. An unknown or malformed credential costs the same hashing as a known one.
    """
    presented = credential_presented(raw or "", queryset.model.PREFIX)
    credential = queryset.filter(lookup_id=presented.lookup_id).first() if presented else None
    if credential is None:
        secret_hash(raw or "")  # the same work as a real check
        raise CredentialRefused("unknown")
    now = timezone.now()
    credential_check(credential, presented.secret, now)
    credential_touch(credential, now)
    return credential
