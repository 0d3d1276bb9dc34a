"""Group mappings applied and taken back (scim.mappings), and deprovisioning (scim.deprovisioning)."""

import threading
import time

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import ApiKey, Membership, User, UserSession
from agents import keys
from agents.models import Agent, AgentPolicy, AgentSecret
from agents.policies import agent_create
from agents.tokens import TokenInvalid, token_verify
from audit.actors import Actor
from audit.models import AuditEntry
from core.errors import Conflict, Forbidden, Invalid, NotFound
from core.permissions import Perm
from core.tenancy import org_scope
from rbac.guard import access_for_user
from rbac.models import RoleAssignment, TeamMembership
from scim import groups as scim_groups
from scim import mappings
from scim.deprovisioning import DEPROVISION_HOWS, DeprovisionResult, deprovision, reactivate
from scim.groups import GroupChange
from scim.mappings import group_reconcile, mapping_create, mapping_delete, mappings_reconcile
from scim.models import GroupMapping, ScimGroup, ScimGroupMember, ScimUser, mapping_tag
from tests.agents.conftest import AUDIENCE, build_world, post_form
from tests.factories import (
    GroupMappingFactory,
    MemberFactory,
    OrgFactory,
    RoleFactory,
    ScimGroupFactory,
    ScimUserFactory,
    TeamFactory,
    api_key_for,
    sign_in,
)
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db

SCIM = Actor("scim", "token-1", "Okta")
SESSIONS_PAGE = "/account/sessions/"


@pytest.fixture(autouse=True)
def _fresh_key_caches():
    keys.caches_clear()
    yield
    keys.caches_clear()


def scim_user(membership, name=None) -> ScimUser:
    return ScimUserFactory(membership=membership, user_name=name or membership.user.email)


def group(org, name, *users) -> ScimGroup:
    return ScimGroupFactory(org=org, display_name=name, members=users)


def leave(g, u) -> None:
    ScimGroupMember.objects.filter(group=g, user=u).delete()


def mapped(g, **fields) -> GroupMapping:
    return GroupMappingFactory(group=g, **fields)


def events(org, name):
    return list(audit_events(org, name))


def audit_count(org) -> int:
    return AuditEntry.objects.for_org(org).count()


def role_of(membership) -> str:
    return Membership.objects.for_org(membership.org).get(pk=membership.pk).role


def perms_of(membership):
    access = access_for_user(user=User.objects.get(pk=membership.user_id), org_slug=membership.org.slug)
    return access.perms if access else frozenset()


def owner_access(org):
    owner = MemberFactory(org=org, role="owner")
    return access_for_user(user=owner.user, org_slug=org.slug)


# --- built-in roles ------------------------------------------------------------------------------

def test_a_builtin_role_mapping_sets_the_role_and_restores_the_previous_one(org):
    member = MemberFactory(org=org, role="viewer")
    su = scim_user(member)
    g = group(org, "Engineering", su)
    mapped(g, builtin_role="member")
    mappings_reconcile(scim_user=su, actor=SCIM)
    su.refresh_from_db()
    assert role_of(member) == "member"
    assert (su.mapped_role, su.role_before_mapping) == ("member", "viewer")
    [granted] = events(org, "scim.mapping_granted")
    assert granted.data == {"member": str(member.pk), "group": "Engineering", "kind": "builtin_role",
                            "target": "member", "previous_role": "viewer"}
    assert (granted.actor_type, granted.actor_id) == ("scim", "token-1")
    leave(g, su)
    mappings_reconcile(scim_user=su, actor=SCIM)
    su.refresh_from_db()
    assert role_of(member) == "viewer"
    assert (su.mapped_role, su.role_before_mapping) == ("", "")
    [revoked] = events(org, "scim.mapping_revoked")
    assert revoked.data == {"member": str(member.pk), "kind": "builtin_role", "target": "member",
                            "restored_role": "viewer"}


def test_the_first_role_in_precedence_order_wins(org):
    member = MemberFactory(org=org, role="viewer")
    su = scim_user(member)
    mapped(group(org, "Readers", su), builtin_role="viewer")
    billing = group(org, "Finance", su)
    mapped(billing, builtin_role="billing_admin")
    mappings_reconcile(scim_user=su, actor=SCIM)
    assert role_of(member) == "billing_admin"
    leave(billing, su)
    mappings_reconcile(scim_user=su, actor=SCIM)
    su.refresh_from_db()
    # Still mapped (to viewer); what it had before the first mapping is still remembered.
    assert role_of(member) == "viewer" and (su.mapped_role, su.role_before_mapping) == ("viewer", "viewer")


