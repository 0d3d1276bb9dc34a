"""Every destructive action of the agent console confirms on its own page first with what it ends,
counted, and a POST that does not come from that page's button changes nothing."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from agents.models import AgentSecret, AgentStatus, Connection, RefreshToken, Run, RunStatus
from tests.agents_console.conftest import AUDIENCE, delegation_of, more_runs, secret_of, tokens
from tests.factories import AgentFactory, ConnectionFactory, MemberFactory, UserFactory
from tests.helpers import audit_events
from trust.models import Approval

pytestmark = pytest.mark.django_db


def consequences(response) -> str:
    html = response.content.decode()
    return html[html.index('data-testid="consequences"'):].split("</ul>")[0]


def live_secrets(agent):
    return [s for s in AgentSecret.objects.filter(agent=agent) if s.is_live(timezone.now())]


def test_revoking_an_agent_says_what_stops_with_counts_then_revokes(world):
    secret_of(world.agent)
    more_runs(world.agent, 2, status=RunStatus.RUNNING)
    more_runs(world.agent, 1, status=RunStatus.PENDING_APPROVAL,
              pending_until=timezone.now() + datetime.timedelta(hours=1))
    more_runs(world.agent, 3, status=RunStatus.COMPLETED)
    for _ in range(2):
        delegation_of(world.agent, MemberFactory(org=world.org))
    delegation_of(world.agent, MemberFactory(org=world.org), live=False)
    AgentFactory(org=world.org).may_delegate_to.add(world.agent)
    page = world.client.get(world.url("agent-revoke", pk=world.agent.pk))
    said = consequences(page)
    assert "Its 1 live client secret stops working" in said
    assert "3 live runs are terminated (2 running, 0 stopping, 1 waiting for approval)" in said
    assert "2 live delegations from people to it can no longer be used" in said
    assert "1 other agent that may hand it tokens" in said
    assert "refused at its next request" in said
    bare = world.client.post(world.url("agent-revoke", pk=world.agent.pk))
    assert bare.status_code == 200 and not audit_events(world.org, "agent.revoked").exists()
    done = world.client.post(world.url("agent-revoke", pk=world.agent.pk), {"confirm": "yes"})
    assert done.status_code == 302
    world.agent.refresh_from_db()
    assert world.agent.status == AgentStatus.REVOKED and live_secrets(world.agent) == []
    assert Run.objects.filter(agent=world.agent, status=RunStatus.TERMINATED).count() == 3
    assert audit_events(world.org, "agent.revoked").get().data == {"runs_cancelled": 3}


def test_suspending_counts_the_running_tasks_and_delegations(world):
    more_runs(world.agent, 2, status=RunStatus.RUNNING)
    delegation_of(world.agent, MemberFactory(org=world.org))
    said = consequences(world.client.get(world.url("agent-status", pk=world.agent.pk)))
    assert "2 running tasks of this agent will be refused tokens too" in said
    assert "1 live delegation from people to it cannot be used while it is suspended" in said
    world.client.post(world.url("agent-status", pk=world.agent.pk), {"status": "suspended"})
    world.agent.refresh_from_db()
    assert world.agent.status == AgentStatus.ACTIVE
    world.client.post(world.url("agent-status", pk=world.agent.pk), {"status": "suspended", "confirm": "yes"})
    world.agent.refresh_from_db()
    assert world.agent.status == AgentStatus.SUSPENDED


def test_rotating_says_until_when_the_old_secret_works(world):
    current = secret_of(world.agent)
    asked = world.client.post(world.url("agent-rotate", pk=world.agent.pk), {"overlap_seconds": "600"})
    said = consequences(asked)
    assert f"ags_{current.lookup_id}_" in said and "keeps working alongside it until" in said
    assert "(600 seconds)" in said
    until = asked.context["until"]
    assert abs((until - timezone.now()).total_seconds() - 600) < 30
    assert [s.pk for s in live_secrets(world.agent)] == [current.pk]
    rotated = world.client.post(world.url("agent-rotate", pk=world.agent.pk),
                                {"overlap_seconds": "600", "confirm": "yes"})
    assert rotated.status_code == 303 and len(live_secrets(world.agent)) == 2


def test_ending_the_previous_secret_early_says_which_stops(world):
    previous = secret_of(world.agent, age_days=2)
    previous.expires_at = timezone.now() + datetime.timedelta(hours=1)
    previous.save()
    newest = secret_of(world.agent)
    said = consequences(world.client.get(world.url("agent-end-previous", pk=world.agent.pk)))
    assert f"ags_{previous.lookup_id}_" in said and "stops working now instead of at" in said
    assert f"Only the newest secret, <code>ags_{newest.lookup_id}_" in said
    world.client.post(world.url("agent-end-previous", pk=world.agent.pk))
    assert len(live_secrets(world.agent)) == 2
    world.client.post(world.url("agent-end-previous", pk=world.agent.pk), {"confirm": "yes"})
    assert [s.pk for s in live_secrets(world.agent)] == [newest.pk]


def test_rotating_with_no_window_says_the_runs_end(world):
    secret_of(world.agent)
    more_runs(world.agent, 2, status=RunStatus.RUNNING)
    said = consequences(world.client.post(world.url("agent-rotate", pk=world.agent.pk),
                                          {"overlap_seconds": "0", "end_now": "on"}))
    assert "stops working now" in said and "2 live runs of this agent are terminated with it" in said
    assert Run.objects.filter(agent=world.agent, status=RunStatus.RUNNING).count() == 2
    world.client.post(world.url("agent-rotate", pk=world.agent.pk),
                      {"overlap_seconds": "0", "end_now": "on", "confirm": "yes"})
    assert Run.objects.filter(agent=world.agent, status=RunStatus.TERMINATED).count() == 2


def test_deleting_a_connection_counts_delegations_and_names_the_token_lifetime(world):
    spare = ConnectionFactory(org=world.org, name="Spare", audience="https://spare.example/api")
    blocked = consequences_or_none(world.client.get(world.url("connection-delete", pk=world.connection.pk)))
    assert blocked is None  # an agent holds its audience: it cannot go, and the page says who
    spare_agent = AgentFactory(org=world.org, audiences=["https://other.example/api"])
    delegation_of(spare_agent, MemberFactory(org=world.org), audience=spare.audience)
    said = consequences(world.client.get(world.url("connection-delete", pk=spare.pk)))
    assert "1 live delegation from people for this service can no longer be used" in said
    assert "within the org's token lifetime (" in said and "stops working at once" in said
    world.client.post(world.url("connection-delete", pk=spare.pk))
    assert Connection.objects.filter(pk=spare.pk).exists()
    world.client.post(world.url("connection-delete", pk=spare.pk), {"confirm": "yes"})
    assert not Connection.objects.filter(pk=spare.pk).exists()


def consequences_or_none(response):
    html = response.content.decode()
    return consequences(response) if 'data-testid="consequences"' in html else None


def test_rotating_a_connection_secret_says_there_is_no_grace_window(world):
    said = consequences(world.client.get(world.url("connection-rotate", pk=world.connection.pk)))
    assert "stops working at once, with no grace window" in said
    assert "the 1 agent that call it" in said


def test_terminating_a_run_counts_its_tokens(world):
    run = more_runs(world.agent, 1, status=RunStatus.RUNNING)[0]
    tokens(world.org, world.agent, issued=[0, 0, 0], run=run)
    said = consequences(world.client.get(world.url("run-terminate", pk=run.pk)))
    assert "Every token bound to this run (3 issued for it so far)" in said
    world.client.post(world.url("run-terminate", pk=run.pk))
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING
    world.client.post(world.url("run-terminate", pk=run.pk), {"confirm": "yes"})
    run.refresh_from_db()
    assert run.status == RunStatus.TERMINATED


def test_terminating_a_run_waiting_for_approval_says_the_approval_ends(world):
    run = more_runs(world.agent, 1, status=RunStatus.PENDING_APPROVAL,
                    pending_until=timezone.now() + datetime.timedelta(hours=1))[0]
    Approval.objects.create(org=world.org, run=run, agent=world.agent, score=1, level="low",
                            expires_at=run.pending_until)
    said = consequences(world.client.get(world.url("run-terminate", pk=run.pk)))
    assert "Its approval, still waiting, can no longer be given" in said


def test_revoking_a_delegation_counts_its_tokens_and_refresh_tokens(world):
    person = MemberFactory(org=world.org, user=UserFactory(email="pat@example.com"))
    delegation = delegation_of(world.agent, person)
    fields, _ = RefreshToken.mint()
    RefreshToken.objects.create(org=world.org, delegation=delegation, agent=world.agent, **fields)
    tokens(world.org, world.agent, issued=[0, 1], delegation=delegation)
    tokens(world.org, world.agent, issued=[0])  # not under it
    another = delegation_of(world.agent, world.owner)
    tokens(world.org, world.agent, issued=[0, 0, 0], delegation=another)  # under another delegation
    said = consequences(world.client.get(world.url("delegation-revoke", pk=delegation.pk)))
    assert "Every token issued under this delegation (2 so far)" in said
    assert "Its 1 usable refresh token ends." in said
    world.client.post(world.url("delegation-revoke", pk=delegation.pk), {"confirm": "yes"})
    delegation.refresh_from_db()
    assert delegation.status == "revoked"
    assert not RefreshToken.objects.filter(delegation=delegation, revoked_at__isnull=True).exists()


def test_the_approval_page_spells_out_approve_and_deny(world):
    run = more_runs(world.agent, 1, status=RunStatus.PENDING_APPROVAL, audiences=[AUDIENCE],
                    pending_until=timezone.now() + datetime.timedelta(hours=1))[0]
    approval = Approval.objects.create(org=world.org, run=run, agent=world.agent, operation="deploy",
                                       score=30, level="low", expires_at=run.pending_until)
    page = world.client.get(reverse("trust:approval-detail",
                                    kwargs={"org": world.org.slug, "pk": approval.pk}))
    said = consequences(page)
    assert f"bound to it for <code>{AUDIENCE}</code>" in said
    assert "Deny:</strong> the run ends (terminated)" in said and "expires at" in said
