"""The agent console's lists: search, filters and paging by the admin API's pagination, a clear 400
for a filter nobody can apply, and a constant number of queries whatever the org's size, for each
page and for its API list alike."""

import datetime

import pytest
from django.utils import timezone

from agents.models import Agent, AgentStatus, Run, RunStatus
from tests.agents_console.conftest import (
    AUDIENCE,
    api_url,
    delegation_of,
    more_runs,
    queries,
    secret_of,
)
from tests.factories import AgentFactory, ConnectionFactory, MemberFactory, OrgFactory, UserFactory
from tests.scale import agents_bulk, members_bulk
from trust.models import Approval

pytestmark = pytest.mark.django_db


def costs(world, api, page, api_name, page_url=None):
    """(queries of the page, queries of its API list)."""
    return (queries(world.client, page_url or world.url(page)), queries(api, api_url(api_name, world.org)))


def names(response, key="agents"):
    return [a.name for a in response.context[key]]


# --- Agents --------------------------------------------------------------------------------------


def test_agents_search_by_name_or_client_id(world):
    other = AgentFactory(org=world.org, name="writer-bot", owners=[world.owner])
    by_name = world.client.get(world.url("agents"), {"q": "WRITER"})
    assert names(by_name) == ["writer-bot"] and 'value="WRITER"' in by_name.content.decode()
    by_client_id = world.client.get(world.url("agents"), {"q": world.agent.client_id[4:]})
    assert names(by_client_id) == ["triage-bot"]
    nothing = world.client.get(world.url("agents"), {"q": "nobody"})
    assert names(nothing) == [] and "No agent matches." in nothing.content.decode()
    assert other.pk  # listed by the first search only


def test_agents_filter_by_status_contained_apart(world):
    AgentFactory(org=world.org, name="paused", status=AgentStatus.SUSPENDED)
    AgentFactory(org=world.org, name="contained", status=AgentStatus.SUSPENDED, contained_at=timezone.now())
    AgentFactory(org=world.org, name="gone", status=AgentStatus.REVOKED)
    listed = {s: names(world.client.get(world.url("agents"), {"status": s}))
              for s in ("active", "suspended", "contained", "revoked")}
    assert listed == {"active": ["triage-bot"], "suspended": ["paused"], "contained": ["contained"],
                      "revoked": ["gone"]}
    page = world.client.get(world.url("agents"), {"status": "contained"}).content.decode()
    assert '<option value="contained" selected>' in page and ">Contained</span>" in page


def test_agents_filter_by_owner_email_from_the_picker(world):
    colleague = MemberFactory(org=world.org, user=UserFactory(email="colleague@example.com"))
    AgentFactory(org=world.org, name="theirs", owners=[colleague])
    response = world.client.get(world.url("agents"), {"owner": "Colleague@Example.com"})
    assert names(response) == ["theirs"]
    html = response.content.decode()
    assert f'data-picker="/api/v1/orgs/{world.org.slug}/members"' in html
    assert '<select id="agent-owner"' not in html


NO_MEMBER = "No active member of this organization has the email nobody@example.com"


@pytest.mark.parametrize("query,message", [
    ({"status": "sleeping"}, "Unknown status &#x27;sleeping&#x27;"),
    ({"owner": "nobody@example.com"}, NO_MEMBER),
    ({"secret": "new"}, "Unknown secret"),
])
def test_agents_filter_nobody_can_apply_is_a_clear_400(world, query, message):
    response = world.client.get(world.url("agents"), query)
    assert response.status_code == 400 and message in response.content.decode()
    assert names(response) == []


@pytest.mark.parametrize("page,query", [
    ("agents", {"owner": "nobody\x00@example.com"}),
    ("runs", {"agent": "no\x00such-agent"}),
    ("delegations", {"agent": "no\x00such-agent"}),
])
def test_a_nul_in_a_typed_filter_is_the_filters_400_not_a_server_error(world, page, query):
    # PostgreSQL refuses NUL in a query: the typed text drops it, and then names nobody.
    response = world.client.get(world.url(page), query)
    assert response.status_code == 400, response.status_code
    assert "\x00" not in response.content.decode()


