"""Members, teams, roles and API keys: search, filters and cursor pages, as the admin API pages them,
and a fixed number of queries per page (and per API page) whatever the org's size."""

import re

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from accounts.models import WebAuthnCredential
from tests.factories import (
    MemberFactory,
    OrgFactory,
    RoleFactory,
    TeamFactory,
    TeamMemberFactory,
    UserFactory,
    api_key_for,
)
from tests.people_console.helpers import body, owner_client, queries_of
from tests.scale import members_bulk

pytestmark = pytest.mark.django_db


def _emails(html: str) -> list[str]:
    return re.findall(r'/members/[0-9a-f-]{36}/">([^<]+)</a>', html)


def _next(html: str) -> str | None:
    found = re.search(r'<a href="([^"]+)" rel="next">', html)
    return found.group(1).replace("&amp;", "&") if found else None


def _previous(html: str) -> str | None:
    found = re.search(r'<a href="([^"]+)" rel="prev">', html)
    return found.group(1).replace("&amp;", "&") if found else None


def test_members_are_found_by_email_or_name_and_each_links_to_their_page():
    org = OrgFactory()
    client, _ = owner_client(org)
    ada = MemberFactory(org=org, user=UserFactory(email="ada@example.com", display_name="Ada Lovelace"))
    MemberFactory(org=org, user=UserFactory(email="grace@example.com", display_name="Grace Hopper"))
    path = f"/orgs/{org.slug}/members/"
    assert _emails(body(client, path, q="ADA@")) == ["ada@example.com"]
    html = body(client, path, q="hopper")
    assert _emails(html) == ["grace@example.com"]
    assert f'href="/orgs/{org.slug}/members/{ada.pk}/"' in body(client, path, q="lovelace")
    assert "No member matches “nobody”." in body(client, path, q="nobody")


def test_members_filter_by_role_status_and_source_and_a_bad_filter_is_a_400():
    org = OrgFactory()
    client, owner = owner_client(org)
    MemberFactory(org=org, role="viewer", user=UserFactory(email="viewer@example.com"))
    MemberFactory(org=org, status="suspended", user=UserFactory(email="off@example.com"))
    MemberFactory(org=org, source="scim", user=UserFactory(email="idp@example.com"))
    MemberFactory(org=org, status="invited", user=UserFactory(email="asked@example.com"))
    path = f"/orgs/{org.slug}/members/"
    assert _emails(body(client, path, role="viewer")) == ["viewer@example.com"]
    assert _emails(body(client, path, status="suspended")) == ["off@example.com"]
    assert _emails(body(client, path, source="scim")) == ["idp@example.com"]
    assert _emails(body(client, path, status="invited")) == ["asked@example.com"]
    assert _emails(body(client, path, role="owner", status="active")) == [owner.user.email]
    assert _emails(body(client, path, role="viewer", q="off")) == []
    refused = body(client, path, expect=400, role="emperor")
    assert "Select a valid choice" in refused and _emails(refused) == []


def test_members_filter_by_second_factor_on_the_page_and_the_api_alike():
    org = OrgFactory()
    client, owner = owner_client(org)
    phone = MemberFactory(org=org, user=UserFactory(email="phone@example.com"))
    TOTPDevice.objects.create(user=phone.user, name="phone", confirmed=True)
    key = MemberFactory(org=org, user=UserFactory(email="key@example.com"))
    WebAuthnCredential.objects.create(user=key.user, name="key", credential_id="k", public_key=b"p",
                                      confirmed=True)
    draft = MemberFactory(org=org, user=UserFactory(email="draft@example.com"))
    TOTPDevice.objects.create(user=draft.user, name="draft", confirmed=False)  # not enrolled
    path = f"/orgs/{org.slug}/members/"
    enrolled = {"phone@example.com", "key@example.com"}
    bare = {"draft@example.com", owner.user.email}
    assert set(_emails(body(client, path, mfa="enrolled"))) == enrolled
    assert set(_emails(body(client, path, mfa="none"))) == bare
    api = f"/api/v1/orgs/{org.slug}/members"
    for mfa, expected in (("enrolled", enrolled), ("none", bare)):
        rows = client.get(api, {"mfa": mfa}).json()["results"]
        assert {row["email"] for row in rows} == expected, mfa
    owners = client.get(api, {"role": "owner"}).json()["results"]
    assert {row["email"] for row in owners} == {owner.user.email}
    refused = client.get(api, {"status": "emperor"})
    assert refused.status_code == 400 and "status" in refused.json()["fields"]


