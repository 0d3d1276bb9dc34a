"""The agent, connection and run pages: what each shows (the agent's tokens per day, last token,
secrets against the maximum age, delegations in and out, runs, audit timeline; the connection's
introspections and signals; the run's trust decisions, bound tokens and approval), owner pickers
that search, another org's object as a 404, and the same number of queries whatever each holds."""

import datetime
import re

import pytest
from django.utils import timezone

from agents.models import AgentPolicy, Run, RunStatus
from audit.events import AuditEvent, Outcome
from tests.agents_console.conftest import (
    AUDIENCE,
    delegation_of,
    entries,
    more_runs,
    queries,
    secret_of,
    tokens,
)
from tests.factories import AgentFactory, ConnectionFactory, MemberFactory, OrgFactory, UserFactory
from tests.scale import members_bulk
from trust.models import Approval

pytestmark = pytest.mark.django_db


def figures(html: str, chart_id: str) -> list[tuple]:
    """The rows of a chart's 'Figures' table: (day label, value, ...)."""
    figure = html[html.index(f'id="{chart_id}"'):]
    table = figure[figure.index("<tbody>"):figure.index("</tbody>")]
    return [tuple([label, *map(int, re.findall(r"<td>(\d+)</td>", row))])
            for label, row in re.findall(r'<th scope="row">([^<]+)</th>(.*?)</tr>', table)]


# --- Agent ---------------------------------------------------------------------------------------


def test_the_agent_page_charts_tokens_issued_and_denied_per_day(world):
    tokens(world.org, world.agent, issued=[0, 0, 0, 2, 13], denied=[0, 5, 5])
    other = AgentFactory(org=world.org)
    tokens(world.org, other, issued=[0, 0], denied=[0])  # another agent's count for nothing here
    tokens(world.org, world.agent, issued=[20])  # before the chart's 14 days
    html = world.client.get(world.url("agent-detail", pk=world.agent.pk)).content.decode()
    rows = figures(html, "agent-tokens-chart")
    assert len(rows) == 14
    today, two_days, five_days, thirteen = rows[-1], rows[-3], rows[-6], rows[0]
    assert today[1:] == (3, 1, 4) and two_days[1:] == (1, 0, 1) and five_days[1:] == (0, 2, 2)
    assert thirteen[1:] == (1, 0, 1)
    assert sum(r[1] for r in rows) == 5 and sum(r[2] for r in rows) == 3
    assert '<strong data-testid="tokens-issued">5</strong>' in html
    assert '<strong data-testid="tokens-denied">3</strong>' in html
    assert html.count('class="series-1"') >= 2  # the denied segments are drawn


def test_the_agent_page_shows_its_last_token_and_audit_timeline(world):
    tokens(world.org, world.agent, issued=[3], audience="https://old.example/api")
    tokens(world.org, world.agent, issued=[0], audience=AUDIENCE)
    entries(world.org, [{"event": AuditEvent.AGENT_SUSPENDED, "actor": ("human", str(world.owner.user_id),
                                                                          world.owner.user.email),
                         "target": ("agent", str(world.agent.pk))}])
    html = world.client.get(world.url("agent-detail", pk=world.agent.pk)).content.decode()
    last = html[html.index('data-testid="last-token"'):].split("</dd>")[0]
    assert f"<code>{AUDIENCE}</code>" in last and "never" not in last
    timeline = html[html.index('id="timeline-title"'):]
    assert "<code>agent.suspended</code>" in timeline and "<code>token.issued</code>" in timeline
    assert world.owner.user.email in timeline
    assert f'href="/orgs/{world.org.slug}/audit/?actor=agent:{world.agent.pk}"' in timeline
    # Without audit:read there is no timeline (the agent is still shown).
    viewer = MemberFactory(org=world.org, role="viewer", user=UserFactory())
    from tests.agents_console.conftest import as_user

    seen = as_user(viewer.user).get(world.url("agent-detail", pk=world.agent.pk))  # a viewer: no audit:read
    assert seen.status_code == 200 and not seen.context["can"]["audit_read"]
    assert 'id="timeline-title"' not in seen.content.decode() and 'id="tokens-title"' in seen.content.decode()


def test_a_secret_past_the_orgs_maximum_age_is_flagged(world):
    AgentPolicy.objects.update_or_create(org=world.org, defaults={"secret_max_age_days": 30})
    secret_of(world.agent, age_days=45, last_used_days=2)
    html = world.client.get(world.url("agent-detail", pk=world.agent.pk)).content.decode()
    secrets = html[html.index('id="secrets-title"'):]
    assert "maximum secret age is 30 days" in secrets
    assert secrets.count('data-testid="over-age"') == 1 and "Past the 30-day maximum" in secrets
    assert "2\xa0days ago" in secrets or "2 days ago" in secrets
    fresh = AgentFactory(org=world.org, name="fresh", owners=[world.owner])
    secret_of(fresh, age_days=3)
    fresh_page = world.client.get(world.url("agent-detail", pk=fresh.pk)).content.decode()
    assert 'data-testid="over-age"' not in fresh_page


