"""Built-in roles, as data. Custom roles (rows in `rbac.Role`) are built from the same catalogue."""

from django.db import models

from core.permissions import ALL_PERMS, Perm

_READ_ALL = frozenset(p for p in Perm if p.value.endswith(":read"))


class BuiltinRole(models.TextChoices):
    OWNER = "owner", "Owner"
    BILLING_ADMIN = "billing_admin", "Billing Admin"
    MEMBER = "member", "Member"
    VIEWER = "viewer", "Viewer"


BUILTIN_ROLES: dict[str, frozenset[Perm]] = {
    BuiltinRole.OWNER: ALL_PERMS,
    # Subscription and payment management, read-only elsewhere.
    BuiltinRole.BILLING_ADMIN: _READ_ALL | {Perm.BILLING_WRITE},
    # Standard operational access: run and manage agents, see the org.
    BuiltinRole.MEMBER: frozenset(
        {
            Perm.ORG_READ,
            Perm.MEMBER_READ,
            Perm.TEAM_READ,
            Perm.ROLE_READ,
            Perm.AGENT_READ,
            Perm.AGENT_WRITE,
            Perm.CONNECTION_READ,
            Perm.CONNECTION_USE,
            Perm.RUN_READ,
            Perm.RUN_WRITE,
            Perm.TRUST_READ,
        }
    ),
    BuiltinRole.VIEWER: frozenset(
        {
            Perm.ORG_READ,
            Perm.MEMBER_READ,
            Perm.TEAM_READ,
            Perm.ROLE_READ,
            Perm.AGENT_READ,
            Perm.CONNECTION_READ,
            Perm.RUN_READ,
            Perm.TRUST_READ,
        }
    ),
}


class TeamRole(models.TextChoices):
    """A member's standing inside one team. Admins and owners manage that team's membership."""

    MEMBER = "member", "Member"
    ADMIN = "admin", "Admin"
    OWNER = "owner", "Owner"
