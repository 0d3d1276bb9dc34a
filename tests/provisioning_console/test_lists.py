"""The provisioning and SSO lists: SCIM tokens searched, filtered by state and paged on the page and
in the admin API alike; SCIM groups, SSO connections and domains searched and paged; and each page
and API list at the same number of queries whatever the org holds."""

import datetime
import re

import pytest
from django.test import Client
from django.utils import timezone

from audit.events import AuditEvent
from tests.factories import MemberFactory, OrgFactory, ScimGroupFactory, sign_in
from tests.provisioning_console.conftest import (
    api_client,
    api_path,
    html,
    linked,
    oidc_row,
    queries,
    refused,
    scim_url,
    sso_url,
    token,
    tokens_bulk,
    verified_domain,
)

pytestmark = pytest.mark.django_db
NOW = timezone.now


def names(page_html: str) -> list[str]:
    return re.findall(r'data-testid="token-name">([^<]+)<', page_html)


def next_link(page_html: str) -> str | None:
    found = re.search(r'<a href="([^"]+)" rel="next">', page_html)
    return found.group(1).replace("&amp;", "&") if found else None


def previous_link(page_html: str) -> str | None:
    found = re.search(r'<a href="([^"]+)" rel="prev">', page_html)
    return found.group(1).replace("&amp;", "&") if found else None


@pytest.fixture
def states(org, owner):
    """One token in each state the filter knows (and its creator's member page to link to)."""
    day = datetime.timedelta(days=1)
    made = {
        "working": token(org, "working", maker=owner, last_used_at=NOW()),
        "rotating": token(org, "rotating", maker=owner, last_used_at=NOW(), expires_at=NOW() + day),
        "revoked": token(org, "revoked", maker=owner, revoked_at=NOW() - day),
        "expired": token(org, "expired", maker=owner, expires_at=NOW() - day),
        "quiet": token(org, "quiet", maker=owner, age_days=90, last_used_at=NOW() - 31 * day),
        "never": token(org, "never", maker=owner, age_days=3),
        "brand new": token(org, "brand new", maker=owner, age_days=0),
        "refused": token(org, "refused", maker=owner, last_used_at=NOW()),
        "refused long ago": token(org, "refused long ago", maker=owner, last_used_at=NOW()),
    }
    refused(org, made["refused"], days_ago=1, event=AuditEvent.SCIM_REQUEST_REJECTED)
    refused(org, made["refused long ago"], days_ago=20)
    return made


EXPECTED = {
    "active": {"working", "quiet", "never", "brand new", "refused", "refused long ago"},
    "expiring": {"rotating"},
    "revoked": {"revoked", "expired"},
    "idle": {"quiet", "never"},
    "failing": {"refused"},
}


@pytest.mark.parametrize("state", list(EXPECTED))
def test_tokens_filter_by_state_on_the_page_and_in_the_api(org, client, states, state):
    page = client.get(scim_url("tokens", org), {"state": state})
    assert page.status_code == 200 and set(names(html(page))) == EXPECTED[state]
    api = api_client(org, ["scim:read"]).get(api_path(org, "scim-tokens"), {"state": state})
    assert api.status_code == 200 and {t["name"] for t in api.json()["results"]} == EXPECTED[state]


def test_tokens_page_shows_last_failure_idle_and_failing_and_the_api_the_last_failure(org, client, states):
    page = html(client.get(scim_url("tokens", org), {"q": "refused"}))
    rows = page.split('data-testid="token-row"')[1:]
    assert len(rows) == 2
    by_name = {names('data-testid="token-row"' + row)[0]: row for row in rows}
    assert 'data-testid="failing"' in by_name["refused"]
    assert 'data-testid="failing"' not in by_name["refused long ago"]
    quiet = html(client.get(scim_url("tokens", org), {"q": "quiet"}))
    assert 'data-testid="idle"' in quiet and 'data-testid="failing"' not in quiet
    api = api_client(org, ["scim:read"]).get(api_path(org, "scim-tokens")).json()["results"]
    listed = {t["name"]: t for t in api}
    assert listed["working"]["last_failure_at"] is None
    assert listed["refused"]["last_failure_at"] is not None and listed["quiet"]["last_failure_at"] is None


def test_a_token_refused_in_another_org_is_no_failure_here(org, client, owner):
    mine = token(org, "mine", maker=owner, last_used_at=NOW())
    other = OrgFactory()
    # An entry of the other org naming this token's id as actor (it cannot, but the query must not look).
    refused(other, mine, days_ago=0)
    assert names(html(client.get(scim_url("tokens", org), {"state": "failing"}))) == []