def test_agents_secret_old_and_unused_filters_as_the_overview_links_them(world):
    from agents.models import AgentPolicy

    AgentPolicy.objects.update_or_create(org=world.org, defaults={"secret_max_age_days": 30})
    secret_of(world.agent, age_days=40, last_used_days=1)
    fresh = AgentFactory(org=world.org, name="fresh-bot")
    secret_of(fresh, age_days=1, last_used_days=1)
    long_ago = timezone.now() - datetime.timedelta(days=200)
    idle = AgentFactory(org=world.org, name="idle-bot", created_at=long_ago)
    secret_of(idle, age_days=5, last_used_days=120)
    old = world.client.get(world.url("agents"), {"secret": "old"})
    assert names(old) == ["triage-bot"] and "Past max age" in old.content.decode()
    assert names(world.client.get(world.url("agents"), {"unused": "90"})) == ["idle-bot"]


def test_agents_page_pages_by_the_api_cursor(world):
    agents_bulk(world.org, 60, owner=world.owner, prefix="bulk")
    first = world.client.get(world.url("agents"))
    assert len(first.context["agents"]) == 50 and first.context["page"].next_url
    assert 'rel="next"' in first.content.decode() and 'rel="prev"' not in first.content.decode()
    second = world.client.get(first.context["page"].next_url)
    assert len(second.context["agents"]) == 11  # 61 agents in all
    assert not set(names(first)) & set(names(second))
    assert names(first) + names(second) == sorted(names(first) + names(second))
    # Filters and the search travel with the cursor.
    searched = world.client.get(world.url("agents"), {"q": "bulk", "status": "active"})
    following = world.client.get(searched.context["page"].next_url)
    assert all(n.startswith("bulk") for n in names(following)) and len(names(following)) == 10
    assert world.client.get(world.url("agents"), {"cursor": "bogus"}).status_code == 404


def test_agents_page_and_api_cost_the_same_at_two_sizes(world):
    api = world.api()
    agents_bulk(world.org, 4, owner=world.owner, prefix="small")
    small = costs(world, api, "agents", "agent-list")
    agents_bulk(world.org, 60, owner=world.owner, prefix="big")
    members_bulk(world.org, 60)
    big = costs(world, api, "agents", "agent-list")
    assert small == big
    filtered = queries(world.client, world.url("agents"), {"status": "active", "q": "big"})
    assert filtered <= big[0] + 1


def test_the_register_form_has_an_owner_picker_not_every_member(world):
    members_bulk(world.org, 30)
    html = world.client.get(world.url("agents")).content.decode()
    form = html[html.index('id="new-agent-title"'):]
    assert "person0001@" not in form and 'name="owner"' in form and 'list="owner-options"' in form
    assert f'value="{world.owner.user.email}"' in form
    response = world.client.post(world.url("agents"), {"name": "new-bot", "audiences": [AUDIENCE],
                                                       "owner": "nobody@example.com"})
    assert response.status_code == 400
    assert NO_MEMBER in response.content.decode()
    assert not Agent.objects.for_org(world.org).filter(name="new-bot").exists()


# --- Connections ---------------------------------------------------------------------------------


def test_connections_search_and_page(world):
    for n in range(55):
        ConnectionFactory(org=world.org, name=f"svc-{n:02d}")
    searched = world.client.get(world.url("connections"), {"q": "service.example/api"})
    assert [c.name for c in searched.context["connections"]] == ["Tickets"]
    first = world.client.get(world.url("connections"))
    second = world.client.get(first.context["page"].next_url)
    assert len(first.context["connections"]) == 50 and len(second.context["connections"]) == 6


def test_connections_page_and_api_cost_the_same_at_two_sizes(world):
    api = world.api()
    small = costs(world, api, "connections", "connection-list")
    for n in range(60):
        ConnectionFactory(org=world.org)
    big = costs(world, api, "connections", "connection-list")
    assert small == big


