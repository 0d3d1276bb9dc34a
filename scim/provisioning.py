"""What provisioning does to access: group mappings applied and taken back, deprovisioning.

Called by the SCIM protocol views (scim/protocol/) after every change to a user's groups or
`active` flag, and by the mapping pages and API. Every change is audited with the caller's actor.
"""

from dataclasses import dataclass

from accounts.models import Membership
from audit.actors import Actor
from rbac.guard import Access
from scim.models import GroupMapping, ScimGroup, ScimUser


@dataclass(frozen=True)
class DeprovisionResult:
    sessions_revoked: int
    api_keys_revoked: int
    agents_reassigned: int
    agents_suspended: int
    account_deactivated: bool


def mappings_reconcile(*, scim_user: ScimUser, actor: Actor) -> None:
    """Make the membership's mapped grants match the mappings of the groups it is in now."""
    raise NotImplementedError


def group_reconcile(*, group: ScimGroup, actor: Actor) -> None:
    """`mappings_reconcile` for every member of `group` (after its mappings change)."""
    raise NotImplementedError


def deprovision(*, scim_user: ScimUser, actor: Actor, how: str) -> DeprovisionResult:
    """End the user's access to this org (how: "deactivated" | "deleted")."""
    raise NotImplementedError


def reactivate(*, scim_user: ScimUser, actor: Actor) -> None:
    """Give a deactivated user their membership back (base role, then mapped grants)."""
    raise NotImplementedError


def mapping_create(*, access: Access, group: ScimGroup, kind: str, builtin_role: str = "", role=None,
                   team=None, team_role: str = "") -> GroupMapping:
    raise NotImplementedError


def mapping_delete(*, access: Access, mapping: GroupMapping) -> None:
    raise NotImplementedError


__all__ = ["DeprovisionResult", "Membership", "deprovision", "group_reconcile", "mapping_create",
           "mapping_delete", "mappings_reconcile", "reactivate"]