def test_the_agent_page_shows_delegations_in_and_out_and_recent_runs(world):
    person = MemberFactory(org=world.org, user=UserFactory(email="pat@example.com"))
    delegation_of(world.agent, person)
    sender = AgentFactory(org=world.org, name="sender-bot")
    sender.may_delegate_to.add(world.agent)
    target = AgentFactory(org=world.org, name="target-bot")
    world.agent.may_delegate_to.add(target)
    more_runs(world.agent, 25)
    html = world.client.get(world.url("agent-detail", pk=world.agent.pk)).content.decode()
    assert "pat@example.com" in html[html.index('id="delegations-title"'):html.index('id="secrets-title"')]
    senders = html[html.index('id="senders-title"'):html.index('id="delegations-title"')]
    assert "sender-bot" in senders and "target-bot" not in senders
    delegates = html[html.index('id="delegates-title"'):html.index('id="senders-title"')]
    assert "target-bot" in delegates and "checked" in delegates
    runs = html[html.index('id="runs-title"'):]
    assert len(re.findall(r">job \d{3}</a>", runs)) == 20 and f"/runs/?agent={world.agent.pk}" in runs


def test_owners_are_added_with_a_searching_picker_and_removed_by_unticking(world):
    members_bulk(world.org, 40)
    colleague = MemberFactory(org=world.org, role="owner", user=UserFactory(email="colleague@example.com"))
    html = world.client.get(world.url("agent-detail", pk=world.agent.pk)).content.decode()
    grant = html[html.index('id="grant-title"'):html.index('id="delegates-title"')]
    assert "person0001@" not in grant and grant.count('name="owners"') == 1
    assert f'data-picker="/api/v1/orgs/{world.org.slug}/members"' in grant and 'name="add_owner"' in grant
    grant_post = {"audiences": [AUDIENCE], "scopes": ["t:read"], "owners": [str(world.owner.pk)]}
    added = world.client.post(world.url("agent-detail", pk=world.agent.pk),
                              {**grant_post, "add_owner": "COLLEAGUE@example.com"})
    assert added.status_code == 302
    assert set(world.agent.owners.all()) == {world.owner, colleague}
    removed = world.client.post(world.url("agent-detail", pk=world.agent.pk),
                                {**grant_post, "owners": [str(colleague.pk)]})
    assert removed.status_code == 302 and list(world.agent.owners.all()) == [colleague]
    unknown = world.client.post(world.url("agent-detail", pk=world.agent.pk),
                                {**grant_post, "add_owner": "ghost@example.com"})
    assert unknown.status_code == 400 and "ghost@example.com" in unknown.content.decode()
    none_left = world.client.post(world.url("agent-detail", pk=world.agent.pk),
                                  {"audiences": [AUDIENCE], "scopes": ["t:read"]})
    assert none_left.status_code == 400 and "An agent needs at least one owner." in none_left.content.decode()
    assert list(world.agent.owners.all()) == [colleague]


def test_the_agent_page_costs_the_same_whatever_the_agent_holds(world):
    light = world.agent
    heavy = AgentFactory(org=world.org, name="heavy-bot", scopes=["t:read"], audiences=[AUDIENCE],
                         owners=[world.owner, *[MemberFactory(org=world.org, role="owner")
                                                for _ in range(4)]])
    people = members_bulk(world.org, 30)
    for m in people:
        delegation_of(heavy, m)
    for n in range(5):
        secret_of(heavy, age_days=n)
        AgentFactory(org=world.org).may_delegate_to.add(heavy)
        heavy.may_delegate_to.add(AgentFactory(org=world.org))
    more_runs(heavy, 40)
    tokens(world.org, heavy, issued=list(range(14)) * 3, denied=list(range(10)))
    secret_of(light)
    assert queries(world.client, world.url("agent-detail", pk=light.pk)) == queries(
        world.client, world.url("agent-detail", pk=heavy.pk))


def test_another_orgs_agent_connection_and_run_are_404(world):
    elsewhere = OrgFactory()
    agent = AgentFactory(org=elsewhere)
    connection = ConnectionFactory(org=elsewhere)
    run = more_runs(agent, 1)[0]
    for name, pk in [("agent-detail", agent.pk), ("agent-revoke", agent.pk), ("agent-status", agent.pk),
                     ("connection-detail", connection.pk), ("connection-delete", connection.pk),
                     ("connection-rotate", connection.pk), ("run-detail", run.pk), ("run-terminate", run.pk)]:
        assert world.client.get(world.url(name, pk=pk)).status_code == 404, name


# --- Connection ----------------------------------------------------------------------------------


def connection_entries(connection, *, introspected=(), signals=()):
    actor = ("connection", str(connection.pk), connection.name)
    target = ("connection", str(connection.pk))
    rows = [{"event": AuditEvent.TOKEN_INTROSPECTED, "actor": actor, "target": target, "ts": days_at(n, i),
             "data": {"jti": f"j{i}", "active": i % 2 == 0, "connection": str(connection.pk)}}
            for i, n in enumerate(introspected)]
    rows += [{"event": AuditEvent.SIGNAL_RECEIVED, "actor": actor, "target": ("agent", "x"),
              "ts": days_at(n, i),
              "data": {"agent": "x", "type": "output_flagged", "severity": "medium",
                       "connection": str(connection.pk)}} for i, n in enumerate(signals)]
    entries(connection.org, rows)


