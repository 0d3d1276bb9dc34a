"""The agent pages through a real browser: connection, agent, its secret shown once, rotation, a run."""

import re

import pytest
from django.utils import timezone

from agents.models import Agent, AgentSecret, Connection, Run, RunStatus
from core.secrets import credential_parse, secret_matches
from tests.factories import PASSWORD

# Skips (or, under IAM_REQUIRE_BROWSER=1, conftest fails the run) when Playwright is absent.
expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AUDIENCE = "https://tickets.acme.test/api"


def nav(page, name):
    page.get_by_role("navigation", name="Organization").get_by_role("link", name=name).click()


def stored_secret(agent, shown: str) -> AgentSecret:
    """The row behind a secret the page showed, proving the page's value is the real credential."""
    lookup_id, raw = credential_parse(shown, "ags")
    row = AgentSecret.objects.get(agent=agent, lookup_id=lookup_id)
    assert secret_matches(raw, row.secret_hash, row.hash_kid) and raw not in row.secret_hash
    return row


def test_connection_agent_rotation_and_run(page, live_server, owner):
    org = owner.org
    page.goto(live_server.url + "/login/")
    page.get_by_label("Email").fill(owner.user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    nav(page, "Connections")
    page.get_by_label("Name", exact=True).fill("Ticket service")
    page.get_by_label("Audience URL").fill(AUDIENCE)
    page.get_by_label("Scopes").fill("tickets:read, tickets:write")
    page.get_by_role("button", name="Register connection").click()
    expect(page.get_by_role("heading", name="Connection “Ticket service” registered")).to_be_visible()
    assert page.get_by_test_id("connection-secret").input_value().startswith("cns_")
    page.get_by_role("link", name="Done").click()
    expect(page.get_by_role("cell", name=AUDIENCE, exact=True)).to_be_visible()
    assert Connection.objects.for_org(org).get().scopes == ["tickets:read", "tickets:write"]

    nav(page, "Agents")
    page.get_by_label("Name", exact=True).fill("Triage bot")
    page.get_by_role("checkbox", name=f"Ticket service ({AUDIENCE})").check()
    page.get_by_role("checkbox", name="tickets:read").check()
    # The owner is a searching picker (their email), not a select of every member.
    expect(page.get_by_label("Owner", exact=True)).to_have_value(owner.user.email)
    page.get_by_role("button", name="Register agent").click()
    expect(page.get_by_role("heading", name="Agent “Triage bot” registered")).to_be_visible()
    agent = Agent.objects.for_org(org).get(name="Triage bot")
    expect(page.get_by_test_id("agent-client-id")).to_have_value(agent.client_id)
    shown = page.get_by_test_id("agent-secret").input_value()
    first = stored_secret(agent, shown)
    # The copy button puts exactly the shown secret on the clipboard, and says so.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page.get_by_role("button", name="Copy the client secret").click()
    expect(page.get_by_test_id("agent-secret").locator("xpath=following-sibling::span[1]")
           .get_by_role("status")).to_have_text("Copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == shown

    page.get_by_role("link", name="Done").click()
    expect(page.get_by_role("heading", name=re.compile("^Triage bot"))).to_be_visible()
    assert shown not in page.content()  # shown once: the agent's page has only the lookup id
    page.get_by_label("Overlap window (seconds)").fill("600")
    page.get_by_role("button", name="Rotate secret").click()
    expect(page.get_by_test_id("consequences")).to_contain_text("keeps working alongside it until")
    page.get_by_role("button", name="Rotate secret now").click()
    expect(page.get_by_role("heading", name="New secret for “Triage bot”")).to_be_visible()
    second = stored_secret(agent, page.get_by_test_id("agent-secret").input_value())
    now = timezone.now()
    live = [s for s in AgentSecret.objects.filter(agent=agent) if s.is_live(now)]
    assert {s.pk for s in live} == {first.pk, second.pk}
    page.get_by_role("link", name="Done").click()
    page.get_by_role("link", name="End the previous secret now…").click()  # asked for on its own page
    expect(page.get_by_test_id("consequences")).to_contain_text(f"ags_{first.lookup_id}_")
    page.get_by_role("button", name="End the previous secret").click()
    expect(page.get_by_role("status")).to_contain_text("Ended 1 previous secret(s)")
    assert [s.pk for s in AgentSecret.objects.filter(agent=agent) if s.is_live(timezone.now())] == [second.pk]

    nav(page, "Runs")
    page.get_by_label("Agent", exact=True).fill("Triage bot")  # a picker: the name, or its client ID
    page.get_by_label("Description").fill("Nightly triage")
    page.get_by_role("button", name="Start run").click()
    expect(page.get_by_role("status")).to_contain_text("Started run")
    expect(page.get_by_role("cell", name="Nightly triage", exact=True)).to_be_visible()
    page.get_by_role("link", name="Terminate… run Nightly triage").click()
    expect(page.get_by_role("heading", name="Terminate run “Nightly triage” of Triage bot?")).to_be_visible()
    page.get_by_role("button", name="Terminate run").click()
    expect(page.get_by_role("status")).to_contain_text("Terminated run")
    run = Run.objects.for_org(org).get()
    assert run.status == RunStatus.TERMINATED and run.ended_at is not None
