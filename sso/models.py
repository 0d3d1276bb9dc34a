"""Single sign-on: the email domains an org has proved it owns (SSO connections follow)."""

import secrets
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

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
