"""The admin console's secret pages and confirmations through a real browser: a reload of the page
that showed a new secret mints nothing, and destructive actions ask first."""

import re

import pytest

from accounts.models import ApiKey
from agents import policies
from agents.models import Agent, AgentStatus, Connection
from rbac.models import Role
from tests.browser.test_browser import log_in, nav
from tests.factories import MemberFactory, RoleFactory, TeamFactory
from tests.helpers import access_of

# Skips (or, under IAM_REQUIRE_BROWSER=1, conftest fails the run) when Playwright is absent.
expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AUDIENCE = "https://tickets.acme.test/api"


def test_reloading_the_new_api_key_page_mints_no_second_key(page, live_server, owner):
    org = owner.org
    log_in(page, live_server.url, owner.user.email)
    nav(page, "API keys")
    page.get_by_label("Name", exact=True).fill("Deploy bot")
    page.get_by_role("checkbox", name=re.compile(r"^member:read ")).check()
    page.get_by_role("button", name="Create API key").click()
    secret = page.get_by_label("Secret", exact=True).input_value()
    assert secret.startswith("iamk_")
    expect(page).to_have_url(re.compile(r"/api-keys/\?shown="))

    response = page.reload()
    assert response.status == 410
    expect(page.get_by_role("heading", name="This secret was already shown")).to_be_visible()
    assert secret not in page.content()
    assert ApiKey.objects.for_org(org).count() == 1
    page.go_back()  # back to the form, which the browser does not post again
    assert ApiKey.objects.for_org(org).count() == 1
    page.goto(f"{live_server.url}/orgs/{org.slug}/api-keys/")
    expect(page.get_by_role("cell", name="Deploy bot", exact=True)).to_have_count(1)


def test_delete_a_role_that_is_in_use_after_reading_who_holds_it(page, live_server, owner):
    org = owner.org
    role = RoleFactory(org=org, name="Agent ops", permissions=["agent:read"])
    MemberFactory(org=org).custom_roles.add(role)
    TeamFactory(org=org, name="Platform").roles.add(role)
    log_in(page, live_server.url, owner.user.email)
    nav(page, "Roles")
    page.get_by_role("link", name="Agent ops").click()
    page.get_by_role("link", name="Delete role…").click()
    expect(page.get_by_role("heading", name="Delete role “Agent ops”?")).to_be_visible()
    expect(page.get_by_test_id("role-holders")).to_have_text("1 member and 1 team hold it.")
    assert Role.objects.for_org(org).filter(pk=role.pk).exists()  # asking changed nothing
    page.get_by_role("button", name="Delete role").click()
    expect(page.get_by_role("status")).to_contain_text("Deleted role Agent ops.")
    expect(page.get_by_role("link", name="Agent ops")).to_have_count(0)
    assert not Role.objects.for_org(org).filter(pk=role.pk).exists()


def test_suspend_an_agent_after_confirming(page, live_server, owner):
    access = access_of(owner)
    policies.connection_create(access=access, name="Tickets", audience=AUDIENCE, scopes=["tickets:read"])
    agent, _ = policies.agent_create(access=access, name="Triage bot", scopes=["tickets:read"],
                                     audiences=[AUDIENCE], owner=owner)
    log_in(page, live_server.url, owner.user.email)
    nav(page, "Agents")
    page.get_by_role("link", name="Triage bot").click()
    page.get_by_role("link", name="Suspend agent…").click()
    expect(page.get_by_role("heading", name="Suspend agent “Triage bot”?")).to_be_visible()
    assert Agent.objects.get(pk=agent.pk).status == AgentStatus.ACTIVE
    page.get_by_role("button", name="Suspend agent").click()
    expect(page.get_by_role("status")).to_contain_text("Triage bot is suspended.")
    assert Agent.objects.get(pk=agent.pk).status == AgentStatus.SUSPENDED
    page.get_by_role("button", name="Resume agent").click()  # giving access back asks nothing
    expect(page.get_by_role("status")).to_contain_text("Triage bot is active.")


def test_rotate_a_connection_secret_and_reload(page, live_server, owner):
    org = owner.org
    connection, _ = policies.connection_create(access=access_of(owner), name="Tickets", audience=AUDIENCE,
                                               scopes=["tickets:read"])
    log_in(page, live_server.url, owner.user.email)
    nav(page, "Connections")
    page.get_by_role("link", name="Tickets").click()
    page.get_by_role("link", name="Rotate secret…").click()
    page.get_by_role("button", name="Rotate secret now").click()
    shown = page.get_by_test_id("connection-secret").input_value()
    stored = Connection.objects.get(pk=connection.pk)
    assert shown.startswith(f"cns_{stored.lookup_id}_") and stored.lookup_id != connection.lookup_id
    page.reload()
    expect(page.get_by_role("heading", name="This secret was already shown")).to_be_visible()
    assert Connection.objects.get(pk=connection.pk).lookup_id == stored.lookup_id  # no second rotation
    assert Connection.objects.for_org(org).count() == 1


def test_change_a_connections_scopes_then_delete_it(page, live_server, owner):
    org = owner.org
    connection, _ = policies.connection_create(access=access_of(owner), name="Tickets", audience=AUDIENCE,
                                               scopes=["tickets:read"])
    log_in(page, live_server.url, owner.user.email)
    nav(page, "Connections")
    page.get_by_role("link", name="Tickets").click()
    page.get_by_role("textbox", name="Scopes").fill("tickets:read tickets:write")
    page.get_by_role("button", name="Save connection").click()
    expect(page.get_by_role("status")).to_be_visible()
    assert sorted(Connection.objects.get(pk=connection.pk).scopes) == ["tickets:read", "tickets:write"]
    page.goto(live_server.url + f"/orgs/{org.slug}/connections/{connection.pk}/")
    page.get_by_role("link", name="Delete connection…").click()
    expect(page.get_by_role("heading", name="Delete connection “Tickets”?")).to_be_visible()
    page.get_by_role("button", name="Delete connection").click()
    expect(page.get_by_role("status")).to_be_visible()
    assert not Connection.objects.for_org(org).exists()
