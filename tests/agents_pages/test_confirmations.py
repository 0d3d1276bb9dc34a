"""Actions on the agent pages that take access away at once are asked for on a confirmation page
first: suspending an agent, terminating a run, rotating a secret with no overlap. A POST without the
confirmation changes nothing and is shown the question."""

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from agents import policies
from agents.models import Agent, AgentSecret, AgentStatus, Connection, Run, RunStatus
from tests.factories import sign_in
from tests.helpers import access_of, audit_events

pytestmark = pytest.mark.django_db

AUDIENCE = "https://tickets.example.test/api"


def url(name, org, **kwargs):
    return reverse(f"agents:{name}", kwargs={"org": org.slug, **kwargs})


@pytest.fixture
def agent(owner):
    policies.connection_create(access=access_of(owner), name="Tickets", audience=AUDIENCE,
                               scopes=["tickets:read"])
    return policies.agent_create(access=access_of(owner), name="Triage bot", scopes=["tickets:read"],
                                 audiences=[AUDIENCE], owner=owner)[0]


@pytest.fixture
def client(owner):
    return sign_in(Client(), owner.user)


def secrets_state(agent):
    return sorted(AgentSecret.objects.filter(agent=agent).values_list("pk", "expires_at", "revoked_at"))


# --- Suspend -------------------------------------------------------------------------------------


def test_suspend_asks_first_and_says_what_it_does(org, agent, client):
    policies.run_start(access=access_of(agent.owners.get()), agent=agent)
    detail = client.get(url("agent-detail", org, pk=agent.pk)).content.decode()
    assert f'href="{url("agent-status", org, pk=agent.pk)}"' in detail and "Suspend agent…" in detail
    confirm = client.get(url("agent-status", org, pk=agent.pk))
    assert confirm.status_code == 200
    body = confirm.content.decode()
    assert "Suspend agent “Triage bot”?" in body and "1 running task" in body
    assert 'name="confirm" value="yes"' in body
    assert Agent.objects.get(pk=agent.pk).status == AgentStatus.ACTIVE


def test_suspend_without_the_confirmation_changes_nothing(org, agent, client):
    response = client.post(url("agent-status", org, pk=agent.pk), {"status": "suspended"})
    assert response.status_code == 200 and "Suspend agent “Triage bot”?" in response.content.decode()
    assert Agent.objects.get(pk=agent.pk).status == AgentStatus.ACTIVE
    assert not audit_events(org, "agent.suspended").exists()


def test_suspend_once_confirmed_then_resume_without_asking(org, agent, client):
    response = client.post(url("agent-status", org, pk=agent.pk), {"status": "suspended", "confirm": "yes"})
    assert response.status_code == 302
    assert Agent.objects.get(pk=agent.pk).status == AgentStatus.SUSPENDED
    assert audit_events(org, "agent.suspended").count() == 1
    # Resuming gives access back: no question asked.
    assert client.post(url("agent-status", org, pk=agent.pk), {"status": "active"}).status_code == 302
    assert Agent.objects.get(pk=agent.pk).status == AgentStatus.ACTIVE


# --- Terminate a run -----------------------------------------------------------------------------


def test_terminate_asks_first_and_a_bare_post_changes_nothing(org, owner, agent, client):
    run = policies.run_start(access=access_of(owner), agent=agent, description="Nightly triage")
    listed = client.get(url("runs", org)).content.decode()
    assert f'href="{url("run-terminate", org, pk=run.pk)}"' in listed
    from_agent = client.get(url("agent-detail", org, pk=agent.pk)).content.decode()
    assert f'href="{url("run-terminate", org, pk=run.pk)}?from=agent"' in from_agent
    confirm = client.get(url("run-terminate", org, pk=run.pk), {"from": "agent"})
    assert confirm.status_code == 200
    body = confirm.content.decode()
    assert "Terminate run “Nightly triage” of Triage bot?" in body and 'name="from" value="agent"' in body
    bare = client.post(url("run-terminate", org, pk=run.pk), {"from": "agent"})
    assert bare.status_code == 200 and "Terminate run" in bare.content.decode()
    assert Run.objects.get(pk=run.pk).status == RunStatus.RUNNING
    assert not audit_events(org, "run.terminated").exists()
    done = client.post(url("run-terminate", org, pk=run.pk), {"from": "agent", "confirm": "yes"})
    assert done["Location"] == url("agent-detail", org, pk=agent.pk)
    assert Run.objects.get(pk=run.pk).status == RunStatus.TERMINATED
    assert audit_events(org, "run.terminated").count() == 1


# --- Rotation with no overlap --------------------------------------------------------------------


def test_rotation_with_no_overlap_needs_its_box_ticked(org, agent, client):
    before = secrets_state(agent)
    response = client.post(url("agent-rotate", org, pk=agent.pk), {"overlap_seconds": "0"})
    assert response.status_code == 400
    assert "Tick this to end the current secret now" in response.content.decode()
    assert secrets_state(agent) == before
    assert not audit_events(org, "agent.secret_rotated").exists()
    ticked = client.post(url("agent-rotate", org, pk=agent.pk), {"overlap_seconds": "0", "end_now": "on"})
    assert ticked.status_code == 200 and "stops working now" in ticked.content.decode()
    assert secrets_state(agent) == before  # asked, not done
    confirmed = client.post(url("agent-rotate", org, pk=agent.pk),
                            {"overlap_seconds": "0", "end_now": "on", "confirm": "yes"})
    assert confirmed.status_code == 303
    live = [s for s in AgentSecret.objects.filter(agent=agent) if s.is_live(timezone.now())]
    assert len(live) == 1 and live[0].pk not in {pk for pk, *_ in before}
    assert audit_events(org, "agent.secret_window_ended").get().data["how"] == "immediate"


def test_rotation_with_an_overlap_needs_no_tick(org, agent, client):
    asked = client.post(url("agent-rotate", org, pk=agent.pk), {"overlap_seconds": "60"})
    assert asked.status_code == 200 and "(60 seconds)" in asked.content.decode()
    response = client.post(url("agent-rotate", org, pk=agent.pk), {"overlap_seconds": "60", "confirm": "yes"})
    assert response.status_code == 303
    assert len([s for s in AgentSecret.objects.filter(agent=agent) if s.is_live(timezone.now())]) == 2


# --- Connections ---------------------------------------------------------------------------------


def test_connection_rotation_and_deletion_without_confirmation_change_nothing(org, owner, client):
    connection, _ = policies.connection_create(access=access_of(owner), name="CRM",
                                               audience="https://crm.example.test", scopes=["crm:read"])
    before = list(Connection.objects.filter(pk=connection.pk).values_list("lookup_id", "secret_hash"))
    rotate = client.post(url("connection-rotate", org, pk=connection.pk))
    assert rotate.status_code == 200 and "stops working at once" in rotate.content.decode()
    delete = client.post(url("connection-delete", org, pk=connection.pk))
    assert delete.status_code == 200 and "Delete connection “CRM”?" in delete.content.decode()
    assert list(Connection.objects.filter(pk=connection.pk).values_list("lookup_id", "secret_hash")) == before
    assert not audit_events(org, "connection.secret_rotated").exists()
    assert not audit_events(org, "connection.deleted").exists()