# --- Runs ----------------------------------------------------------------------------------------


def test_runs_filter_by_state_as_their_timestamps_read(world):
    now = timezone.now()
    more_runs(world.agent, 2, status=RunStatus.RUNNING)
    Run.objects.create(org=world.org, agent=world.agent, started_by_type="human", description="winding",
                       status=RunStatus.STOPPING, stop_by=now + datetime.timedelta(minutes=5))
    Run.objects.create(org=world.org, agent=world.agent, started_by_type="human", description="overdue",
                       status=RunStatus.STOPPING, stop_by=now - datetime.timedelta(minutes=5))
    Run.objects.create(org=world.org, agent=world.agent, started_by_type="human", description="ended",
                       status=RunStatus.TERMINATED)

    def listed(state):
        runs = world.client.get(world.url("runs"), {"state": state}).context["runs"]
        return sorted(r.description for r in runs)

    assert listed("running") == ["job 000", "job 001"]
    assert listed("stopping") == ["winding"]
    assert listed("terminated") == ["ended", "overdue"]  # past its deadline, a stop has ended it
    page = world.client.get(world.url("runs"), {"state": "terminated"}).content.decode()
    assert page.count(">Terminated</span>") == 2


def test_runs_filter_by_agent_name_client_id_or_id(world):
    other = AgentFactory(org=world.org, name="writer-bot")
    more_runs(world.agent, 2)
    more_runs(other, 1)
    for value in ("writer-bot", other.client_id, str(other.pk)):
        response = world.client.get(world.url("runs"), {"agent": value})
        assert [r.agent_id for r in response.context["runs"]] == [other.pk]
    unknown = world.client.get(world.url("runs"), {"agent": "ghost"})
    assert unknown.status_code == 400
    assert "No agent of this organization is named ghost" in unknown.content.decode()
    assert world.client.get(world.url("runs"), {"state": "asleep"}).status_code == 400
    searched = world.client.get(world.url("runs"), {"q": "job 001"})
    assert [r.description for r in searched.context["runs"]] == ["job 001"]


def test_runs_page_pages_and_costs_the_same_at_two_sizes(world):
    api = world.api()
    more_runs(world.agent, 3)
    small = costs(world, api, "runs", "run-list")
    for n in range(6):
        more_runs(AgentFactory(org=world.org), 12)
    big = costs(world, api, "runs", "run-list")
    assert small == big
    first = world.client.get(world.url("runs"))
    assert len(first.context["runs"]) == 50
    assert len(world.client.get(first.context["page"].next_url).context["runs"]) == 25


def test_the_start_form_picks_the_agent_by_typing(world):
    AgentFactory(org=world.org, name="paused", status=AgentStatus.SUSPENDED)
    html = world.client.get(world.url("runs")).content.decode()
    form = html[html.index('id="new-run-title"'):]
    assert "<select" not in form and f'data-picker="/api/v1/orgs/{world.org.slug}/agents"' in form
    refused = world.client.post(world.url("runs"), {"agent": "paused"})
    assert refused.status_code == 400 and "No active agent of this organization is named paused" in (
        refused.content.decode())
    started = world.client.post(world.url("runs"), {"agent": "triage-bot", "description": "typed"})
    assert started.status_code == 302 and Run.objects.get(description="typed").agent_id == world.agent.pk


# --- Delegations ---------------------------------------------------------------------------------