def test_an_owners_role_is_never_touched(org):
    owner = MemberFactory(org=org, role="owner")
    su = scim_user(owner)
    mapped(group(org, "Everyone", su), builtin_role="viewer")
    before = audit_count(org)
    mappings_reconcile(scim_user=su, actor=SCIM)
    su.refresh_from_db()
    assert role_of(owner) == "owner" and su.mapped_role == ""
    assert audit_count(org) == before


def test_a_role_changed_by_hand_after_mapping_is_not_overwritten_on_removal(org):
    member = MemberFactory(org=org, role="viewer")
    su = scim_user(member)
    g = group(org, "Engineering", su)
    mapped(g, builtin_role="member")
    mappings_reconcile(scim_user=su, actor=SCIM)
    Membership.objects.for_org(org).filter(pk=member.pk).update(role="billing_admin")
    leave(g, su)
    mappings_reconcile(scim_user=su, actor=SCIM)
    su.refresh_from_db()
    assert role_of(member) == "billing_admin" and su.mapped_role == ""


# --- custom roles and teams ----------------------------------------------------------------------

def test_a_custom_role_mapping_grants_a_tagged_assignment_and_takes_it_back(org):
    member = MemberFactory(org=org, role="viewer")
    su = scim_user(member)
    role = RoleFactory(org=org, name="Auditor", permissions=["audit:read"])
    g = group(org, "Audit", su)
    mapping = mapped(g, role=role)
    assert Perm.AUDIT_READ not in perms_of(member)
    mappings_reconcile(scim_user=su, actor=SCIM)
    assert RoleAssignment.objects.get(membership=member, role=role).source == mapping_tag(mapping)
    assert Perm.AUDIT_READ in perms_of(member)
    assert events(org, "scim.mapping_granted")[0].data["target"] == "Auditor"
    leave(g, su)
    mappings_reconcile(scim_user=su, actor=SCIM)
    assert not RoleAssignment.objects.filter(membership=member).exists()
    assert Perm.AUDIT_READ not in perms_of(member)
    assert events(org, "scim.mapping_revoked")[0].data == {
        "member": str(member.pk), "group": "Audit", "kind": "custom_role", "target": "Auditor"}


def test_a_custom_role_held_by_hand_is_left_alone(org):
    member = MemberFactory(org=org, role="viewer")
    su = scim_user(member)
    role = RoleFactory(org=org)
    manual = RoleAssignment.objects.create(membership=member, role=role)
    g = group(org, "Audit", su)
    mapped(g, role=role)
    mappings_reconcile(scim_user=su, actor=SCIM)
    leave(g, su)
    mappings_reconcile(scim_user=su, actor=SCIM)
    assert list(RoleAssignment.objects.filter(membership=member)) == [manual]
    assert RoleAssignment.objects.get(pk=manual.pk).source == ""
    assert not events(org, "scim.mapping_granted") and not events(org, "scim.mapping_revoked")


def test_a_role_two_groups_grant_stays_until_the_last_one_goes(org):
    member = MemberFactory(org=org, role="viewer")
    su = scim_user(member)
    role = RoleFactory(org=org)
    first, second = group(org, "A", su), group(org, "B", su)
    mapped(first, role=role)
    other = mapped(second, role=role)
    mappings_reconcile(scim_user=su, actor=SCIM)
    leave(first, su)
    mappings_reconcile(scim_user=su, actor=SCIM)
    assert RoleAssignment.objects.get(membership=member).source == mapping_tag(other)
    assert not events(org, "scim.mapping_revoked")
    leave(second, su)
    mappings_reconcile(scim_user=su, actor=SCIM)
    assert not RoleAssignment.objects.filter(membership=member).exists()
    assert events(org, "scim.mapping_revoked")[0].data["group"] == "B"


def test_a_team_mapping_gives_the_highest_standing_of_its_groups(org):
    member = MemberFactory(org=org, role="viewer")
    su = scim_user(member)
    team = TeamFactory(org=org, name="Platform")
    team.roles.add(RoleFactory(org=org, permissions=["sso:read"]))
    leads = group(org, "Leads", su)
    mapped(group(org, "Devs", su), team=team, team_role="member")
    mapped(leads, team=team, team_role="admin")
    mappings_reconcile(scim_user=su, actor=SCIM)
    standing = TeamMembership.objects.get(team=team, membership=member)
    assert standing.role == "admin" and Perm.SSO_READ in perms_of(member)
    leave(leads, su)
    mappings_reconcile(scim_user=su, actor=SCIM)
    assert TeamMembership.objects.get(team=team, membership=member).role == "member"
    demoted = events(org, "scim.mapping_granted")[-1].data
    assert (demoted["group"], demoted["team_role"], demoted["previous_role"]) == ("Devs", "member", "admin")
    group_of = ScimGroup.objects.for_org(org).get(display_name="Devs")
    leave(group_of, su)
    mappings_reconcile(scim_user=su, actor=SCIM)
    assert not TeamMembership.objects.filter(membership=member).exists()
    assert Perm.SSO_READ not in perms_of(member)
    assert events(org, "scim.mapping_revoked")[0].data["target"] == "Platform"


