"""The agent console in Chromium at scale (200 agents, with runs, delegations, approvals and token
activity): search finds an agent, paging pages, the agent's page draws its tokens per day with the
seeded figures, revoking an agent says what happens and then does it, a picker offers members as a
person types, and each page family fits a 1,280 px window (a screenshot of each is kept)."""

import datetime
import re

import pytest
from django.utils import timezone

from agents.models import Agent, AgentStatus, RunStatus
from tests.agents_console.conftest import delegation_of, more_runs, tokens
from tests.browser.test_browser import log_in, nav
from tests.factories import ConnectionFactory, MemberFactory, UserFactory
from tests.scale import agents_bulk, members_bulk
from trust.models import Approval

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FITS = """() => document.documentElement.scrollWidth <= window.innerWidth &&
  [...document.querySelectorAll('.table-wrap')].every(e => e.scrollWidth <= e.clientWidth)"""


def fits(page, tmp_path, name):
    assert page.evaluate(FITS), f"{name} overflows at 1,280 px"
    page.screenshot(path=tmp_path / f"{name}.png", full_page=False)
    assert (tmp_path / f"{name}.png").stat().st_size > 0


@pytest.fixture
def fleet(owner):
    """200 agents of the owner's (the service.example audience), a connection for it, runs and
    delegations on a few, approvals waiting, and the token activity of agent-005 over a week."""
    org = owner.org
    ConnectionFactory(org=org, name="Service", audience="https://service.example/api", scopes=["t:read"])
    agents = agents_bulk(org, 200, owner=owner)
    people = members_bulk(org, 60)
    for agent in agents[:10]:
        more_runs(agent, 6, status=RunStatus.RUNNING)
        delegation_of(agent, people[agents.index(agent)], audience="https://service.example/api")
    for run in more_runs(agents[20], 3, status=RunStatus.PENDING_APPROVAL, operation="deploy",
                         pending_until=timezone.now() + datetime.timedelta(hours=1)):
        Approval.objects.create(org=org, run=run, agent=agents[20], operation="deploy", score=42, level="low",
                                expires_at=run.pending_until, requested_by_type="human",
                                requested_by_display="ops@example.com")
    tokens(org, agents[5], issued=[0, 0, 0, 1, 1, 6], denied=[0, 2])
    return agents


def test_search_and_paging_find_an_agent_among_200(page, live_server, owner, fleet, tmp_path):
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, live_server.url, owner.user.email)
    nav(page, "Agents")
    rows = page.get_by_role("table", name=f"Agents of {owner.org.name}").locator("tbody tr")
    expect(rows).to_have_count(50)
    fits(page, tmp_path, "agents-list")
    page.get_by_role("link", name="Next page →").click()
    expect(rows).to_have_count(50)
    expect(rows.first).to_contain_text("agent-050")
    page.get_by_role("link", name="← Previous page").click()
    expect(rows.first).to_contain_text("agent-000")

    page.get_by_label("Search agents").fill("agent-137")
    page.get_by_role("button", name="Search").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("agent-137")
    page.get_by_role("link", name="agent-137").click()
    expect(page.get_by_role("heading", name="agent-137", level=1)).to_be_visible()

    nav(page, "Agents")
    page.get_by_label("Status").select_option("revoked")
    page.get_by_role("button", name="Search").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("No agent matches.")


