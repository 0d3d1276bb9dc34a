"""SCIM 2.0 provisioning state, per org.

A SCIM User is one person *in one org*: `ScimUser` hangs off the org's `Membership`, so two orgs
provisioning the same person (the same `accounts.User`, found by email) each keep their own
`userName`, `externalId` and attributes, and neither IdP can read or change the other's. Groups
(`ScimGroup`) hold ScimUsers of the same org; `GroupMapping` turns membership of a group into a
built-in role, a custom role or a team standing, and the grants it made are tagged with it so
that they can be taken back exactly.
"""

import uuid

from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.models import Membership
from core.credentials import Credential
from core.errors import PreconditionFailed
from core.roles import BuiltinRole, TeamRole
from core.tenancy import OrgScopedModel, org_scoped_manager
from scim.usernames import user_name_key


class ScimToken(OrgScopedModel, Credential):
    """An IdP's bearer token: `scim_<lookup id>_<secret>`, shown once, stored as a keyed hash.
    Revoking may leave a grace period (rotation): the token works until `expires_at`."""

    PREFIX = "scim"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.name


class Versioned:
    """A resource with a SCIM version (meta.version): every change bumps it, and a write that names a
    version (If-Match) is refused once the row has moved on, so two racing IdP requests cannot both
    win. `accepts` is the caller's reading of If-Match (None: the client named no version)."""

    def version_check(self, accepts) -> None:
        if accepts is not None and not accepts(self.version):
            raise PreconditionFailed("The resource has changed since that version.", code="version_mismatch")

    def touch(self) -> None:
        self.version += 1
        self.updated_at = timezone.now()