def test_a_team_standing_given_by_hand_is_left_alone(org):
    member = MemberFactory(org=org, role="viewer")
    su = scim_user(member)
    team = TeamFactory(org=org)
    TeamMembership.objects.create(team=team, membership=member, role="owner")
    g = group(org, "Devs", su)
    mapped(g, team=team, team_role="member")
    mappings_reconcile(scim_user=su, actor=SCIM)
    leave(g, su)
    mappings_reconcile(scim_user=su, actor=SCIM)
    standing = TeamMembership.objects.get(team=team, membership=member)
    assert (standing.role, standing.source) == ("owner", "")


def test_reconciling_twice_changes_nothing_and_audits_nothing(org):
    member = MemberFactory(org=org, role="viewer")
    su = scim_user(member)
    g = group(org, "All", su)
    mapped(g, builtin_role="member")
    mapped(g, role=RoleFactory(org=org))
    mapped(g, team=TeamFactory(org=org), team_role="admin")
    mappings_reconcile(scim_user=su, actor=SCIM)
    state = (role_of(member), list(RoleAssignment.objects.filter(membership=member).values()),
             list(TeamMembership.objects.filter(membership=member).values()))
    before = audit_count(org)
    assert before >= 3
    mappings_reconcile(scim_user=su, actor=SCIM)
    assert audit_count(org) == before
    assert state == (role_of(member), list(RoleAssignment.objects.filter(membership=member).values()),
                     list(TeamMembership.objects.filter(membership=member).values()))


def test_a_member_who_cannot_act_gets_nothing(org):
    member = MemberFactory(org=org, role="viewer", status="suspended")
    su = scim_user(member)
    g = group(org, "All", su)
    mapped(g, builtin_role="member")
    mapped(g, role=RoleFactory(org=org))
    mappings_reconcile(scim_user=su, actor=SCIM)
    assert role_of(member) == "viewer"
    assert not RoleAssignment.objects.filter(membership=member).exists()


def test_the_guard_sees_mapped_grants_on_the_next_request(org):
    member = MemberFactory(org=org, role="viewer")
    su = scim_user(member)
    g = group(org, "Ops", su)
    mapped(g, builtin_role="member")
    mapped(g, role=RoleFactory(org=org, permissions=["audit:read"]))
    before = access_for_user(user=member.user, org_slug=org.slug)
    assert not before.has(Perm.AGENT_WRITE) and not before.has(Perm.AUDIT_READ)
    group_reconcile(group=g, actor=SCIM)
    after = access_for_user(user=User.objects.get(pk=member.user_id), org_slug=org.slug)
    assert after.has(Perm.AGENT_WRITE) and after.has(Perm.AUDIT_READ)


def test_group_reconcile_covers_every_member_and_a_deleted_groups_roles(org):
    members = [MemberFactory(org=org, role="viewer") for _ in range(2)]
    users = [scim_user(m) for m in members]
    g = group(org, "Everyone", *users)
    mapped(g, builtin_role="member")
    group_reconcile(group=g, actor=SCIM)
    assert [role_of(m) for m in members] == ["member", "member"]
    g.delete()
    group_reconcile(group=g, actor=SCIM)
    assert [role_of(m) for m in members] == ["viewer", "viewer"]


# --- mapping_create / mapping_delete -------------------------------------------------------------

def test_mapping_create_audits_and_applies_to_the_groups_members(org):
    access = owner_access(org)
    member = MemberFactory(org=org, role="viewer")
    g = group(org, "Engineering", scim_user(member))
    team = TeamFactory(org=org, name="Core")
    mapping = mapping_create(access=access, group=g, kind="team", team=team, team_role="admin")
    assert (mapping.created_by, mapping.team_role) == (access.user, "admin")
    assert events(org, "scim.mapping_created")[0].data == {
        "group": "Engineering", "kind": "team", "target": "Core", "team_role": "admin"}
    assert TeamMembership.objects.get(membership=member).source == mapping_tag(mapping)
    assert events(org, "scim.mapping_granted")[0].actor_id == str(access.user.pk)


def test_a_group_can_never_make_an_owner(org):
    access = owner_access(org)
    g = group(org, "Admins", scim_user(MemberFactory(org=org, role="viewer")))
    with pytest.raises(Invalid) as refused:
        mapping_create(access=access, group=g, kind="builtin_role", builtin_role="owner")
    assert refused.value.fields == {"builtin_role": ["A group cannot make anyone an owner."]}
    assert not GroupMapping.objects.for_org(org).exists()
    [denial] = events(org, "access.escalation_denied")
    assert (denial.outcome, denial.data) == ("denied", {"reason": "mapping_owner"})


