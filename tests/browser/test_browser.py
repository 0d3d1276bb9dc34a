"""Each page family driven through a real browser: log in on the login page, then use the page."""

import csv
import io
import re
import urllib.request
from urllib.parse import urlsplit

import pytest

from accounts.models import ApiKey, Membership, SecurityPolicy
from accounts.policy import policy_for_org
from agents.models import AgentPolicy
from agents.policy import agent_policy_for_org
from rbac.guard import access_for_user
from rbac.models import Role, Team, TeamMembership
from rbac.policies import team_create
from tests.factories import PASSWORD, MemberFactory, OrgFactory, UserFactory

# Skips (or, under IAM_REQUIRE_BROWSER=1, conftest fails the run) when Playwright is absent.
expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def log_in(page, base, email, path="/login/"):
    page.goto(base + path)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def nav(page, name):
    """Follow an org nav link and wait for its page, so what a test reads next is that page's."""
    link = page.get_by_role("navigation", name="Organization").get_by_role("link", name=name, exact=True)
    path = urlsplit(link.get_attribute("href")).path
    link.click()
    page.wait_for_url(lambda url: urlsplit(url).path == path)
    page.wait_for_load_state()


def test_login_page_is_keyboard_friendly(page, live_server, owner):
    page.goto(live_server.url + "/login/")
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Skip to main content")
    page.get_by_label("Email").fill(owner.user.email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Email or password is incorrect.")


def test_invite_a_member(page, live_server, owner):
    org = owner.org
    members_path = f"/orgs/{org.slug}/members/"
    page.goto(live_server.url + members_path)
    expect(page).to_have_url(re.compile(r"/login/\?next="))
    page.get_by_label("Email").fill(owner.user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(live_server.url + members_path)
    expect(page.get_by_role("heading", name="Members")).to_be_visible()
    page.get_by_label("Email").fill("grace@example.com")
    page.get_by_label("Role", exact=True).select_option("viewer")  # not "Filter by role"
    page.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_role("status")).to_contain_text("Invited grace@example.com")
    expect(page.get_by_role("cell", name="grace@example.com", exact=True)).to_be_visible()
    invited = Membership.objects.for_org(org).get(user__email="grace@example.com")
    assert (invited.role, invited.status) == ("viewer", "invited")


def test_create_a_team_and_add_a_member(page, live_server, owner):
    org = owner.org
    colleague = MemberFactory(org=org, user=UserFactory(email="ada@example.com"))
    log_in(page, live_server.url, owner.user.email)
    nav(page, "Teams")
    page.get_by_label("Name", exact=True).fill("Platform")
    page.get_by_role("button", name="Create team").click()
    expect(page.get_by_role("heading", name="Platform")).to_be_visible()
    page.get_by_label("Member", exact=True).fill("ada@example.com")
    page.get_by_label("Team role").select_option("admin")
    page.get_by_role("button", name="Add to team").click()
    expect(page.get_by_role("cell", name="ada@example.com", exact=True)).to_be_visible()
    team = Team.objects.for_org(org).get(name="Platform")
    assert TeamMembership.objects.get(team=team, membership=colleague).role == "admin"


def test_create_a_role_with_two_permissions(page, live_server, owner):
    log_in(page, live_server.url, owner.user.email)
    nav(page, "Roles")
    page.get_by_role("link", name="New custom role").click()
    page.get_by_label("Name", exact=True).fill("Agent operators")
    page.get_by_role("checkbox", name=re.compile(r"^agent:read ")).check()
    page.get_by_role("checkbox", name=re.compile(r"^run:write ")).check()
    page.get_by_role("button", name="Create role").click()
    expect(page.get_by_role("link", name="Agent operators")).to_be_visible()
    role = Role.objects.for_org(owner.org).get(name="Agent operators")
    assert sorted(role.permissions) == ["agent:read", "run:write"]


def test_create_an_api_key_and_read_the_secret_once(page, live_server, owner):
    org = owner.org
    log_in(page, live_server.url, owner.user.email)
    nav(page, "API keys")
    page.get_by_label("Name", exact=True).fill("Deploy bot")
    page.get_by_role("checkbox", name=re.compile(r"^member:read ")).check()
    page.get_by_role("checkbox", name=re.compile(r"^team:read ")).check()
    page.get_by_role("button", name="Create API key").click()
    secret = page.get_by_label("Secret", exact=True).input_value()
    key = ApiKey.objects.for_org(org).get(name="Deploy bot")
    assert secret.startswith(f"iamk_{key.lookup_id}_") and secret not in key.secret_hash
    request = urllib.request.Request(f"{live_server.url}/api/v1/orgs/{org.slug}/members",
                                     headers={"Authorization": f"Bearer {secret}"})
    with urllib.request.urlopen(request) as response:  # the key works against the API
        assert response.status == 200
    page.get_by_role("link", name="Done").click()
    expect(page.get_by_role("cell", name=f"iamk_{key.lookup_id}_…")).to_be_visible()
    assert secret not in page.content()


def test_filter_the_audit_log_and_verify_the_chain(page, live_server, owner):
    org = owner.org
    access = access_for_user(user=owner.user, org_slug=org.slug)
    team_create(access=access, name="Red")
    team_create(access=access, name="Blue")
    MemberFactory(org=org)
    log_in(page, live_server.url, owner.user.email)
    nav(page, "Audit log")
    page.get_by_label("Event (code or name)").fill("team.created")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("table.audit tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("team.created")
    page.get_by_role("button", name="Verify chain").click()
    expect(page.get_by_test_id("verdict")).to_contain_text("Chain intact")


def test_download_the_access_review(page, live_server, owner):
    log_in(page, live_server.url, owner.user.email)
    nav(page, "Access review")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download access review (CSV)").click()
    download = download_info.value
    assert download.suggested_filename.startswith(f"access-review-{owner.org.slug}-")
    with open(download.path(), newline="", encoding="utf-8") as f:
        rows = list(csv.reader(io.StringIO(f.read())))
    assert rows[0][:6] == ["principal_type", "principal_id", "name", "email", "status", "source"]
    assert [owner.user.email] == [r[3] for r in rows[1:]]


def test_member_of_another_org_gets_not_found(page, live_server, owner):
    stranger = MemberFactory(org=OrgFactory(), role="owner", user=UserFactory(password=PASSWORD))
    log_in(page, live_server.url, stranger.user.email)
    response = page.goto(f"{live_server.url}/orgs/{owner.org.slug}/members/")
    assert response.status == 404


def test_find_a_member_by_email_or_name(page, live_server, owner):
    org = owner.org
    MemberFactory(org=org, user=UserFactory(email="grace@example.com", display_name="Grace Hopper"))
    MemberFactory(org=org, user=UserFactory(email="alan@example.com", display_name="Alan Turing"))
    log_in(page, live_server.url, owner.user.email, path=f"/orgs/{org.slug}/members/")
    search = page.get_by_role("search")
    search.get_by_label("Search members").fill("hopper")
    search.get_by_role("button", name="Search").click()
    # The search form carries the list's filters too (empty here: everyone).
    expect(page).to_have_url(re.compile(r"\?q=hopper&role=&status=&source=&mfa=$"))
    rows = page.get_by_role("table").get_by_role("row")
    expect(rows).to_have_count(2)  # the header and Grace
    expect(rows.nth(1)).to_contain_text("grace@example.com")
    search.get_by_label("Search members").fill("nobody-at-all")
    page.keyboard.press("Enter")
    expect(page.get_by_role("table")).to_contain_text("No member matches “nobody-at-all”.")
    page.get_by_role("link", name="Show all").click()  # includes/list_search.html
    expect(page.get_by_role("table").get_by_role("row")).to_have_count(4)


def test_change_the_security_policy(page, live_server, owner):
    org = owner.org
    log_in(page, live_server.url, owner.user.email)
    nav(page, "Security policy")
    expect(page.get_by_role("heading", name="Security policy")).to_be_visible()
    lockout = page.get_by_label("Failed sign-ins before lockout")
    lifetime = page.get_by_label("Longest agent token lifetime (seconds)")

    # One bad field in one section: the page says which, and neither section changes.
    lockout.fill("7")
    lifetime.fill("10")
    page.get_by_role("button", name="Save policy").click()
    expect(page.get_by_role("alert")).to_contain_text("greater than or equal to 30")
    assert policy_for_org(org).lockout_threshold == 5
    assert agent_policy_for_org(org).agent_token_ttl_seconds == 300

    # Both sections in one save.
    lockout.fill("7")
    lifetime.fill("600")
    page.get_by_label("When a deprovisioned member leaves agents without an owner").select_option("reassign")
    page.get_by_label("Fallback owner for those agents").fill(owner.user.email)
    page.get_by_role("button", name="Save policy").click()
    expect(page.get_by_role("status")).to_have_text("Security policy saved.")
    expect(lockout).to_have_value("7")
    assert SecurityPolicy.objects.get(org=org).lockout_threshold == 7
    agent_policy = AgentPolicy.objects.get(org=org)
    assert (agent_policy.agent_token_ttl_seconds, agent_policy.deprovision_agents,
            agent_policy.deprovision_fallback_owner_id) == (600, "reassign", owner.pk)