class ScimUser(Versioned, OrgScopedModel):
    """The SCIM User resource: core schema and enterprise extension, for one membership."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    membership = models.OneToOneField(Membership, on_delete=models.CASCADE, related_name="scim")
    user_name = models.CharField(max_length=254)
    # scim.usernames.user_name_key(user_name), the org's unique key and what `userName eq` compares.
    # Null only for a row that, when the key was introduced, collided with an older row of its org
    # (scim 0009): it keeps its id and userName, and gets its key when its userName next changes.
    user_name_key = models.CharField(max_length=1024, null=True, editable=False)
    external_id = models.CharField(max_length=254, blank=True)
    active = models.BooleanField(null=True, default=True)  # None: unassigned, which counts as active
    display_name = models.CharField(max_length=254, blank=True)
    nick_name = models.CharField(max_length=254, blank=True)
    profile_url = models.CharField(max_length=500, blank=True)
    title = models.CharField(max_length=254, blank=True)
    # Free text to SCIM (RFC 7643 §4.1.1 only recommends formats), so as long as the other strings.
    user_type = models.CharField(max_length=254, blank=True)
    preferred_language = models.CharField(max_length=254, blank=True)
    locale = models.CharField(max_length=254, blank=True)
    time_zone = models.CharField(max_length=254, blank=True)  # SCIM "timezone"
    # name: formatted, familyName, givenName, middleName, honorificPrefix, honorificSuffix
    name = models.JSONField(default=dict, blank=True)
    # Multi-valued complex attributes, stored as the SCIM lists they are.
    emails = models.JSONField(default=list, blank=True)
    phone_numbers = models.JSONField(default=list, blank=True)
    addresses = models.JSONField(default=list, blank=True)
    # urn:ietf:params:scim:schemas:extension:enterprise:2.0:User
    enterprise = models.JSONField(default=dict, blank=True)
    # Filter indexes of the multi-valued attributes, one "<type>\t<value>" line each, lower-cased
    # (scim.protocol.filters), kept in step by the one function that writes a ScimUser.
    email_index = models.TextField(blank=True, editable=False)
    phone_index = models.TextField(blank=True, editable=False)
    address_index = models.TextField(blank=True, editable=False)  # "<type>\t<part>\t<value>" lines
    # The built-in role a group mapping gave the membership, and the one it had before, restored
    # when no mapped group grants one any more.
    mapped_role = models.CharField(max_length=20, blank=True)
    role_before_mapping = models.CharField(max_length=20, blank=True)
    version = models.PositiveIntegerField(default=1)  # meta.version (W/"<n>")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["org", "user_name_key"], name="scim_user_name_key_unique"),
        ]
        indexes = [
            models.Index(fields=["org", "external_id"]),
            models.Index(fields=["org", "created_at"]),
        ]

    def __str__(self) -> str:
        return self.user_name

    def save(self, *args, **kwargs):
        # A new row always has its key; afterwards scim.users sets it with every userName change.
        if self._state.adding and self.user_name_key is None:
            self.user_name_key = user_name_key(self.user_name)
        super().save(*args, **kwargs)

    @property
    def is_active(self) -> bool:
        return self.active is not False


class ScimGroup(Versioned, OrgScopedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    display_name = models.CharField(max_length=254)
    external_id = models.CharField(max_length=254, blank=True)
    members = models.ManyToManyField(ScimUser, through="ScimGroupMember", related_name="groups")
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("display_name"), "org", name="scim_group_name_unique_ci"),
        ]

    def __str__(self) -> str:
        return self.display_name


class ScimGroupMember(models.Model):
    group = models.ForeignKey(ScimGroup, on_delete=models.CASCADE)
    user = models.ForeignKey(ScimUser, on_delete=models.CASCADE)
    display = models.CharField(max_length=254, blank=True)  # as the IdP labelled the member, if it did
    created_at = models.DateTimeField(default=timezone.now)

    objects = org_scoped_manager("group__org")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["group", "user"], name="scim_group_member_unique")]


class MappingKind(models.TextChoices):
    BUILTIN_ROLE = "builtin_role", "Built-in role"
    CUSTOM_ROLE = "custom_role", "Custom role"
    TEAM = "team", "Team membership"


# A group can never make someone an owner: ownership is granted by a person, not by a directory.
# When several mapped groups grant built-in roles, the first in this order wins.
MAPPABLE_BUILTIN_ROLES = [BuiltinRole.BILLING_ADMIN, BuiltinRole.MEMBER, BuiltinRole.VIEWER]


# The `source` tag of the grants a mapping makes (rbac.RoleAssignment.source, TeamMembership.source).
MAPPING_TAG = "scim.mapping:"


def mapping_tag(mapping_or_id) -> str:
    pk = getattr(mapping_or_id, "pk", mapping_or_id)
    return f"{MAPPING_TAG}{pk}"


def mapping_of_tag(source: str) -> str | None:
    """The id of the mapping a grant's `source` names, or None for a grant a person (or another
    adapter) made."""
    return source.removeprefix(MAPPING_TAG) if source.startswith(MAPPING_TAG) else None


class GroupMapping(OrgScopedModel):
    """Membership of `group` grants one thing: a built-in role, a custom role, or a team standing."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    group = models.ForeignKey(ScimGroup, on_delete=models.CASCADE, related_name="mappings")
    kind = models.CharField(max_length=20, choices=MappingKind.choices)
    builtin_role = models.CharField(max_length=20, blank=True,
                                    choices=[(r.value, r.label) for r in MAPPABLE_BUILTIN_ROLES])
    role = models.ForeignKey("rbac.Role", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    team = models.ForeignKey("rbac.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    team_role = models.CharField(max_length=10, choices=TeamRole.choices, blank=True)
    created_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="scim_mapping_shape",
                condition=(
                    models.Q(kind="builtin_role", role__isnull=True, team__isnull=True)
                    & ~models.Q(builtin_role="")
                    | models.Q(kind="custom_role", role__isnull=False, team__isnull=True, builtin_role="")
                    | models.Q(kind="team", role__isnull=True, team__isnull=False, builtin_role="")
                    & ~models.Q(team_role="")
                ),
            ),
        ]

    def __str__(self) -> str:
        target = self.builtin_role or (self.role and self.role.name) or (self.team and self.team.name)
        return f"{self.group} → {self.get_kind_display()} {target}"