def _scim_admin(org, *extra):
    """A member who may change provisioning but holds little else."""
    member = MemberFactory(org=org, role="viewer")
    RoleAssignment.objects.create(membership=member,
                                  role=RoleFactory(org=org, permissions=["scim:write", *extra]))
    return access_for_user(user=member.user, org_slug=org.slug)


@pytest.mark.parametrize("kind", ["builtin_role", "custom_role", "team"])
def test_a_mapping_may_not_hand_out_more_than_its_author_holds(org, kind):
    access = _scim_admin(org, "team:write")
    target = MemberFactory(org=org, role="viewer")
    g = group(org, "Ops", scim_user(target))
    powerful = RoleFactory(org=org, permissions=["member:write"])
    team = TeamFactory(org=org)
    team.roles.add(powerful)
    args = {"builtin_role": {"builtin_role": "member"}, "custom_role": {"role": powerful},
            "team": {"team": team, "team_role": "member"}}[kind]
    with pytest.raises(Forbidden) as refused:
        mapping_create(access=access, group=g, kind=kind, **args)
    assert refused.value.code == "escalation_denied"
    assert not GroupMapping.objects.for_org(org).exists()
    assert role_of(target) == "viewer" and not TeamMembership.objects.filter(membership=target).exists()
    [denial] = events(org, "access.escalation_denied")
    assert denial.data["reason"] == "mapping_create" and denial.data["missing"]


def test_a_team_standing_needs_power_over_the_team(org):
    access = _scim_admin(org)  # no team:write
    team = TeamFactory(org=org)
    g = group(org, "Ops")
    with pytest.raises(Forbidden):
        mapping_create(access=access, group=g, kind="team", team=team, team_role="member")
    TeamMembership.objects.create(team=team, membership=access.membership, role="admin")
    access = access_for_user(user=access.user, org_slug=org.slug)
    with pytest.raises(Forbidden):
        mapping_create(access=access, group=g, kind="team", team=team, team_role="owner")
    assert mapping_create(access=access, group=g, kind="team", team=team, team_role="admin").pk
    assert [e.data["reason"] for e in events(org, "access.escalation_denied")] == ["mapping_team"] * 2


def test_mapping_create_needs_scim_write(org):
    member = MemberFactory(org=org, role="member")
    access = access_for_user(user=member.user, org_slug=org.slug)
    with pytest.raises(Forbidden):
        mapping_create(access=access, group=group(org, "Ops"), kind="builtin_role", builtin_role="viewer")
    assert not GroupMapping.objects.for_org(org).exists()
    assert events(org, "access.denied")[0].data == {"reason": "scim_mapping", "required": "scim:write"}


def test_another_orgs_group_role_or_team_is_not_found(org):
    access = owner_access(org)
    other = OrgFactory()
    mine = group(org, "Ops")
    for kwargs in ({"group": group(other, "Theirs"), "kind": "builtin_role", "builtin_role": "viewer"},
                   {"group": mine, "kind": "custom_role", "role": RoleFactory(org=other)},
                   {"group": mine, "kind": "team", "team": TeamFactory(org=other), "team_role": "member"}):
        with pytest.raises(NotFound):
            mapping_create(access=access, **kwargs)
    assert not GroupMapping.objects.for_org(org).exists()
    assert not GroupMapping.objects.for_org(other).exists()


def test_malformed_and_duplicate_mappings_are_refused(org):
    access = owner_access(org)
    g = group(org, "Ops")
    with pytest.raises(Invalid) as bad:
        mapping_create(access=access, group=g, kind="team", team=TeamFactory(org=org))
    assert bad.value.fields == {"team_role": ["Required for this kind."]}
    with pytest.raises(Invalid) as bad:
        mapping_create(access=access, group=g, kind="builtin_role", builtin_role="viewer",
                       role=RoleFactory(org=org))
    assert bad.value.fields == {"role": ["Not used by this kind."]}
    with pytest.raises(Invalid) as bad:
        mapping_create(access=access, group=g, kind="superuser")
    assert set(bad.value.fields) == {"kind"}
    mapping_create(access=access, group=g, kind="builtin_role", builtin_role="viewer")
    with pytest.raises(Conflict):
        mapping_create(access=access, group=g, kind="builtin_role", builtin_role="viewer")
    assert GroupMapping.objects.for_org(org).count() == 1


