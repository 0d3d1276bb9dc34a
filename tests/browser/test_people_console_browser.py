"""The people pages in Chromium, at 1,000 members: search finds a member, the pager pages forward and
back, the team picker finds a member as one types and adds them, a member's page shows where each
permission comes from, removing a member confirms with its consequences, and at 1,280 px every
table fits its container."""

import re

import pytest

from accounts.models import Membership
from rbac.models import TeamMembership
from tests.browser.test_browser import log_in, nav
from tests.factories import RoleFactory, TeamFactory, TeamMemberFactory
from tests.scale import members_bulk

# Skips (or, under IAM_REQUIRE_BROWSER=1, conftest fails the run) when Playwright is absent.
expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FITS = """() => [...document.querySelectorAll('.table-wrap')].every(w => w.scrollWidth <= w.clientWidth)
              && document.documentElement.scrollWidth <= 1280"""


def _fits(page, tmp_path, name):
    assert page.evaluate(FITS), f"{name} overflows at 1,280 px"
    page.screenshot(path=tmp_path / f"{name}.png", full_page=False)


@pytest.fixture
def big(owner):
    members_bulk(owner.org, 1000)
    return owner


def test_search_and_page_a_thousand_members_at_1280(page, live_server, big, tmp_path):
    org = big.org
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, live_server.url, big.user.email)
    nav(page, "Members")
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(50)
    _fits(page, tmp_path, "members")
    first_page = rows.first.inner_text()
    page.get_by_role("link", name="Next page →").click()
    expect(rows).to_have_count(50)
    assert rows.first.inner_text() != first_page
    page.get_by_role("link", name="← Previous page").click()
    expect(rows.first).to_have_text(first_page)

    page.get_by_label("Search members").fill("person0742")
    page.get_by_role("button", name="Search").click()
    expect(rows).to_have_count(1)
    expect(page.get_by_role("link", name=f"person0742@{org.slug}.example", exact=True)).to_be_visible()
    page.get_by_label("Filter by role").select_option("viewer")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("cell", name=re.compile("No member matches"))).to_be_visible()


def test_the_team_picker_finds_and_adds_a_member_by_typing(page, live_server, big):
    org = big.org
    team = TeamFactory(org=org, name="Platform")
    log_in(page, live_server.url, big.user.email)
    page.goto(f"{live_server.url}/orgs/{org.slug}/teams/{team.pk}/")
    picker = page.get_by_label("Member", exact=True)
    picker.press_sequentially("person0513", delay=30)
    option = page.locator("#member-options option")
    expect(option).to_have_count(1)
    assert option.get_attribute("value") == f"person0513@{org.slug}.example"
    picker.fill(option.get_attribute("value"))  # what choosing the offered option does
    page.get_by_label("Team role").select_option("admin")
    page.get_by_role("button", name="Add to team").click()
    expect(page.get_by_role("status")).to_contain_text(f"Added person0513@{org.slug}.example")
    added = Membership.objects.for_org(org).get(user__email=f"person0513@{org.slug}.example")
    assert TeamMembership.objects.get(team=team, membership=added).role == "admin"

    picker = page.get_by_label("Member", exact=True)
    picker.fill("nobody@example.com")
    page.get_by_role("button", name="Add to team").click()
    expect(page.get_by_role("alert")).to_contain_text(f"No member of {org.name} has the address")


def test_a_members_page_shows_where_permissions_come_from_and_fits(page, live_server, big, tmp_path):
    org = big.org
    ada = (Membership.objects.for_org(org).select_related("user")
           .get(user__email=f"person0042@{org.slug}.example"))
    team = TeamFactory(org=org, name="Platform")
    team.roles.add(RoleFactory(org=org, name="Key keepers", permissions=["api_key:write"]))
    TeamMemberFactory(team=team, membership=ada)
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, live_server.url, big.user.email)
    nav(page, "Members")
    page.get_by_label("Search members").fill("person0042")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=ada.user.email, exact=True).click()
    expect(page.get_by_role("heading", name=ada.user.email)).to_be_visible()
    rows = page.get_by_test_id("effective-permissions").get_by_role("row")
    expect(rows.filter(has_text="api_key:write")).to_contain_text("Custom role Key keepers via team Platform")
    expect(rows.filter(has_text="member:read")).to_contain_text("Built-in role Member")
    _fits(page, tmp_path, "member-detail")


def test_removing_a_member_confirms_with_its_consequences(page, live_server, owner, tmp_path):
    org = owner.org
    leaver = members_bulk(org, 1, prefix="leaver")[0]
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, live_server.url, owner.user.email)
    nav(page, "Members")
    page.get_by_role("link", name=f"Remove {leaver.user.email}").click()
    expect(page.get_by_role("heading", name=f"Remove {leaver.user.email}?")).to_be_visible()
    expect(page.get_by_test_id("consequences")).to_contain_text("0 API keys they created are revoked")
    assert Membership.objects.for_org(org).filter(pk=leaver.pk).exists()  # asking changed nothing
    _fits(page, tmp_path, "member-remove")
    page.get_by_role("button", name="Remove member").click()
    expect(page.get_by_role("status")).to_contain_text(f"Removed {leaver.user.email}.")
    assert not Membership.objects.for_org(org).filter(pk=leaver.pk).exists()


def test_teams_roles_and_api_keys_fit_at_1280(page, live_server, owner, tmp_path):
    org = owner.org
    for n in range(60):
        TeamFactory(org=org, name=f"Team {n:02d}", description="a team with a longer description " * 2)
        RoleFactory(org=org, name=f"Role {n:02d}", permissions=["agent:read", "member:read", "run:read"])
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, live_server.url, owner.user.email)
    for name, slug in (("Teams", "teams"), ("Roles", "roles"), ("API keys", "api-keys")):
        nav(page, name)
        _fits(page, tmp_path, slug)
    nav(page, "Teams")
    page.get_by_label("Search teams").fill("Team 59")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("table tbody tr")).to_have_count(1)
