"""Policy wrappers: what the admin pages and the admin API call for members, API keys, roles, teams
and the security policy.

Each takes the caller's `Access`, checks what the caller may do (rbac.authorization), then calls
one effect service with the caller as actor, in one transaction. A refusal rolls everything back and
is audited after the rollback. Adapters (SCIM, SSO), tasks and commands call the effects directly,
under their own policy.
"""

from django.db import transaction

from accounts import api_keys, invitations, reset
from accounts import services as accounts
from accounts.models import MembershipStatus
from accounts.services import user_get_or_create
from audit.services import Target, records_denials
from core.errors import Conflict, Invalid
from core.permissions import perms_validate
from core.roles import BUILTIN_ROLES, BuiltinRole
from rbac import services as rbac
from rbac.access import Access
from rbac.authorization import (
    assert_can_give_team_role,
    assert_can_grant,
    assert_can_manage_member,
    assert_can_manage_team,
    assert_in_org,
    assert_team_owner_power,
    roles_perms,
)
from rbac.guard import membership_standing_permissions
from rbac.models import Role
from rbac.selectors import acting_member_permissions

# --- members --------------------------------------------------------------------------------------


@records_denials
@transaction.atomic
def member_add(*, access: Access, email: str, role: str = BuiltinRole.MEMBER, custom_roles=()):
    """Invite a person to the org by address. The answer is the same whether or not the address has
    an account: a pending membership, which grants nothing until the person accepts."""
    assert_can_grant(access, BUILTIN_ROLES[role], reason="member_add")
    user = user_get_or_create(email=email)
    membership = accounts.membership_create(org=access.org, user=user, role=role, actor=access.actor,
                                            invited_by=access.creator_user)
    if custom_roles:
        member_custom_roles_set(access=access, membership=membership, roles=custom_roles)
    return membership


def _assert_inviter_stands(invitation) -> None:
    """An invitation never out-ranks the person who sent it: at acceptance they must still act in
    the org and hold every permission the membership would give (its role, custom roles and teams).
    An IdP's invitation (no person) stands on its SCIM token, whose creator is checked at each use."""
    if invitation is None or invitation.invited_by_id is None:
        return
    held = acting_member_permissions(org_id=invitation.org_id, user_id=invitation.invited_by_id)
    if held is None or not membership_standing_permissions(invitation.membership) <= held:
        raise invitations.invitation_rejected("inviter_lost_power", invitation)


@records_denials
def invitation_accept(*, raw: str, new_password: str | None = None):
    """The person accepts from the mailed link (accounts.invitations), if the inviter still stands."""
    _assert_inviter_stands(invitations.invitation_check(raw=raw))
    return invitations.invitation_accept(raw=raw, new_password=new_password)


@records_denials
def invitation_accept_signed_in(*, user, membership):
    """The person accepts from the banner, if the inviter still stands."""
    _assert_inviter_stands(invitations.invitation_for(membership))
    return invitations.invitation_accept_signed_in(user=user, membership=membership)


@records_denials
@transaction.atomic
def member_invitation_resend(*, access: Access, membership):
    """Mail a pending invitation again, with a new link (the older one stops working)."""
    assert_in_org(access, membership)
    assert_can_manage_member(access, membership)
    return invitations.invitation_send(membership=membership, actor=access.actor,
                                       invited_by=access.creator_user)


@records_denials
@transaction.atomic
def member_update(*, access: Access, membership, role: str | None = None, status: str | None = None,
                  custom_roles=None):
    assert_in_org(access, membership)
    assert_can_manage_member(access, membership)
    if role is not None and role != membership.role:
        assert_can_grant(access, BUILTIN_ROLES.get(role, ()), target=Target.of(membership))
    accounts.membership_update(membership=membership, actor=access.actor, role=role, status=status)
    if custom_roles is not None:
        member_custom_roles_set(access=access, membership=membership, roles=custom_roles)
    return membership


@records_denials
@transaction.atomic
def member_remove(*, access: Access, membership) -> None:
    """Remove a member, or withdraw a pending invitation."""
    assert_in_org(access, membership)
    assert_can_manage_member(access, membership)
    if membership.status == MembershipStatus.INVITED:
        invitations.invitation_cancel(membership=membership, actor=access.actor)
    else:
        accounts.membership_remove(membership=membership, actor=access.actor)


@records_denials
@transaction.atomic
def member_custom_roles_set(*, access: Access, membership, roles) -> None:
    """Replace a member's custom roles; every role added or removed must be within the caller's."""
    assert_in_org(access, membership, *roles)
    assert_can_manage_member(access, membership)
    current = set(Role.objects.for_org(access.org).filter(members=membership))
    assert_can_grant(access, roles_perms(current ^ set(roles)), target=Target.of(membership))
    rbac.membership_custom_roles_set(membership=membership, roles=roles, actor=access.actor)


@records_denials
def member_sessions_revoke(*, access: Access, membership) -> int:
    """An admin ends a member's sessions' access to this org (e.g. a lost laptop); the sessions
    themselves only where this org manages the account. Only within one's own power."""
    assert_in_org(access, membership)
    assert_can_manage_member(access, membership)
    return accounts.member_sessions_end(membership=membership, actor=access.actor)