def test_the_agent_page_draws_its_tokens_and_revoking_confirms_with_what_ends(
        page, live_server, owner, fleet, tmp_path):
    agent = fleet[5]
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, live_server.url, owner.user.email)
    page.goto(f"{live_server.url}/orgs/{owner.org.slug}/agents/{agent.pk}/")
    chart = page.get_by_test_id("chart").first
    expect(chart.locator("svg rect")).not_to_have_count(0)
    expect(page.get_by_test_id("tokens-issued")).to_have_text("6")
    expect(page.get_by_test_id("tokens-denied")).to_have_text("2")
    chart.get_by_text("Figures").click()
    figures = chart.get_by_role("table")
    expect(figures).to_be_visible()
    today = figures.locator("tbody tr").last
    expect(today.locator("td")).to_have_text(["3", "1", "4"])  # issued, denied, total
    expect(page.get_by_test_id("last-token")).to_contain_text("https://service.example/api")
    fits(page, tmp_path, "agent-detail")

    page.get_by_role("link", name="Revoke agent…").click()
    said = page.get_by_test_id("consequences")
    expect(said).to_contain_text("6 live runs are terminated (6 running")
    expect(said).to_contain_text("1 live delegation from people to it can no longer be used")
    expect(said).to_contain_text("refused at its next request")
    fits(page, tmp_path, "agent-revoke")
    page.get_by_role("button", name="Revoke agent").click()
    expect(page.get_by_role("status")).to_contain_text(f"Revoked {agent.name}")
    expect(page.get_by_role("heading", name=agent.name, level=1)).to_contain_text("Revoked")
    agent.refresh_from_db()
    assert agent.status == AgentStatus.REVOKED
    assert agent.runs.filter(status=RunStatus.TERMINATED).count() == 6


def test_the_owner_picker_offers_members_as_a_person_types(page, live_server, owner, fleet):
    MemberFactory(org=owner.org, user=UserFactory(email="zelda.ops@acme.example", display_name="Zelda Ops"))
    log_in(page, live_server.url, owner.user.email)
    page.goto(f"{live_server.url}/orgs/{owner.org.slug}/agents/{fleet[1].pk}/")
    picker = page.get_by_label("Add an owner")
    picker.press_sequentially("zelda", delay=30)
    options = page.locator("#add-owner-options option")
    expect(options).to_have_count(1)
    expect(options.first).to_have_attribute("value", "zelda.ops@acme.example")
    picker.fill("zelda.ops@acme.example")  # what choosing the offered option puts in the field
    page.get_by_role("button", name="Save grant").click()
    expect(page.get_by_role("status")).to_contain_text("Saved the grant")
    owners = {m.user.email for m in Agent.objects.get(pk=fleet[1].pk).owners.select_related("user")}
    assert owners == {owner.user.email, "zelda.ops@acme.example"}


def test_connections_runs_and_approvals_fit_and_filter(page, live_server, owner, fleet, tmp_path):
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, live_server.url, owner.user.email)
    nav(page, "Connections")
    expect(page.get_by_role("link", name="Service", exact=True)).to_be_visible()
    fits(page, tmp_path, "connections")
    page.get_by_role("link", name="Service", exact=True).click()
    expect(page.get_by_test_id("chart")).to_have_count(2)
    fits(page, tmp_path, "connection-detail")

    nav(page, "Runs")
    runs = page.get_by_role("table", name=f"Runs in {owner.org.name}").locator("tbody tr")
    expect(runs).to_have_count(50)
    page.get_by_label("State").select_option("pending_approval")
    page.get_by_role("button", name="Search").click()
    expect(runs).to_have_count(3)
    fits(page, tmp_path, "runs")
    runs.first.get_by_role("link", name=re.compile(r"^job \d+$")).click()
    expect(page.get_by_role("heading", name="Trust decisions")).to_be_visible()
    fits(page, tmp_path, "run-detail")

    page.goto(f"{live_server.url}/orgs/{owner.org.slug}/approvals/")
    queue = page.get_by_role("table", name="Runs waiting for approval").locator("tbody tr")
    expect(queue).to_have_count(3)
    expect(page.get_by_test_id("waiting")).to_have_text("3")
    fits(page, tmp_path, "approvals")
    queue.first.get_by_role("link").click()
    expect(page.get_by_test_id("consequences")).to_contain_text("Deny:")

    page.goto(f"{live_server.url}/orgs/{owner.org.slug}/delegations/")
    delegations = page.get_by_role("table", name=f"Delegations in {owner.org.name}").locator("tbody tr")
    expect(delegations).to_have_count(10)
    fits(page, tmp_path, "delegations")
