import uuid

from django.db import models
from django.utils import timezone

from core.permissions import perms_from_strings
from core.roles import TeamRole
from core.tenancy import OrgScopedModel, org_scoped_manager


class Role(OrgScopedModel):
    """A custom role: a named bundle of catalogue permissions, granted to members or teams."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=500, blank=True)
    permissions = models.JSONField(default=list)
    members = models.ManyToManyField(
        "accounts.Membership", through="RoleAssignment", related_name="custom_roles"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "name"], name="role_unique_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def perms(self):
        return perms_from_strings(self.permissions)


class RoleAssignment(models.Model):
    membership = models.ForeignKey("accounts.Membership", on_delete=models.CASCADE)
    role = models.ForeignKey(Role, on_delete=models.CASCADE)
    # Who made this grant: "" for a person (an admin, through the pages or the API); otherwise an
    # opaque tag of the adapter that made it (a SCIM group mapping), which alone takes it back.
    source = models.CharField(max_length=64, blank=True)

    objects = org_scoped_manager("membership__org")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["membership", "role"], name="role_assignment_unique")
        ]


class Team(OrgScopedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=500, blank=True)
    # Custom roles every member of the team holds, org-wide, while they are in the team.
    roles = models.ManyToManyField(Role, blank=True, related_name="teams")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "name"], name="team_unique_name")]

    def __str__(self) -> str:
        return self.name


class TeamMembership(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    membership = models.ForeignKey(
        "accounts.Membership", on_delete=models.CASCADE, related_name="team_memberships"
    )
    role = models.CharField(max_length=10, choices=TeamRole.choices, default=TeamRole.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)
    # As RoleAssignment.source: "" when a person gave this standing, else the adapter's tag.
    source = models.CharField(max_length=64, blank=True)

    objects = org_scoped_manager("team__org")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "membership"], name="team_membership_unique")
        ]
