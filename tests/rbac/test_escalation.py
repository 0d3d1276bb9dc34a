"""No escalation and the last-owner rule, through the API: response, no change, audit entry."""

import pytest
from rest_framework.test import APIClient

from accounts.models import ApiKey, Membership
from audit.models import AuditEntry
from core.permissions import Perm
from rbac.models import Role, RoleAssignment, TeamMembership
from tests.factories import MemberFactory, RoleFactory, TeamFactory, sign_in

pytestmark = pytest.mark.django_db


def _client_for(member):
    client = APIClient()
    sign_in(client, member.user)
    return client


def _last_event(org):
    return AuditEntry.objects.for_org(org).latest("seq")


@pytest.fixture
def role_admin(org):
    """A member who may write roles and members, but holds nothing else of note."""
    member = MemberFactory(org=org, role="viewer")
    role = RoleFactory(org=org, permissions=["role:write", "member:write", "member:read",
                                             "api_key:write"])
    RoleAssignment.objects.create(membership=member, role=role)
    return member


def test_custom_role_with_a_permission_the_creator_lacks_is_refused(org, role_admin):
    response = _client_for(role_admin).post(
        f"/api/v1/orgs/{org.slug}/roles", {"name": "Boss", "permissions": ["org:delete"]}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["error"] == "escalation_denied"
    assert not Role.objects.for_org(org).filter(name="Boss").exists()
    entry = _last_event(org)
    assert (entry.event_name, entry.outcome, entry.data["missing"]) == (
        "access.escalation_denied", "denied", ["org:delete"])


def test_editing_a_role_into_more_power_is_refused(org, role_admin):
    role = RoleFactory(org=org, permissions=["member:read"])
    response = _client_for(role_admin).patch(
        f"/api/v1/orgs/{org.slug}/roles/{role.pk}", {"permissions": ["sso:write"]}, format="json"
    )
    assert response.status_code == 403
    role.refresh_from_db()
    assert role.permissions == ["member:read"]
    assert _last_event(org).event_name == "access.escalation_denied"


def test_raising_ones_own_role_is_refused(org, role_admin):
    response = _client_for(role_admin).patch(
        f"/api/v1/orgs/{org.slug}/members/{role_admin.pk}", {"role": "owner"}, format="json"
    )
    assert response.status_code == 403
    role_admin.refresh_from_db()
    assert role_admin.role == "viewer"
    assert _last_event(org).event_name == "access.escalation_denied"


def test_granting_oneself_a_more_powerful_custom_role_is_refused(org, role_admin):
    strong = RoleFactory(org=org, permissions=["org:delete"])
    response = _client_for(role_admin).patch(
        f"/api/v1/orgs/{org.slug}/members/{role_admin.pk}", {"custom_roles": [str(strong.pk)]},
        format="json",
    )
    assert response.status_code == 403
    assert not RoleAssignment.objects.filter(membership=role_admin, role=strong).exists()


def test_a_member_admin_cannot_demote_or_remove_an_owner(org, owner, role_admin):
    client = _client_for(role_admin)
    url = f"/api/v1/orgs/{org.slug}/members/{owner.pk}"
    assert client.patch(url, {"role": "viewer"}, format="json").status_code == 403
    assert client.delete(url).status_code == 403
    owner.refresh_from_db()
    assert owner.role == "owner"


def test_api_key_with_more_than_the_creator_holds_is_refused(org, role_admin):
    response = _client_for(role_admin).post(
        f"/api/v1/orgs/{org.slug}/api-keys", {"name": "k", "permissions": ["org:delete"]}, format="json"
    )
    assert response.status_code == 403
    assert not ApiKey.objects.for_org(org).exists()
    assert _last_event(org).event_name == "access.escalation_denied"


def test_an_api_key_cannot_mint_a_stronger_key(org, key_client):
    client = key_client(Perm.API_KEY_WRITE, Perm.MEMBER_READ)
    response = client.post(f"/api/v1/orgs/{org.slug}/api-keys",
                           {"name": "k2", "permissions": ["member:write"]}, format="json")
    assert response.status_code == 403
    assert ApiKey.objects.for_org(org).count() == 1


@pytest.mark.parametrize("change", [{"role": "viewer"}, {"status": "suspended"}, None])
def test_the_last_owner_cannot_be_demoted_suspended_or_removed(org, owner, change):
    client = _client_for(owner)
    url = f"/api/v1/orgs/{org.slug}/members/{owner.pk}"
    response = client.patch(url, change, format="json") if change else client.delete(url)
    assert response.status_code == 409
    assert response.json()["error"] == "last_owner"
    owner.refresh_from_db()
    assert (owner.role, owner.status) == ("owner", "active")
    entry = _last_event(org)
    assert (entry.event_name, entry.outcome) == ("access.last_owner_protected", "denied")


def test_an_owner_may_step_down_when_another_owner_remains(org, owner):
    MemberFactory(org=org, role="owner")
    response = _client_for(owner).patch(
        f"/api/v1/orgs/{org.slug}/members/{owner.pk}", {"role": "member"}, format="json"
    )
    assert response.status_code == 200
    assert Membership.objects.for_org(org).get(pk=owner.pk).role == "member"
    entry = _last_event(org)
    assert entry.event_name == "member.updated" and entry.data["previous_role"] == "owner"


def test_team_admin_cannot_raise_their_own_team_standing(org):
    member = MemberFactory(org=org, role="member")
    team = TeamFactory(org=org)
    TeamMembership.objects.create(team=team, membership=member, role="admin")
    response = _client_for(member).patch(
        f"/api/v1/orgs/{org.slug}/teams/{team.pk}/members/{member.pk}", {"role": "owner"}, format="json"
    )
    assert response.status_code == 403
    assert TeamMembership.objects.get(team=team, membership=member).role == "admin"
    assert _last_event(org).event_name == "access.escalation_denied"


def test_nobody_changes_their_own_team_standing_even_where_they_could_change_anothers(org):
    # A team owner (no team:write) may make anyone an owner or an admin, but not touch their own
    # standing: only the self rule refuses this change.
    owner_of_team, other = MemberFactory(org=org, role="member"), MemberFactory(org=org, role="member")
    team = TeamFactory(org=org)
    TeamMembership.objects.create(team=team, membership=owner_of_team, role="owner")
    TeamMembership.objects.create(team=team, membership=other, role="owner")
    client = _client_for(owner_of_team)
    response = client.patch(f"/api/v1/orgs/{org.slug}/teams/{team.pk}/members/{owner_of_team.pk}",
                            {"role": "admin"}, format="json")
    assert response.status_code == 403
    assert TeamMembership.objects.get(team=team, membership=owner_of_team).role == "owner"
    assert _last_event(org).event_name == "access.escalation_denied"
    allowed = client.patch(f"/api/v1/orgs/{org.slug}/teams/{team.pk}/members/{other.pk}",
                           {"role": "admin"}, format="json")
    assert allowed.status_code == 200


def test_team_admin_manages_their_team_but_not_others(org):
    admin = MemberFactory(org=org, role="member")
    team, other_team = TeamFactory(org=org), TeamFactory(org=org)
    TeamMembership.objects.create(team=team, membership=admin, role="admin")
    newcomer = MemberFactory(org=org, role="member")
    client = _client_for(admin)
    ok = client.post(f"/api/v1/orgs/{org.slug}/teams/{team.pk}/members",
                     {"member": str(newcomer.pk)}, format="json")
    assert ok.status_code == 201
    refused = client.post(f"/api/v1/orgs/{org.slug}/teams/{other_team.pk}/members",
                          {"member": str(newcomer.pk)}, format="json")
    assert refused.status_code == 403
    assert not TeamMembership.objects.filter(team=other_team).exists()


def test_joining_a_team_that_grants_more_than_the_actor_holds_is_refused(org):
    # TEAM_WRITE org-wide lets one manage any team, but not hand out what the team grants.
    admin = MemberFactory(org=org, role="member")
    RoleAssignment.objects.create(membership=admin, role=RoleFactory(org=org, permissions=["team:write"]))
    team = TeamFactory(org=org)
    team.roles.add(RoleFactory(org=org, permissions=["org:delete"]))
    newcomer = MemberFactory(org=org, role="viewer")
    response = _client_for(admin).post(f"/api/v1/orgs/{org.slug}/teams/{team.pk}/members",
                                       {"member": str(newcomer.pk)}, format="json")
    assert response.status_code == 403
    assert not TeamMembership.objects.filter(team=team, membership=newcomer).exists()


def test_a_role_id_from_another_org_in_the_body_is_a_404(org, owner):
    from tests.factories import OrgFactory

    foreign = RoleFactory(org=OrgFactory(), permissions=["member:read"])
    member = MemberFactory(org=org)
    response = _client_for(owner).patch(
        f"/api/v1/orgs/{org.slug}/members/{member.pk}", {"custom_roles": [str(foreign.pk)]},
        format="json",
    )
    assert response.status_code == 404
    assert not RoleAssignment.objects.filter(membership=member).exists()


def test_role_removed_takes_effect_on_the_next_request(org):
    member = MemberFactory(org=org, role="viewer")
    assignment = RoleAssignment.objects.create(
        membership=member, role=RoleFactory(org=org, permissions=["audit:read"])
    )
    client = _client_for(member)
    assert client.get(f"/api/v1/orgs/{org.slug}/audit/events").status_code == 200
    assignment.delete()
    assert client.get(f"/api/v1/orgs/{org.slug}/audit/events").status_code == 403


def _team_with_admin_and_owner(org):
    admin, team_owner = MemberFactory(org=org, role="member"), MemberFactory(org=org, role="member")
    team = TeamFactory(org=org)
    TeamMembership.objects.create(team=team, membership=admin, role="admin")
    TeamMembership.objects.create(team=team, membership=team_owner, role="owner")
    return team, admin, team_owner


@pytest.mark.parametrize("how", ["demote", "remove", "delete_team"])
def test_only_team_owners_unmake_team_owners(org, how):
    team, admin, team_owner = _team_with_admin_and_owner(org)
    client = _client_for(admin)
    url = f"/api/v1/orgs/{org.slug}/teams/{team.pk}"
    before = AuditEntry.objects.for_org(org).count()
    if how == "demote":
        response = client.patch(f"{url}/members/{team_owner.pk}", {"role": "member"}, format="json")
    elif how == "remove":
        response = client.delete(f"{url}/members/{team_owner.pk}")
    else:
        response = client.delete(url)
    assert response.status_code == 403 and response.json()["error"] == "escalation_denied"
    assert TeamMembership.objects.get(team=team, membership=team_owner).role == "owner"
    assert AuditEntry.objects.for_org(org).count() == before + 1
    assert _last_event(org).event_name == "access.escalation_denied"
    # The team's owner may do each of these.
    peer = MemberFactory(org=org, role="member")
    TeamMembership.objects.create(team=team, membership=peer, role="owner")
    owner_client = _client_for(team_owner)
    assert owner_client.delete(f"{url}/members/{peer.pk}").status_code == 204


def test_a_team_admin_still_manages_the_teams_plain_members(org):
    team, admin, _ = _team_with_admin_and_owner(org)
    plain = MemberFactory(org=org, role="member")
    TeamMembership.objects.create(team=team, membership=plain, role="member")
    client = _client_for(admin)
    url = f"/api/v1/orgs/{org.slug}/teams/{team.pk}/members/{plain.pk}"
    assert client.patch(url, {"role": "admin"}, format="json").status_code == 200
    assert client.delete(url).status_code == 204