def test_tokens_search_by_name_and_link_their_creator(org, client, owner, states):
    page = html(client.get(scim_url("tokens", org), {"q": "REVOK"}))
    assert names(page) == ["revoked"] and 'value="REVOK"' in page
    assert f'href="/orgs/{org.slug}/members/{owner.pk}/">{owner.user.email}</a>' in page
    assert "No token matches “nobody”." in html(client.get(scim_url("tokens", org), {"q": "nobody"}))
    api = api_client(org, ["scim:read"]).get(api_path(org, "scim-tokens"), {"q": "REVOK"})
    assert [t["name"] for t in api.json()["results"]] == ["revoked"]
    both = html(client.get(scim_url("tokens", org), {"q": "refused", "state": "failing"}))
    assert names(both) == ["refused"]


def test_a_token_whose_creator_left_shows_the_address_without_a_link(org, client):
    gone = MemberFactory(org=org)
    token(org, "orphan", maker=gone)
    email, pk = gone.user.email, gone.pk
    gone.delete()
    page = html(client.get(scim_url("tokens", org)))
    assert email in page and f"/members/{pk}/" not in page


def test_an_unknown_state_is_a_400_on_the_page_and_in_the_api(org, client, states):
    page = client.get(scim_url("tokens", org), {"state": "asleep"})
    assert page.status_code == 400 and "Select a valid choice" in html(page) and names(html(page)) == []
    api = api_client(org, ["scim:read"]).get(api_path(org, "scim-tokens"), {"state": "asleep"})
    assert api.status_code == 400 and "state" in api.json()["fields"]


def test_tokens_page_forward_and_back_in_the_api_order_keeping_search_and_state(org, client, owner):
    tokens_bulk(org, 120, maker=owner)
    tokens_bulk(org, 5, maker=owner, prefix="other")
    first = html(client.get(scim_url("tokens", org), {"q": "idp-", "state": "active"}))
    assert names(first) == [f"idp-{n:03d}" for n in range(50)] and previous_link(first) is None
    following = next_link(first)
    assert "q=idp-" in following and "state=active" in following
    second = html(client.get(following))
    assert names(second) == [f"idp-{n:03d}" for n in range(50, 100)]
    third = html(client.get(next_link(second)))
    assert names(third) == [f"idp-{n:03d}" for n in range(100, 120)] and next_link(third) is None
    assert names(html(client.get(previous_link(third)))) == names(second)
    api = api_client(org, ["scim:read"]).get(api_path(org, "scim-tokens"), {"q": "idp-"}).json()
    assert [t["name"] for t in api["results"]] == names(first) and api["next"]


def _tokens_world(org, owner, count):
    made = tokens_bulk(org, count, maker=owner, last_used_at=NOW())
    for t in made[:3]:
        refused(org, t)
    for n in range(count):
        if n % 7 == 0:
            MemberFactory(org=org)


@pytest.mark.parametrize("params", [{}, {"state": "failing"}, {"state": "idle", "q": "idp"}])
def test_tokens_page_and_api_cost_the_same_queries_at_3_and_120_tokens(owner, params):
    costs = []
    for size in (3, 120):
        org = OrgFactory()
        maker = MemberFactory(org=org, role="owner")
        _tokens_world(org, maker, size)
        client = sign_in(Client(), maker.user, mfa=True)
        costs.append((queries(client, scim_url("tokens", org), params),
                      queries(api_client(org, ["scim:read"]), api_path(org, "scim-tokens"), params)))
    assert costs[0] == costs[1], costs


def test_groups_are_searched_and_paged_at_the_same_queries(org, client):
    costs = []
    for size in (3, 120):
        other = OrgFactory()
        for n in range(size):
            ScimGroupFactory(org=other, display_name=f"Team {n:03d}")
        maker = MemberFactory(org=other, role="owner")
        other_client = sign_in(Client(), maker.user, mfa=True)
        costs.append(queries(other_client, scim_url("mappings", other)))
        if size == 120:
            first = html(other_client.get(scim_url("mappings", other)))
            assert "<td>Team 049</td>" in first and "<td>Team 050</td>" not in first
            assert "<td>Team 050</td>" in html(other_client.get(next_link(first)))
            found = html(other_client.get(scim_url("mappings", other), {"q": "team 07"}))
            assert found.count("<td>Team 07") == 10 and next_link(found) is None
    assert costs[0] == costs[1], costs
    assert "No group matches “x”." in html(client.get(scim_url("mappings", org), {"q": "x"}))


def test_provisioning_log_pages_at_the_same_queries_at_two_sizes():
    costs = []
    for size in (3, 120):
        org = OrgFactory()
        maker = MemberFactory(org=org, role="owner")
        for t in tokens_bulk(org, size, maker=maker):
            refused(org, t)
        client = sign_in(Client(), maker.user, mfa=True)
        costs.append(queries(client, scim_url("log", org)))
        if size == 120:
            first = html(client.get(scim_url("log", org)))
            assert first.count("scim.auth_failed") == 50 and "Older entries →" in first
    assert costs[0] == costs[1], costs