def test_mapping_delete_takes_back_its_grants_with_an_audit_trail(org):
    access = owner_access(org)
    member = MemberFactory(org=org, role="viewer")
    g = group(org, "Ops", scim_user(member))
    role = RoleFactory(org=org, name="Deployer")
    keep = RoleFactory(org=org, name="Reader")
    mapping = mapping_create(access=access, group=g, kind="custom_role", role=role)
    mapping_create(access=access, group=g, kind="custom_role", role=keep)
    builtin = mapping_create(access=access, group=g, kind="builtin_role", builtin_role="member")
    mapping_delete(access=access, mapping=mapping)
    mapping_delete(access=access, mapping=builtin)
    assert [a.role for a in RoleAssignment.objects.filter(membership=member)] == [keep]
    assert role_of(member) == "viewer"
    assert [e.data["target"] for e in events(org, "scim.mapping_deleted")] == ["Deployer", "member"]
    revoked = [e.data for e in events(org, "scim.mapping_revoked")]
    assert [(r["target"], r.get("group")) for r in revoked] == [("Deployer", "Ops"), ("member", None)]


def test_mapping_delete_is_refused_to_someone_weaker_than_the_mapping(org):
    mapping = mapped(group(org, "Finance"), builtin_role="billing_admin")
    access = _scim_admin(org)
    with pytest.raises(Forbidden):
        mapping_delete(access=access, mapping=mapping)
    assert GroupMapping.objects.for_org(org).filter(pk=mapping.pk).exists()
    assert events(org, "access.escalation_denied")[0].data["reason"] == "mapping_delete"
    with pytest.raises(NotFound):
        mapping_delete(access=owner_access(OrgFactory()), mapping=mapping)
    assert GroupMapping.objects.for_org(org).filter(pk=mapping.pk).exists()


# --- deprovisioning ------------------------------------------------------------------------------

def test_deprovisioning_the_last_acting_membership_ends_every_session_of_the_user(org):
    member = MemberFactory(org=org)
    browser, bystander = sign_in(Client(), member.user), sign_in(Client(), MemberFactory(org=org).user)
    assert browser.get(SESSIONS_PAGE).status_code == 200
    result = deprovision(scim_user=scim_user(member), actor=SCIM, how="deactivated")
    assert result.sessions_revoked == 1 and result.account_deactivated
    response = browser.get(SESSIONS_PAGE)
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert bystander.get(SESSIONS_PAGE).status_code == 200
    assert not UserSession.objects.filter(user=member.user).exists()
    revocation = AuditEntry.objects.unscoped().filter(event_name="session.revoked").get()
    assert (revocation.actor_type, revocation.data) == ("scim", {"reason": "deprovisioned", "count": 1})


def test_one_orgs_directory_cannot_log_someone_out_of_another_org(org):
    member = MemberFactory(org=org)
    elsewhere = MemberFactory(user=member.user)  # the same person, still working in another org
    su = scim_user(member)  # as when this org's SCIM links the existing account by its email
    browser = sign_in(Client(), member.user)
    for _ in range(3):  # the directory toggles `active` again and again
        result = deprovision(scim_user=su, actor=SCIM, how="deactivated")
        assert (result.sessions_revoked, result.account_deactivated) == (0, False)
        reactivate(scim_user=su, actor=SCIM)
    deprovision(scim_user=su, actor=SCIM, how="deactivated")
    assert browser.get(SESSIONS_PAGE).status_code == 200
    assert UserSession.objects.filter(user=member.user).count() == 1
    assert not AuditEntry.objects.unscoped().filter(event_name="session.revoked").exists()
    assert [e.data["sessions_revoked"] for e in events(org, "member.deprovisioned")] == [0] * 4
    # This org no longer lets the session in: the guard refuses the deprovisioned membership.
    assert access_for_user(user=User.objects.get(pk=member.user_id), org_slug=org.slug) is None
    assert access_for_user(user=User.objects.get(pk=member.user_id), org_slug=elsewhere.org.slug)


def test_sessions_end_when_no_other_membership_can_act(org):
    member = MemberFactory(org=org)
    MemberFactory(user=member.user, status="suspended")
    sign_in(Client(), member.user)
    result = deprovision(scim_user=scim_user(member), actor=SCIM, how="deleted")
    assert (result.sessions_revoked, result.account_deactivated) == (1, True)
    assert not UserSession.objects.filter(user=member.user).exists()
    assert events(org, "member.deprovisioned")[0].data["sessions_revoked"] == 1


