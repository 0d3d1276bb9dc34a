"""The tenant itself. Every org-owned row points here (core.tenancy.OrgScopedModel)."""

import uuid

from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

slug_validator = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$",
    "Use 1-50 lower-case letters, digits and inner hyphens.",
)


class Organization(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    slug = models.CharField(max_length=50, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        # The table was created by `accounts` before the kernel existed; it keeps its name.
        db_table = "accounts_organization"

    def __str__(self) -> str:
        return self.slug