@records_denials
def member_password_reset_send(*, access: Access, membership) -> None:
    """Mail the member a single-use reset link; nobody but the member sees it."""
    assert_in_org(access, membership)
    assert_can_manage_member(access, membership)
    if membership.status == MembershipStatus.INVITED:
        raise Conflict("This person has not accepted the invitation; resend it instead.",
                       code="not_accepted")
    reset.reset_link_send(membership=membership, actor=access.actor)


# --- API keys -------------------------------------------------------------------------------------


@records_denials
@transaction.atomic
def api_key_create(*, access: Access, name: str, permissions, expires_at=None):
    """Mint an org API key within the caller's own permissions. Returns the key and its secret."""
    perms = perms_validate(permissions)
    if not perms:
        raise Invalid("Choose at least one permission.",
                      fields={"permissions": ["Choose at least one permission."]})
    api_keys.expiry_check(expires_at)
    assert_can_grant(access, perms, reason="api_key_create")
    return api_keys.api_key_mint(org=access.org, name=name, perms=perms, actor=access.actor,
                                 created_by=access.creator_user, expires_at=expires_at)


@records_denials
def api_key_revoke(*, access: Access, key):
    assert_in_org(access, key)
    return api_keys.api_key_revoke(key=key, actor=access.actor)


# --- security policy ------------------------------------------------------------------------------


@records_denials
def policy_update(*, access: Access, **changes):
    """Change the org's security policy (the view's permission is all it takes)."""
    return accounts.security_policy_set(org=access.org, actor=access.actor, **changes)


# --- custom roles ---------------------------------------------------------------------------------


@records_denials
@transaction.atomic
def role_create(*, access: Access, name: str, permissions, description: str = ""):
    assert_can_grant(access, perms_validate(permissions), reason="role_create")
    return rbac.role_create(org=access.org, name=name, permissions=permissions, description=description,
                            actor=access.actor)


@records_denials
@transaction.atomic
def role_update(*, access: Access, role, name=None, description=None, permissions=None):
    assert_in_org(access, role)
    # Editing a role that is already more powerful than you would let you hand its power around.
    assert_can_grant(access, role.perms, target=Target.of(role), reason="role_edit")
    if permissions is not None:
        assert_can_grant(access, perms_validate(permissions), target=Target.of(role), reason="role_edit")
    return rbac.role_update(role=role, actor=access.actor, name=name, description=description,
                            permissions=permissions)


@records_denials
@transaction.atomic
def role_delete(*, access: Access, role) -> None:
    assert_in_org(access, role)
    assert_can_grant(access, role.perms, target=Target.of(role), reason="role_delete")
    rbac.role_delete(role=role, actor=access.actor)


# --- teams ----------------------------------------------------------------------------------------


@records_denials
@transaction.atomic
def team_create(*, access: Access, name: str, description: str = "", roles=()):
    assert_in_org(access, *roles)
    # Granting a role to a team grants it to every member: the same no-escalation rule applies.
    assert_can_grant(access, roles_perms(roles), reason="team_roles")
    return rbac.team_create(org=access.org, name=name, description=description, roles=roles,
                            actor=access.actor)


@records_denials
@transaction.atomic
def team_update(*, access: Access, team, name=None, description=None, roles=None):
    assert_in_org(access, team, *(roles or ()))
    assert_can_manage_team(access, team)
    if roles is not None:
        changed = set(team.roles.all()) ^ set(roles)
        assert_can_grant(access, roles_perms(changed), target=Target.of(team), reason="team_roles")
    return rbac.team_update(team=team, actor=access.actor, name=name, description=description, roles=roles)


@records_denials
@transaction.atomic
def team_delete(*, access: Access, team) -> None:
    assert_in_org(access, team)
    assert_can_manage_team(access, team)
    assert_team_owner_power(access, team, reason="team_delete")
    rbac.team_delete(team=team, actor=access.actor)


@records_denials
@transaction.atomic
def team_member_add(*, access: Access, team, membership, role: str = "member"):
    assert_in_org(access, team, membership)
    assert_can_manage_team(access, team)
    assert_can_give_team_role(access, team, role, membership)
    # Joining a team grants the team's roles, so the caller must hold them.
    assert_can_grant(access, roles_perms(team.roles.all()), target=Target.of(team), reason="team_member_add")
    return rbac.team_standing_add(team=team, membership=membership, role=role, actor=access.actor)


@records_denials
@transaction.atomic
def team_member_update(*, access: Access, team_membership, role: str):
    team = team_membership.team
    assert_in_org(access, team)
    assert_can_manage_team(access, team)
    if role != team_membership.role:
        assert_team_owner_power(access, team, reason="team_owner_demote", standing=team_membership)
    assert_can_give_team_role(access, team, role, team_membership.membership)
    return rbac.team_standing_set(standing=team_membership, role=role, actor=access.actor)


@records_denials
@transaction.atomic
def team_member_remove(*, access: Access, team_membership) -> None:
    team = team_membership.team
    assert_in_org(access, team)
    assert_can_manage_team(access, team)
    assert_team_owner_power(access, team, reason="team_owner_remove", standing=team_membership)
    rbac.team_standing_remove(standing=team_membership, actor=access.actor)