def test_deprovisioning_revokes_the_users_api_keys_in_this_org_only(org, api):
    member = MemberFactory(org=org)
    theirs, secret = api_key_for(org, ["member:read"], created_by=member.user)
    elsewhere, _ = api_key_for(MemberFactory(user=member.user).org, ["member:read"], created_by=member.user)
    colleagues, _ = api_key_for(org, ["member:read"], created_by=MemberFactory(org=org).user)
    url = f"/api/v1/orgs/{org.slug}/members/"
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api.get(url).status_code == 200
    result = deprovision(scim_user=scim_user(member), actor=SCIM, how="deleted")
    assert result.api_keys_revoked == 1
    assert api.get(url).status_code == 401
    assert ApiKey.objects.for_org(org).get(pk=theirs.pk).revoked_at is not None
    assert ApiKey.objects.for_org(colleagues.org).get(pk=colleagues.pk).revoked_at is None
    assert ApiKey.objects.for_org(elsewhere.org).get(pk=elsewhere.pk).revoked_at is None
    [revoked] = events(org, "api_key.revoked")
    assert (revoked.target_id, revoked.actor_type) == (str(theirs.pk), "scim")


def _agent_owned_by(member, world, name="helper"):
    agent, secret = agent_create(access=world.access, name=name, scopes=["tickets:read"],
                                 audiences=[AUDIENCE], owner=member)
    return agent, secret


def _token(client, world, agent, secret):
    return post_form(client, world.url("token"), {"grant_type": "client_credentials"},
                     auth=(agent.client_id, secret))


def test_an_agent_left_without_an_owner_is_suspended_and_its_tokens_die(client):
    world = build_world()
    member = MemberFactory(org=world.org)
    agent, secret = _agent_owned_by(member, world)
    shared, _ = _agent_owned_by(member, world, name="shared")
    shared.owners.add(world.owner)
    token = _token(client, world, agent, secret).json()["access_token"]
    assert token_verify(token, org_slug=world.slug)["sub"] == agent.subject
    result = deprovision(scim_user=scim_user(member), actor=SCIM, how="deactivated")
    assert (result.agents_suspended, result.agents_reassigned) == (1, 0)
    agent.refresh_from_db()
    assert agent.status == "suspended" and not agent.owners.exists()
    with pytest.raises(TokenInvalid, match="agent_revoked"):
        token_verify(token, org_slug=world.slug)
    assert _token(client, world, agent, secret).status_code == 401
    assert all(s.expires_at is not None for s in AgentSecret.objects.filter(agent=agent))
    shared.refresh_from_db()
    assert shared.status == "active" and list(shared.owners.all()) == [world.owner]
    assert [e.target_id for e in events(world.org, "agent.suspended")] == [str(agent.pk)]
    assert events(world.org, "agent.secret_window_ended")[0].data["how"] == "owner_deprovisioned"


def test_the_reassign_policy_hands_agents_to_the_fallback_owner(client):
    world = build_world()
    member = MemberFactory(org=world.org)
    AgentPolicy.objects.create(org=world.org, deprovision_agents="reassign",
                                  deprovision_fallback_owner=world.owner)
    agent, secret = _agent_owned_by(member, world)
    result = deprovision(scim_user=scim_user(member), actor=SCIM, how="deactivated")
    assert (result.agents_reassigned, result.agents_suspended) == (1, 0)
    agent.refresh_from_db()
    assert agent.status == "active" and list(agent.owners.all()) == [world.owner]
    assert _token(client, world, agent, secret).status_code == 200
    assert events(world.org, "agent.grant_changed")[-1].data["owners"] == [str(world.owner.pk)]


def test_reassign_falls_back_to_suspend_when_the_fallback_owner_cannot_act():
    world = build_world()
    member = MemberFactory(org=world.org)
    fallback = MemberFactory(org=world.org, status="suspended")
    AgentPolicy.objects.create(org=world.org, deprovision_agents="reassign",
                                  deprovision_fallback_owner=fallback)
    agent, _ = _agent_owned_by(member, world)
    result = deprovision(scim_user=scim_user(member), actor=SCIM, how="deactivated")
    assert (result.agents_reassigned, result.agents_suspended) == (0, 1)
    assert Agent.objects.for_org(world.org).get(pk=agent.pk).status == "suspended"


def test_only_this_orgs_membership_ends_and_the_account_only_with_the_last_one(org):
    member = MemberFactory(org=org)
    elsewhere = MemberFactory(user=member.user)
    result = deprovision(scim_user=scim_user(member), actor=SCIM, how="deactivated")
    assert not result.account_deactivated
    assert Membership.objects.for_org(org).get(pk=member.pk).status == "deprovisioned"
    assert Membership.objects.for_org(elsewhere.org).get(pk=elsewhere.pk).status == "active"
    assert User.objects.get(pk=member.user_id).is_active
    su_elsewhere = scim_user(elsewhere)
    assert deprovision(scim_user=su_elsewhere, actor=SCIM, how="deleted").account_deactivated
    assert not User.objects.get(pk=member.user_id).is_active