def test_members_page_forward_and_back_keeping_search_and_filters():
    org = OrgFactory()
    client, _ = owner_client(org)
    members_bulk(org, 120)
    path = f"/orgs/{org.slug}/members/"
    first = body(client, path, q="person", role="member")
    rows = _emails(first)
    assert len(rows) == 50 and _previous(first) is None
    following = _next(first)
    assert "q=person" in following and "role=member" in following
    second = body(client, following)
    assert len(_emails(second)) == 50 and not set(_emails(second)) & set(rows)
    back = body(client, _previous(second))
    assert _emails(back) == rows
    third = body(client, _next(second))
    assert len(_emails(third)) == 20 and _next(third) is None
    assert client.get(path, {"cursor": "not-a-cursor"}).status_code == 404


def test_the_page_shows_the_rows_the_api_page_does():
    org = OrgFactory()
    client, _ = owner_client(org)
    members_bulk(org, 60)
    page = _emails(body(client, f"/orgs/{org.slug}/members/", q="person"))
    api = client.get(f"/api/v1/orgs/{org.slug}/members", {"q": "person"}).json()
    assert page == [row["email"] for row in api["results"]]


def test_teams_roles_and_api_keys_are_searched_and_paged():
    org = OrgFactory()
    client, owner = owner_client(org)
    for n in range(55):
        TeamFactory(org=org, name=f"Team {n:02d}")
        RoleFactory(org=org, name=f"Role {n:02d}")
    TeamFactory(org=org, name="Payments", description="money")
    RoleFactory(org=org, name="Auditors", description="reads the log")
    api_key_for(org, ["member:read"], name="Deploy bot", created_by=owner.user)
    for n in range(55):
        api_key_for(org, ["member:read"], name=f"key {n:02d}", created_by=owner.user)
    for path, q, found in (("teams/", "money", "Payments"), ("roles/", "the log", "Auditors"),
                           ("api-keys/", "deploy", "Deploy bot")):
        html = body(client, f"/orgs/{org.slug}/{path}", q=q)
        assert found in html and "Team 00" not in html and "Role 00" not in html and "key 00" not in html
        everything = body(client, f"/orgs/{org.slug}/{path}")
        assert _next(everything), path
        assert _next(body(client, _next(everything))) is None


# --- a fixed number of queries whatever the size ------------------------------------------------


def _fill(org, owner, size):
    members = members_bulk(org, size)
    roles = [RoleFactory(org=org) for _ in range(3)]
    for n in range(size):
        team = TeamFactory(org=org)
        team.roles.add(roles[n % 3])
        TeamMemberFactory(team=team, membership=members[n])
        members[n].custom_roles.add(roles[(n + 1) % 3])
        api_key_for(org, ["member:read"], created_by=owner.user)
        RoleFactory(org=org)


@pytest.mark.parametrize("path", ["members/", "teams/", "roles/", "api-keys/"])
def test_each_list_page_costs_the_same_queries_at_any_size(path):
    counts = []
    for size in (5, 60):
        org = OrgFactory()
        client, owner = owner_client(org)
        _fill(org, owner, size)
        counts.append(queries_of(client, f"/orgs/{org.slug}/{path}"))
    assert counts[0] == counts[1], counts


@pytest.mark.parametrize("path", ["members", "teams", "roles", "api-keys"])
def test_each_api_list_costs_the_same_queries_at_any_size(path):
    counts = []
    for size in (5, 60):
        org = OrgFactory()
        _, owner = owner_client(org)
        _fill(org, owner, size)
        _, secret = api_key_for(org, ["member:read", "team:read", "role:read", "api_key:read"])
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        counts.append(queries_of(api, f"/api/v1/orgs/{org.slug}/{path}"))
    assert counts[0] == counts[1], counts


def test_a_team_page_costs_the_same_queries_at_any_size():
    counts = []
    for size in (5, 60):
        org = OrgFactory()
        client, _ = owner_client(org)
        team = TeamFactory(org=org)
        team.roles.add(*[RoleFactory(org=org) for _ in range(size // 5)])
        for membership in members_bulk(org, size):
            TeamMemberFactory(team=team, membership=membership)
        counts.append(queries_of(client, f"/orgs/{org.slug}/teams/{team.pk}/"))
    assert counts[0] == counts[1], counts
