"""The team page adds a member by typing: a text input the console's picker fills from the members API
(no <select> of every member), resolved by address within the org, with a clear field error."""

import pytest

from agents.models import AgentPolicy
from rbac.models import TeamMembership
from tests.agents_pages.test_delegation_pages import SECURITY_FORM
from tests.factories import MemberFactory, OrgFactory, TeamFactory, UserFactory
from tests.helpers import audit_events
from tests.people_console.helpers import body, owner_client
from tests.scale import members_bulk

pytestmark = pytest.mark.django_db


def _team_path(team) -> str:
    return f"/orgs/{team.org.slug}/teams/{team.pk}/"


def test_the_team_page_offers_a_searching_picker_not_a_list_of_everyone():
    org = OrgFactory()
    client, _ = owner_client(org)
    members_bulk(org, 30)
    team = TeamFactory(org=org)
    html = body(client, _team_path(team))
    assert f'data-picker="/api/v1/orgs/{org.slug}/members"' in html
    assert 'name="member"' in html and 'list="member-options"' in html and "<datalist" in html
    assert "person0001@" not in html and '<select id="id_membership"' not in html
    found = client.get(f"/api/v1/orgs/{org.slug}/members", {"q": "person0007", "page_size": 20}).json()
    assert [row["email"] for row in found["results"]] == [f"person0007@{org.slug}.example"]


def test_a_typed_address_adds_that_member_whatever_its_case():
    org = OrgFactory()
    client, _ = owner_client(org)
    ada = MemberFactory(org=org, user=UserFactory(email="ada@example.com"))
    team = TeamFactory(org=org)
    response = client.post(_team_path(team), {"action": "add_member", "member": " ADA@example.com ",
                                              "role": "admin"})
    assert response.status_code == 302
    assert TeamMembership.objects.get(team=team, membership=ada).role == "admin"
    assert audit_events(org, "team.member_added").exists()


@pytest.mark.parametrize("typed", ["nobody@example.com", "stranger@example.com", "not an address"])
def test_an_address_no_member_of_the_org_has_is_a_field_error_and_changes_nothing(typed):
    org, other = OrgFactory(), OrgFactory()
    client, _ = owner_client(org)
    MemberFactory(org=other, user=UserFactory(email="stranger@example.com"))
    team = TeamFactory(org=org)
    response = client.post(_team_path(team), {"action": "add_member", "member": typed, "role": "member"})
    assert response.status_code == 400
    html = response.content.decode()
    assert f"No member of {org.name} has the address" in html and 'role="alert"' in html
    assert not TeamMembership.objects.filter(team=team).exists()
    assert not audit_events(org, "team.member_added").exists()


def test_someone_already_in_the_team_is_a_field_error():
    org = OrgFactory()
    client, _ = owner_client(org)
    ada = MemberFactory(org=org, user=UserFactory(email="ada@example.com"))
    team = TeamFactory(org=org)
    TeamMembership.objects.create(team=team, membership=ada)
    response = client.post(_team_path(team), {"action": "add_member", "member": "ada@example.com",
                                              "role": "member"})
    assert response.status_code == 400 and "ada@example.com is already in" in response.content.decode()


def test_a_large_teams_members_are_paged_and_searched():
    org = OrgFactory()
    client, _ = owner_client(org)
    team = TeamFactory(org=org)
    for membership in members_bulk(org, 70):
        TeamMembership.objects.create(team=team, membership=membership)
    html = body(client, _team_path(team))
    assert html.count('name="action" value="remove_member"') == 50 and 'rel="next"' in html
    found = body(client, _team_path(team), q="person0033")
    assert found.count('name="action" value="remove_member"') == 1 and f"person0033@{org.slug}" in found


def test_the_security_policy_picks_the_fallback_owner_by_typing_not_from_everyone():
    org = OrgFactory()
    client, owner = owner_client(org)
    members_bulk(org, 30)
    path = f"/orgs/{org.slug}/security/"
    html = body(client, path)
    assert 'list="fallback-owner-options"' in html and '<datalist id="fallback-owner-options">' in html
    assert f'data-picker="/api/v1/orgs/{org.slug}/members"' in html and "person0001@" not in html
    form = {**SECURITY_FORM, "max_delegation_depth": 3, "delegation_max_lifetime_seconds": 86400,
            "deprovision_agents": "reassign", "deprovision_fallback_owner": f"PERSON0002@{org.slug}.example"}
    saved = client.post(path, form)
    assert saved.status_code == 302, saved.content.decode()[:2000]
    policy = AgentPolicy.objects.get(org=org)
    assert policy.deprovision_fallback_owner.user.email == f"person0002@{org.slug}.example"
    assert f'value="person0002@{org.slug}.example"' in body(client, path)  # shown as typed back