def test_delegations_list_filters_searches_and_links_revocation(world):
    person = MemberFactory(org=world.org, user=UserFactory(email="pat@example.com"))
    other = AgentFactory(org=world.org, name="writer-bot")
    live = delegation_of(world.agent, person)
    delegation_of(world.agent, world.owner, live=False)
    delegation_of(other, person)
    everything = world.client.get(world.url("delegations"))
    assert len(everything.context["delegations"]) == 3
    live_ones = world.client.get(world.url("delegations"), {"state": "live"}).context["delegations"]
    assert {d.agent.name for d in live_ones} == {"triage-bot", "writer-bot"}
    ended = world.client.get(world.url("delegations"), {"state": "ended"}).context["delegations"]
    assert [d.person_email for d in ended] == [world.owner.user.email]
    mine = world.client.get(world.url("delegations"), {"agent": "triage-bot", "state": "live"})
    assert [d.pk for d in mine.context["delegations"]] == [live.pk]
    assert world.url("delegation-revoke", pk=live.pk) in mine.content.decode()
    assert [d.agent.name for d in world.client.get(world.url("delegations"), {"q": "writer"}).context[
        "delegations"]] == ["writer-bot"]
    assert world.client.get(world.url("delegations"), {"state": "forever"}).status_code == 400


def test_delegations_page_and_api_cost_the_same_at_two_sizes(world):
    api = world.api()
    people = members_bulk(world.org, 60)
    for m in people[:3]:
        delegation_of(world.agent, m)
    small = costs(world, api, "delegations", "delegation-list")
    for m in people[3:]:
        delegation_of(AgentFactory(org=world.org), m)
    big = costs(world, api, "delegations", "delegation-list")
    assert small == big


# --- Approvals -----------------------------------------------------------------------------------


def approvals(agent, count, **fields):
    now = timezone.now()
    made = []
    for run in more_runs(agent, count, status=RunStatus.PENDING_APPROVAL,
                         pending_until=now + datetime.timedelta(hours=1)):
        made.append(Approval.objects.create(org=agent.org, run=run, agent=agent, operation="deploy", score=40,
                                            level="low", expires_at=run.pending_until, **fields))
    return made


def test_approvals_queue_and_states(world):
    waiting = approvals(world.agent, 2)
    approved = approvals(world.agent, 1, status="approved")[0]
    Run.objects.filter(pk=approved.run_id).update(status=RunStatus.RUNNING)
    overdue = approvals(world.agent, 1)[0]
    Approval.objects.filter(pk=overdue.pk).update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    cancelled = approvals(world.agent, 1)[0]
    Run.objects.filter(pk=cancelled.run_id).update(status=RunStatus.TERMINATED)
    trust = "trust:approvals"

    def listed(**query):
        return {a.pk for a in world.client.get(page_url_trust(world), query).context["approvals"]}

    assert listed() == {a.pk for a in waiting}  # the queue
    assert listed(state="approved") == {approved.pk}
    assert listed(state="expired") == {overdue.pk}
    assert listed(state="cancelled") == {cancelled.pk}
    assert len(listed(state="all")) == 5
    queue = world.client.get(page_url_trust(world))
    assert queue.context["waiting"] == 2 and "Runs waiting for approval" in queue.content.decode()
    bad = world.client.get(page_url_trust(world), {"state": "maybe"})
    assert bad.status_code == 400 and "Unknown state" in bad.content.decode()
    assert trust


def page_url_trust(world):
    from django.urls import reverse

    return reverse("trust:approvals", kwargs={"org": world.org.slug})


def test_approvals_page_and_api_cost_the_same_at_two_sizes(world):
    api = world.api()
    approvals(world.agent, 3)
    small = costs(world, api, "", "approval-list", page_url_trust(world))
    for _ in range(4):
        approvals(AgentFactory(org=world.org), 15)
    big = costs(world, api, "", "approval-list", page_url_trust(world))
    assert small == big
    first = world.client.get(page_url_trust(world))
    assert len(first.context["approvals"]) == 50 and first.context["page"].next_url


# --- Another org ---------------------------------------------------------------------------------


def test_another_orgs_rows_are_never_listed(world):
    elsewhere = OrgFactory()
    stranger = AgentFactory(org=elsewhere, name="triage-bot-elsewhere")
    more_runs(stranger, 2)
    assert names(world.client.get(world.url("agents"), {"q": "triage"})) == ["triage-bot"]
    assert not world.client.get(world.url("runs")).context["runs"]
    assert world.client.get(world.url("runs"), {"agent": str(stranger.pk)}).status_code == 400