def test_deprovisioning_audits_counts_and_a_repeat_changes_nothing(org):
    member = MemberFactory(org=org, role="viewer")
    su = scim_user(member)
    g = group(org, "All", su)
    mapped(g, builtin_role="member")
    mapped(g, role=RoleFactory(org=org))
    mappings_reconcile(scim_user=su, actor=SCIM)
    api_key_for(org, ["member:read"], created_by=member.user)
    sign_in(Client(), member.user)
    result = deprovision(scim_user=su, actor=SCIM, how="deactivated")
    assert result == DeprovisionResult(1, 1, 0, 0, True)
    assert role_of(member) == "viewer" and not RoleAssignment.objects.filter(membership=member).exists()
    assert access_for_user(user=User.objects.get(pk=member.user_id), org_slug=org.slug) is None
    [entry] = events(org, "member.deprovisioned")
    assert (entry.actor_type, entry.target_id) == ("scim", str(member.pk))
    assert entry.data == {"member": str(member.pk), "how": "deactivated", "sessions_revoked": 1,
                          "api_keys_revoked": 1, "agents_reassigned": 0, "agents_suspended": 0,
                          "scim_tokens_revoked": 0, "account_deactivated": True, "delegations_revoked": 0}
    before = audit_count(org)
    assert deprovision(scim_user=su, actor=SCIM, how="deactivated") == DeprovisionResult(0, 0, 0, 0, False)
    assert audit_count(org) == before


def test_reactivating_gives_back_the_membership_and_the_mapped_grants(org):
    member = MemberFactory(org=org, role="viewer")
    su = scim_user(member)
    mapped(group(org, "All", su), builtin_role="member")
    deprovision(scim_user=su, actor=SCIM, how="deactivated")
    assert role_of(member) == "viewer"
    reactivate(scim_user=su, actor=SCIM)
    assert Membership.objects.for_org(org).get(pk=member.pk).status == "active"
    assert User.objects.get(pk=member.user_id).is_active and role_of(member) == "member"
    assert ScimUser.objects.for_org(org).get(pk=su.pk).active
    assert events(org, "scim.user_reactivated")[0].data == {"user_name": su.user_name}
    before = audit_count(org)
    reactivate(scim_user=su, actor=SCIM)
    assert audit_count(org) == before


def test_reactivation_leaves_an_admins_suspension_in_place(org):
    member = MemberFactory(org=org, status="suspended")
    su = scim_user(member)
    reactivate(scim_user=su, actor=SCIM)
    assert Membership.objects.for_org(org).get(pk=member.pk).status == "suspended"


def test_deprovisioning_keeps_an_admins_suspension_and_reactivation_does_not_lift_it(org, api):
    member = MemberFactory(org=org, role="viewer")
    su = scim_user(member)
    mapped(group(org, "All", su), role=RoleFactory(org=org))
    mappings_reconcile(scim_user=su, actor=SCIM)
    Membership.objects.for_org(org).filter(pk=member.pk).update(status="suspended")
    key, _ = api_key_for(org, ["member:read"], created_by=member.user)
    result = deprovision(scim_user=su, actor=SCIM, how="deactivated")
    assert Membership.objects.for_org(org).get(pk=member.pk).status == "suspended"
    # The rest of deprovisioning still happens.
    assert (result.api_keys_revoked, result.account_deactivated) == (1, True)
    assert ApiKey.objects.for_org(org).get(pk=key.pk).revoked_at is not None
    assert not RoleAssignment.objects.filter(membership=member).exists()
    assert ScimUser.objects.for_org(org).get(pk=su.pk).active is False
    assert events(org, "member.deprovisioned")[0].data["api_keys_revoked"] == 1
    reactivate(scim_user=su, actor=SCIM)
    assert Membership.objects.for_org(org).get(pk=member.pk).status == "suspended"
    assert access_for_user(user=User.objects.get(pk=member.user_id), org_slug=org.slug) is None
    assert not RoleAssignment.objects.filter(membership=member).exists()


# --- the last owner ------------------------------------------------------------------------------