# --- SSO ------------------------------------------------------------------------------------------


def test_connections_are_searched_paged_and_count_the_people_linked(org, client, owner):
    okta = oidc_row(org, "Okta", "okta")
    oidc_row(org, "Google", "google-ws")
    for n in range(3):
        linked(okta, MemberFactory(org=org))
    page = html(client.get(sso_url("connections", org), {"q": "GOOGLE-W"}))
    assert ">Google</a>" in page and ">Okta</a>" not in page
    every = html(client.get(sso_url("connections", org)))
    row = every.split(">Okta</a>")[1].split("</tr>")[0]
    assert '<td data-testid="linked">3</td>' in row
    assert "No connection matches “x”." in html(client.get(sso_url("connections", org), {"q": "x"}))
    api = api_client(org, ["sso:read"]).get(api_path(org, "sso-connections"), {"q": "google-w"}).json()
    assert [c["name"] for c in api["results"]] == ["Google"]


def test_connections_page_by_name(org, client):
    for n in range(55):
        oidc_row(org, f"IdP {n:02d}", f"idp-{n:02d}")
    first = html(client.get(sso_url("connections", org)))
    assert ">IdP 49</a>" in first and ">IdP 50</a>" not in first
    second = html(client.get(next_link(first)))
    assert ">IdP 50</a>" in second and ">IdP 54</a>" in second and ">IdP 49</a>" not in second


def test_domains_are_searched_and_paged(org, client):
    for n in range(55):
        verified_domain(org, f"d{n:02d}.example")
    first = html(client.get(sso_url("domains", org)))
    assert 'data-testid="domain-d49.example"' in first and 'data-testid="domain-d50.example"' not in first
    assert 'data-testid="domain-d54.example"' in html(client.get(next_link(first)))
    found = html(client.get(sso_url("domains", org), {"q": "D3"}))
    assert found.count('data-testid="domain-d3') == 10 and 'data-testid="domain-d40' not in found
    assert "No domain matches “nowhere”." in html(client.get(sso_url("domains", org), {"q": "nowhere"}))


def test_sso_lists_and_their_api_lists_cost_the_same_queries_at_two_sizes():
    costs = {}
    for connections, domains in ((2, 3), (60, 120)):
        org = OrgFactory()
        maker = MemberFactory(org=org, role="owner")
        for n in range(connections):
            c = oidc_row(org, f"IdP {n:02d}", f"idp-{n:02d}")
            linked(c, MemberFactory(org=org))
        for n in range(domains):
            verified_domain(org, f"d{n:03d}.{org.slug}.example")
        client = sign_in(Client(), maker.user, mfa=True)
        api = api_client(org, ["sso:read"])
        costs[connections] = (queries(client, sso_url("connections", org)),
                              queries(client, sso_url("domains", org)),
                              queries(api, api_path(org, "sso-connections")),
                              queries(api, api_path(org, "domains")))
    assert costs[2] == costs[60], costs


# --- Another org's ids ------------------------------------------------------------------------------


def test_another_orgs_tokens_connections_and_domains_are_404_here(org, client):
    other = OrgFactory()
    maker = MemberFactory(org=other, role="owner")
    theirs = token(other, "theirs", maker=maker)
    connection = oidc_row(other, "Theirs", "theirs")
    domain = verified_domain(other, "theirs.example")
    for path in (scim_url("token-revoke", org, pk=theirs.pk),
                 sso_url("connection-detail", org, pk=connection.pk),
                 sso_url("connection-delete", org, pk=connection.pk),
                 sso_url("domain-remove", org, pk=domain.pk)):
        assert client.get(path).status_code == 404, path
        assert client.post(path, {"confirm": "yes", "grace_seconds": "0"}).status_code == 404, path
    theirs.refresh_from_db()
    assert theirs.revoked_at is None and connection.__class__.objects.filter(pk=connection.pk).exists()
    assert domain.__class__.objects.filter(pk=domain.pk).exists()
    assert "theirs" not in html(client.get(scim_url("tokens", org)))
    assert "Theirs" not in html(client.get(sso_url("connections", org)))
    assert "theirs.example" not in html(client.get(sso_url("domains", org)))
    for path in (scim_url("tokens", other), sso_url("connections", other), sso_url("domains", other)):
        assert client.get(path).status_code == 404, path


def test_a_provisioning_log_cursor_of_digits_no_int_reads_is_the_newest_page(org, client):
    assert client.get(scim_url("log", org), {"before": "²"}).status_code == 200