def days_at(n, i):
    from tests.agents_console.conftest import days_ago

    return days_ago(n, i)


def test_the_connection_page_charts_introspections_and_signals(world):
    connection_entries(world.connection, introspected=[0, 0, 1, 4], signals=[2])
    connection_entries(ConnectionFactory(org=world.org), introspected=[0, 0, 0], signals=[0])
    html = world.client.get(world.url("connection-detail", pk=world.connection.pk)).content.decode()
    assert '<strong data-testid="introspected">4</strong>' in html
    assert '<strong data-testid="signalled">1</strong>' in html
    introspections = figures(html, "connection-introspections-chart")
    assert [r[1] for r in introspections[-5:]] == [1, 0, 0, 1, 2]
    assert [r[1] for r in figures(html, "connection-signals-chart")][-3:] == [1, 0, 0]
    activity = html[html.index('id="activity-title"'):]
    assert "the token was" in activity and "<code>output_flagged</code> (medium)" in activity
    assert "Minimum trust" in html and "t:write" in html


def test_the_connection_page_costs_the_same_whatever_it_saw(world):
    quiet = ConnectionFactory(org=world.org)
    connection_entries(world.connection, introspected=list(range(14)) * 4, signals=list(range(14)))
    for n in range(10):
        AgentFactory(org=world.org, audiences=[AUDIENCE])
    assert queries(world.client, world.url("connection-detail", pk=quiet.pk)) == queries(
        world.client, world.url("connection-detail", pk=world.connection.pk))


# --- Run -----------------------------------------------------------------------------------------


def decided(run, *, score, decision="allow", path="dispatch", event=AuditEvent.TRUST_ALLOWED):
    target = ("run", str(run.pk)) if path == "dispatch" else ("agent", str(run.agent_id))
    entries(run.org, [{"event": event, "actor": ("human", "u", "someone"), "target": target,
                       "outcome": Outcome.SUCCESS if decision == "allow" else Outcome.DENIED,
                       "data": {"decision": decision, "score": score, "level": "standard",
                                "reasons": ["gate deploys needs 60"] if decision != "allow" else [],
                                "run": str(run.pk), "path": path, "agent": str(run.agent_id)}}])


def test_the_run_page_shows_decisions_with_trust_bound_tokens_and_approval(world):
    run = Run.objects.create(org=world.org, agent=world.agent, started_by_type="human", description="ship",
                             status=RunStatus.RUNNING, decision="escalate", trust_score=55,
                             trust_level="standard")
    decided(run, score=55, decision="escalate", event=AuditEvent.TRUST_ESCALATED)
    decided(run, score=41, decision="block", path="token:client_credentials", event=AuditEvent.TRUST_DENIED)
    other = more_runs(world.agent, 1)[0]
    decided(other, score=90)
    tokens(world.org, world.agent, issued=[0, 0], run=run)
    tokens(world.org, world.agent, issued=[0], run=other)
    Approval.objects.create(org=world.org, run=run, agent=world.agent, operation="deploy", score=55,
                            level="standard", status="approved", decided_by=world.owner.user,
                            decided_at=timezone.now(),
                            expires_at=timezone.now() + datetime.timedelta(hours=1))
    html = world.client.get(world.url("run-detail", pk=run.pk)).content.decode()
    decisions = html[html.index('id="decisions-title"'):html.index('id="tokens-title"')]
    assert "<code>escalate</code>" in decisions and "55 (standard)" in decisions
    assert "token:client_credentials" in decisions and "41 (standard)" in decisions
    assert "gate deploys needs 60" in decisions and "90 (standard)" not in decisions
    bound = html[html.index('id="tokens-title"'):html.index('id="approval-title"')]
    assert bound.count("<tr>") == 3  # the head and the two tokens of this run
    assert "They work until they expire or the run ends." in bound
    approval = html[html.index('id="approval-title"'):]
    assert "Approved by " + world.owner.user.email in approval and "score of 55" in approval


def test_the_run_page_costs_the_same_whatever_the_run_holds(world):
    light = more_runs(world.agent, 1)[0]
    heavy = more_runs(world.agent, 1)[0]
    tokens(world.org, world.agent, issued=[0] * 30, run=heavy)
    for score in range(5):
        decided(heavy, score=score)
    Approval.objects.create(org=world.org, run=heavy, agent=world.agent, score=1, level="low",
                            expires_at=timezone.now() + datetime.timedelta(hours=1))
    Approval.objects.create(org=world.org, run=light, agent=world.agent, score=1, level="low",
                            expires_at=timezone.now() + datetime.timedelta(hours=1))
    assert queries(world.client, world.url("run-detail", pk=light.pk)) == queries(
        world.client, world.url("run-detail", pk=heavy.pk))