def test_the_orgs_only_acting_owner_cannot_be_deprovisioned(org):
    owner = MemberFactory(org=org, role="owner")
    MemberFactory(org=org, role="owner", status="suspended")  # an owner who cannot act does not count
    su = scim_user(owner)
    key, _ = api_key_for(org, ["member:read"], created_by=owner.user)
    sign_in(Client(), owner.user)
    before = audit_count(org)
    for how in DEPROVISION_HOWS:
        with pytest.raises(Conflict) as refused:
            deprovision(scim_user=su, actor=SCIM, how=how)
        assert refused.value.code == "last_owner"
    owner = Membership.objects.for_org(org).get(pk=owner.pk)
    assert (owner.status, owner.role) == ("active", "owner")
    assert ScimUser.objects.for_org(org).get(pk=su.pk).active is True
    assert ApiKey.objects.for_org(org).get(pk=key.pk).revoked_at is None
    assert UserSession.objects.filter(user=owner.user).exists()
    assert User.objects.get(pk=owner.user_id).is_active
    assert audit_count(org) == before + 2
    denials = events(org, "access.last_owner_protected")
    assert [(d.outcome, d.actor_type, d.target_id, d.data) for d in denials] == [
        ("denied", "scim", str(owner.pk), {"action": "scim_deprovision"})] * 2


def test_an_owner_can_be_deprovisioned_while_another_owner_can_act(org):
    first, second = MemberFactory(org=org, role="owner"), MemberFactory(org=org, role="owner")
    deprovision(scim_user=scim_user(first), actor=SCIM, how="deactivated")
    assert Membership.objects.for_org(org).get(pk=first.pk).status == "deprovisioned"
    with pytest.raises(Conflict):
        deprovision(scim_user=scim_user(second), actor=SCIM, how="deleted")
    assert Membership.objects.for_org(org).get(pk=second.pk).status == "active"
    # An owner who cannot act already takes nothing from the org: the repeat is allowed.
    assert deprovision(scim_user=ScimUser.objects.for_org(org).get(membership=first), actor=SCIM,
                       how="deleted") == DeprovisionResult(0, 0, 0, 0, False)


# --- mappings and group updates serialise on the group row (PostgreSQL) -------------------------

def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("race cases run on PostgreSQL (SQLite serialises every writer)")


def test_mapping_create_and_delete_lock_the_group_before_anything_else(org):
    _postgres_only()
    access = owner_access(org)
    g = group(org, "Ops", scim_user(MemberFactory(org=org, role="viewer")))
    with CaptureQueriesContext(connection) as created:
        mapping = mapping_create(access=access, group=g, kind="builtin_role", builtin_role="member")
    with CaptureQueriesContext(connection) as deleted:
        mapping_delete(access=access, mapping=mapping)
    for captured in (created, deleted):
        sql = [q["sql"] for q in captured.captured_queries]
        locks_or_writes = [i for i, s in enumerate(sql) if "FOR UPDATE" in s
                           or s.startswith(("INSERT", "UPDATE", "DELETE"))]
        first = sql[locks_or_writes[0]]
        assert 'FROM "scim_scimgroup"' in first and "FOR UPDATE" in first, first


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("first", ["mapping_delete", "group_update"])
def test_a_mapping_deleted_while_a_group_update_adds_a_member_leaves_no_orphan_grant(monkeypatch, first):
    _postgres_only()
    org = OrgFactory()
    access = owner_access(org)
    member = MemberFactory(org=org, role="viewer")
    su = scim_user(member)
    g = group(org, "Ops")
    mapping = mapped(g, builtin_role="member")
    started, errors = threading.Event(), []
    # The first writer signals once it is under way, then holds its transaction open a while, so that
    # the second runs meanwhile. Without the group lock, a deletion that is under way (holding the
    # org's audit chain) does not see the member being added, and the update grants the role from
    # the mapping it read before the deletion committed.
    hooked = "affected_by" if first == "mapping_delete" else "mappings_reconcile"
    original = getattr(mappings, hooked)

    def signal_then_linger(*args, **kwargs):
        result = original(*args, **kwargs)
        started.set()
        time.sleep(1)
        return result

    monkeypatch.setattr(mappings, hooked, signal_then_linger)

    def add_member():
        change = GroupChange({"display_name": "Ops", "external_id": ""}, add=[(str(su.pk), "")])
        scim_groups.group_update(org=org, actor=SCIM, pk=g.pk, change=lambda _: change, accepts=None,
                                 method="PATCH")

    def delete_mapping():
        mapping_delete(access=access, mapping=mapping)

    works = {"mapping_delete": delete_mapping, "group_update": add_member}
    second = next(name for name in works if name != first)

    def run(name):
        try:
            if name == second:
                assert started.wait(10)
            with org_scope(org):  # as each request would be, once its token named the org
                works[name]()
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(name,)) for name in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert list(ScimGroup.objects.for_org(org).get(pk=g.pk).members.all()) == [su]
    assert not GroupMapping.objects.for_org(org).exists()
    su.refresh_from_db()
    assert role_of(member) == "viewer" and su.mapped_role == ""
    granted, revoked = events(org, "scim.mapping_granted"), events(org, "scim.mapping_revoked")
    assert len(granted) == len(revoked)  # whatever was granted was taken back, with a trail
