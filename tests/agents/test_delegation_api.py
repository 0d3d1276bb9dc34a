"""The admin API of delegations: listing and revoking people's delegations to agents, the agents an
agent may delegate to (`PATCH agents/{id}`), the org's delegation policy (`security-policy`) and the
delegations in the access-review export. Delegations are made over HTTP (device flow)."""

import csv
import io
from datetime import timedelta

import pytest
from django.db import connection as db
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents import policies
from agents.models import Agent, AgentPolicy, Delegation, RefreshToken
from audit.exports import access_review_rows
from core.permissions import Perm
from iam_project.api_urls import ACCESS_REVIEW_SOURCES
from tests.agents.conftest import AUDIENCE, build_world
from tests.agents.delegation_world import (
    approve,
    delegated_tokens,
    device_start,
    member_of,
    person_client,
    poll,
    refresh,
    second_agent,
)
from tests.factories import OrgFactory, api_key_for
from tests.helpers import audit_events, latest_event

pytestmark = pytest.mark.django_db

ADMIN_AUDIENCE = "https://admin.example.com"


def api(world, path):
    return f"/api/v1/orgs/{world.slug}/{path}"


def key_client(org, *perms) -> Client:
    _, secret = api_key_for(org, perms)
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}")


def delegation_state():
    return sorted(Delegation.objects.values_list("pk", "status", "revoked_at", "expires_at"))


def delegates_of(agent) -> list[str]:
    return sorted(Agent.objects.get(pk=agent.pk).may_delegate_to.values_list("client_id", flat=True))


@pytest.fixture
def person(world):
    return member_of(world).user


@pytest.fixture
def delegated(client, world, person):
    """The person approved the world's agent: (their tokens, the delegation)."""
    tokens = delegated_tokens(client, world, person)
    return tokens, Delegation.objects.get()


def agent_owned_by(world, member):
    """Make `member` (an ordinary member) an owner of the world's agent, beside the org's owner."""
    policies.agent_grant_update(access=world.access, agent=world.agent, owners=[world.owner, member])


# --- Listing and reading -------------------------------------------------------------------------


def test_a_delegation_reads_with_its_agent_person_and_status(world, person, delegated):
    _, delegation = delegated
    response = key_client(world.org, Perm.AGENT_READ).get(api(world, f"delegations/{delegation.pk}"))
    assert response.status_code == 200, response.content
    assert response.json() == {
        "id": str(delegation.pk), "agent": str(world.agent.pk), "agent_client_id": world.agent.client_id,
        "agent_name": "triage-bot", "person": str(person.pk), "person_email": person.email,
        "audience": AUDIENCE, "scopes": ["tickets:read"], "status": "active",
        "created_at": delegation.created_at.isoformat().replace("+00:00", "Z"),
        "expires_at": delegation.expires_at.isoformat().replace("+00:00", "Z"),
        "revoked_at": None, "revoked_reason": "",
    }


def delegate(client, w, user, agent, secret) -> None:
    """`user` approves `agent` (any agent of the world) over HTTP and the agent gets its tokens."""
    started = device_start(client, w, agent=agent, secret=secret).json()
    assert approve(person_client(user), started["user_code"]).status_code == 200
    response = poll(client, w, started["device_code"], agent=agent, secret=secret)
    assert response.status_code == 200, response.content


def test_an_expired_delegation_reads_expired_and_live_leaves_it_out(client, world, person, delegated):
    _, old = delegated
    Delegation.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    other, other_secret = second_agent(world, name="writer-bot")
    delegate(client, world, person, other, other_secret)
    fresh = Delegation.objects.get(agent=other)
    reader = key_client(world.org, Perm.AGENT_READ)
    every = reader.get(api(world, "delegations")).json()["results"]
    assert [(d["id"], d["status"]) for d in every] == [(str(fresh.pk), "active"), (str(old.pk), "expired")]
    live = reader.get(api(world, "delegations?status=live")).json()["results"]
    assert [d["id"] for d in live] == [str(fresh.pk)]
    mine = reader.get(api(world, f"delegations?agent={world.agent.pk}")).json()["results"]
    assert [d["id"] for d in mine] == [str(old.pk)]
    assert reader.get(api(world, f"delegations?agent={world.agent.pk}&status=live")).json()["results"] == []
    bad = reader.get(api(world, "delegations?status=revoked&agent=nope"))
    assert bad.status_code == 400 and set(bad.json()["fields"]) == {"status", "agent"}


def test_listing_needs_agent_read(world, delegated):
    assert Client().get(api(world, "delegations")).status_code == 401
    refused = key_client(world.org, Perm.ORG_READ).get(api(world, "delegations"))
    assert refused.status_code == 403
    denial = latest_event(world.org, "access.denied")
    assert denial.data["required"] == "agent:read" and denial.actor_type == "api_key"


def test_another_orgs_delegations_are_not_listed_and_404(client, world, delegated):
    other = build_world(OrgFactory())
    delegated_tokens(client, other, member_of(other).user)
    theirs = Delegation.objects.get(org=other.org)
    reader = key_client(world.org, Perm.AGENT_READ)
    listed = reader.get(api(world, "delegations")).json()["results"]
    assert [d["id"] for d in listed] == [str(delegated[1].pk)]
    assert reader.get(api(world, f"delegations/{theirs.pk}")).status_code == 404
    assert reader.get(api(world, f"delegations?agent={other.agent.pk}")).json()["results"] == []


def test_the_list_costs_the_same_queries_for_one_row_or_twenty(client, world, delegated):
    reader = key_client(world.org, Perm.AGENT_READ)
    assert reader.get(api(world, "delegations")).status_code == 200  # the key's first use is recorded
    with CaptureQueriesContext(db) as one:
        assert len(reader.get(api(world, "delegations")).json()["results"]) == 1
    one = len(one.captured_queries)  # the log is read lazily and each request resets it
    other, other_secret = second_agent(world, name="writer-bot")
    for i in range(19):  # a person may try ten codes in ten minutes: each approval is someone else's
        agent, secret = (other, other_secret) if i % 2 else (world.agent, world.agent_secret)
        delegate(client, world, member_of(world).user, agent, secret)
    with CaptureQueriesContext(db) as twenty:
        rows = reader.get(api(world, "delegations")).json()["results"]
    assert len(rows) == 20 and {r["agent_name"] for r in rows} == {"triage-bot", "writer-bot"}
    assert len(twenty.captured_queries) == one


# --- Revoking ------------------------------------------------------------------------------------


def _revoke(client, world, delegation):
    return client.post(api(world, f"delegations/{delegation.pk}/revoke"), content_type="application/json")


def _assert_revoked(client, world, tokens, delegation, response, actor_id, introspect):
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["id"], body["status"], body["revoked_reason"]) == (str(delegation.pk), "revoked", "revoked")
    assert body["revoked_at"] is not None
    assert Delegation.objects.get(pk=delegation.pk).status == "revoked"
    assert not RefreshToken.objects.filter(delegation=delegation, revoked_at__isnull=True).exists()
    event = latest_event(world.org, "delegation.revoked")
    assert event.actor_id == actor_id and event.target_id == str(delegation.pk)
    assert event.data == {"agent": str(world.agent.pk), "person": str(delegation.user_id),
                          "reason": "revoked", "refresh_tokens": 1}
    # The tokens stop at once: introspection right after, and the refresh token.
    assert introspect(world, tokens["access_token"]) == {"active": False}
    assert refresh(client, world, tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_the_person_revokes_their_delegation(client, world, person, delegated, introspect):
    tokens, delegation = delegated
    assert introspect(world, tokens["access_token"])["active"] is True
    response = _revoke(person_client(person), world, delegation)
    _assert_revoked(client, world, tokens, delegation, response, str(person.pk), introspect)


def test_an_owner_of_the_agent_revokes_it(client, world, delegated, introspect):
    tokens, delegation = delegated
    keeper = member_of(world)  # an ordinary member: no member:write
    agent_owned_by(world, keeper)
    response = _revoke(person_client(keeper.user), world, delegation)
    _assert_revoked(client, world, tokens, delegation, response, str(keeper.user.pk), introspect)


def test_an_admin_revokes_it(client, world, delegated, introspect):
    tokens, delegation = delegated
    key, secret = api_key_for(world.org, [Perm.ORG_READ, Perm.MEMBER_WRITE])
    admin = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    response = _revoke(admin, world, delegation)
    _assert_revoked(client, world, tokens, delegation, response, str(key.pk), introspect)


def test_an_unrelated_member_cannot_revoke_it(client, world, delegated, introspect):
    tokens, delegation = delegated
    bystander = member_of(world)
    before = delegation_state()
    response = _revoke(person_client(bystander.user), world, delegation)
    assert response.status_code == 403 and response.json()["error"] == "permission_denied"
    assert delegation_state() == before
    assert not audit_events(world.org, "delegation.revoked").exists()
    denial = latest_event(world.org, "access.denied")
    assert denial.actor_id == str(bystander.user.pk) and denial.outcome == "denied"
    assert denial.data == {"reason": "delegation_revoke", "action": "delegation.revoke"}
    assert introspect(world, tokens["access_token"])["active"] is True


def test_another_orgs_delegation_is_404_and_stays_live(client, world, delegated, introspect):
    other = build_world(OrgFactory())
    tokens = delegated_tokens(client, other, member_of(other).user)
    theirs = Delegation.objects.get(org=other.org)
    before = delegation_state()
    response = _revoke(person_client(world.owner.user), world, theirs)
    assert response.status_code == 404
    assert delegation_state() == before
    assert not audit_events(world.org, "delegation.revoked").exists()
    assert not audit_events(other.org, "delegation.revoked").exists()
    assert introspect(other, tokens["access_token"])["active"] is True


def test_revoking_an_ended_delegation_answers_it_and_records_nothing_more(world, person, delegated):
    _, delegation = delegated
    browser = person_client(person)
    assert _revoke(browser, world, delegation).status_code == 200
    again = _revoke(browser, world, delegation)
    assert again.status_code == 200 and again.json()["status"] == "revoked"
    assert audit_events(world.org, "delegation.revoked").count() == 1


# --- May delegate to -----------------------------------------------------------------------------


def _patch(client, world, agent, body):
    return client.patch(api(world, f"agents/{agent.pk}"), body, content_type="application/json")


def test_an_owner_sets_the_agents_it_may_delegate_to(world):
    keeper = member_of(world)
    agent_owned_by(world, keeper)
    writer, _ = second_agent(world, name="writer-bot")
    response = _patch(person_client(keeper.user), world, world.agent, {"may_delegate_to": [writer.client_id]})
    assert response.status_code == 200, response.content
    assert response.json()["may_delegate_to"] == [writer.client_id]
    assert response.json()["scopes"] == ["tickets:read"]  # the grant is as it was
    assert delegates_of(world.agent) == [writer.client_id]
    event = latest_event(world.org, "agent.delegates_changed")
    assert event.actor_id == str(keeper.user.pk) and event.target_id == str(world.agent.pk)
    assert event.data == {"may_delegate_to": [writer.client_id], "previous": []}
    cleared = _patch(person_client(keeper.user), world, world.agent, {"may_delegate_to": []})
    assert cleared.status_code == 200 and cleared.json()["may_delegate_to"] == []
    assert latest_event(world.org, "agent.delegates_changed").data == {
        "may_delegate_to": [], "previous": [writer.client_id]}


def _admin_bot(world):
    """An agent of the org holding member:write (for the admin API), registered by the org's owner."""
    policies.connection_create(access=world.access, name="Admin", audience=ADMIN_AUDIENCE,
                               scopes=["member:write"])
    return policies.agent_create(access=world.access, name="admin-bot", scopes=["member:write"],
                                 audiences=[ADMIN_AUDIENCE])[0]


def test_naming_an_agent_stronger_than_the_caller_is_escalation_denied(world):
    keeper = member_of(world)  # owns the agent, but holds no member:write
    agent_owned_by(world, keeper)
    admin_bot = _admin_bot(world)
    response = _patch(person_client(keeper.user), world, world.agent,
                      {"may_delegate_to": [admin_bot.client_id]})
    assert response.status_code == 403 and response.json()["error"] == "escalation_denied"
    assert delegates_of(world.agent) == []
    assert not audit_events(world.org, "agent.delegates_changed").exists()
    denial = latest_event(world.org, "access.escalation_denied")
    assert denial.actor_id == str(keeper.user.pk) and denial.outcome == "denied"
    assert denial.data == {"reason": "may_delegate_to", "missing": ["member:write"]}


def test_a_refused_delegate_leaves_the_grant_in_the_same_patch_unchanged(world):
    keeper = member_of(world)
    agent_owned_by(world, keeper)
    admin_bot = _admin_bot(world)
    before = audit_events(world.org, "agent.grant_changed").count()
    response = _patch(person_client(keeper.user), world, world.agent,
                      {"scopes": ["tickets:read", "tickets:write"], "may_delegate_to": [admin_bot.client_id]})
    assert response.status_code == 403 and response.json()["error"] == "escalation_denied"
    assert Agent.objects.get(pk=world.agent.pk).scopes == ["tickets:read"]
    assert audit_events(world.org, "agent.grant_changed").count() == before
    assert latest_event(world.org, "access.escalation_denied").data["reason"] == "may_delegate_to"
    both = _patch(person_client(keeper.user), world, world.agent,
                  {"scopes": ["tickets:read", "tickets:write"], "may_delegate_to": []})
    assert both.status_code == 200 and both.json()["scopes"] == ["tickets:read", "tickets:write"]


def test_a_member_who_does_not_answer_for_the_agent_cannot_set_its_delegates(world):
    bystander = member_of(world)
    writer, _ = second_agent(world, name="writer-bot")
    response = _patch(person_client(bystander.user), world, world.agent,
                      {"may_delegate_to": [writer.client_id]})
    assert response.status_code == 403
    assert delegates_of(world.agent) == []
    assert latest_event(world.org, "access.escalation_denied").actor_id == str(bystander.user.pk)
    assert not audit_events(world.org, "agent.delegates_changed").exists()


@pytest.mark.parametrize("whose", ["another org's", "unknown"])
def test_a_client_id_not_of_this_org_is_404(world, whose):
    writer, _ = second_agent(world, name="writer-bot")
    policies.agent_delegates_set(access=world.access, agent=world.agent, targets=[writer])
    name = build_world(OrgFactory()).agent.client_id if whose == "another org's" else "agt_nobody"
    response = _patch(person_client(world.owner.user), world, world.agent,
                      {"may_delegate_to": [writer.client_id, name], "scopes": []})
    assert response.status_code == 404 and response.json()["error"] == "not_found"
    assert delegates_of(world.agent) == [writer.client_id]
    assert Agent.objects.get(pk=world.agent.pk).scopes == ["tickets:read"]
    assert audit_events(world.org, "agent.delegates_changed").count() == 1  # the setup's


def test_an_agent_cannot_delegate_to_itself(world):
    response = _patch(person_client(world.owner.user), world, world.agent,
                      {"may_delegate_to": [world.agent.client_id]})
    assert response.status_code == 400 and "may_delegate_to" in response.json()["fields"]
    assert delegates_of(world.agent) == []
    assert not audit_events(world.org, "agent.delegates_changed").exists()


def test_the_agent_list_shows_delegates_in_constant_queries(world):
    reader = key_client(world.org, Perm.AGENT_READ)
    assert reader.get(api(world, "agents")).status_code == 200  # the key's first use is recorded
    with CaptureQueriesContext(db) as few:
        assert reader.get(api(world, "agents")).status_code == 200
    few = len(few.captured_queries)
    targets = [second_agent(world, name=f"helper-{i}")[0] for i in range(4)]
    policies.agent_delegates_set(access=world.access, agent=world.agent, targets=targets)
    policies.agent_delegates_set(access=world.access, agent=targets[0], targets=targets[1:3])
    with CaptureQueriesContext(db) as many:
        body = reader.get(api(world, "agents")).json()["results"]
    by_name = {a["name"]: a["may_delegate_to"] for a in body}
    assert by_name["triage-bot"] == sorted(t.client_id for t in targets)
    assert by_name["helper-0"] == sorted(t.client_id for t in targets[1:3]) and by_name["helper-3"] == []
    assert len(many.captured_queries) == few


# --- The org's delegation policy -----------------------------------------------------------------

POLICY = "security-policy"
DELEGATION_POLICY = {"max_delegation_depth": 5, "delegation_max_lifetime_seconds": 3600,
                     "delegation_refresh_tokens": False, "delegations_end_with_session": True}


def test_the_delegation_policy_round_trips(world):
    admin = person_client(world.owner.user)
    defaults = admin.get(api(world, POLICY)).json()
    assert {k: defaults[k] for k in DELEGATION_POLICY} == {
        "max_delegation_depth": 3, "delegation_max_lifetime_seconds": 7 * 24 * 3600,
        "delegation_refresh_tokens": True, "delegations_end_with_session": False}
    response = admin.patch(api(world, POLICY), DELEGATION_POLICY, content_type="application/json")
    assert response.status_code == 200, response.content
    assert {k: response.json()[k] for k in DELEGATION_POLICY} == DELEGATION_POLICY
    assert {k: admin.get(api(world, POLICY)).json()[k] for k in DELEGATION_POLICY} == DELEGATION_POLICY
    saved = AgentPolicy.objects.for_org(world.org).get()
    assert (saved.max_delegation_depth, saved.delegation_refresh_tokens) == (5, False)
    event = latest_event(world.org, "policy.changed")
    assert event.data == {"fields": sorted(DELEGATION_POLICY), "previous": {
        "max_delegation_depth": 3, "delegation_max_lifetime_seconds": 7 * 24 * 3600,
        "delegation_refresh_tokens": True, "delegations_end_with_session": False}}


def test_the_policy_applies_to_the_next_approval(client, world, person):
    admin = person_client(world.owner.user)
    admin.patch(api(world, POLICY), {"delegation_refresh_tokens": False,
                                     "delegation_max_lifetime_seconds": 600}, content_type="application/json")
    tokens = delegated_tokens(client, world, person)
    assert "refresh_token" not in tokens
    delegation = Delegation.objects.get()
    assert (delegation.expires_at - delegation.created_at).total_seconds() <= 600


@pytest.mark.parametrize("change", [
    {"max_delegation_depth": 0}, {"max_delegation_depth": 9},
    {"delegation_max_lifetime_seconds": 299}, {"delegation_max_lifetime_seconds": 90 * 24 * 3600 + 1},
    {"delegation_refresh_tokens": "perhaps"}, {"delegations_end_with_session": None},
    {"max_delegation_depth": 4, "delegation_max_lifetime_seconds": 10},
])
def test_out_of_range_delegation_policy_is_refused_and_changes_nothing(world, change):
    before = audit_events(world.org, "policy.changed").count()
    response = person_client(world.owner.user).patch(api(world, POLICY), {**change, "lockout_threshold": 3},
                                                     content_type="application/json")
    assert response.status_code == 400 and response.json()["error"] == "validation_error"
    bad = {k for k in change if not (k == "max_delegation_depth" and change[k] == 4)}
    assert set(response.json()["fields"]) == bad
    assert not AgentPolicy.objects.for_org(world.org).exists()
    assert person_client(world.owner.user).get(api(world, POLICY)).json()["lockout_threshold"] == 5
    assert audit_events(world.org, "policy.changed").count() == before


def test_the_bounds_themselves_are_accepted(world):
    admin = person_client(world.owner.user)
    for depth, lifetime in ((1, 300), (8, 90 * 24 * 3600)):
        body = {"max_delegation_depth": depth, "delegation_max_lifetime_seconds": lifetime}
        response = admin.patch(api(world, POLICY), body, content_type="application/json")
        assert response.status_code == 200, response.content
        saved = AgentPolicy.objects.for_org(world.org).get()
        assert (saved.max_delegation_depth, saved.delegation_max_lifetime_seconds) == (depth, lifetime)


# --- The access review ---------------------------------------------------------------------------


def _export(world) -> list[dict]:
    response = key_client(world.org, Perm.ACCESS_REVIEW_EXPORT).get(api(world, "exports/access-review.csv"))
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode("utf-8"))))


def test_each_live_delegation_is_a_row_after_its_agent(client, world, person, delegated):
    _, live = delegated
    ended = delegated_tokens(client, world, member_of(world).user)
    ended_row = Delegation.objects.exclude(pk=live.pk).get()
    policies.delegation_revoke(access=world.access, delegation=ended_row)
    expired_person = member_of(world).user
    delegated_tokens(client, world, expired_person)
    Delegation.objects.filter(user=expired_person).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert ended and Delegation.objects.count() == 3

    rows = _export(world)
    kinds = [r["principal_type"] for r in rows]
    agent_at = kinds.index("agent")
    assert kinds[agent_at + 1] == "delegation" and kinds.count("delegation") == 1
    assert rows[agent_at + 1] == {
        "principal_type": "delegation", "principal_id": str(live.pk),
        "name": f"triage-bot for {person.email}", "email": person.email, "status": "active",
        "source": "manual", "org_role": "", "custom_roles": "", "teams": "",
        "effective_permissions": "tickets:read", "mfa_enrolled": "", "last_login_at": "",
        "created_at": live.created_at.isoformat(), "owner": person.email, "scopes": "tickets:read",
        "audiences": AUDIENCE, "secret_rotated_at": "",
    }
    assert latest_event(world.org, "export.access_review").data == {"rows": len(rows)}


def _delegations_for(client, w, people: int, agents: int):
    """`people` members each approving each of `agents` agents of the world."""
    extra = [second_agent(w, name=f"helper-{i}") for i in range(agents - 1)]
    for _ in range(people):
        user = member_of(w).user
        for agent, secret in [(w.agent, w.agent_secret), *extra]:
            delegate(client, w, user, agent, secret)


def test_delegation_rows_cost_the_same_queries_however_many(client, django_assert_num_queries):
    small = build_world()
    _delegations_for(client, small, people=1, agents=1)
    with CaptureQueriesContext(db) as one:
        rows = list(access_review_rows(small.org, ACCESS_REVIEW_SOURCES))
    one = len(one.captured_queries)  # the log is read lazily and each request resets it
    assert [r[0] for r in rows].count("delegation") == 1
    large = build_world()
    _delegations_for(client, large, people=3, agents=3)
    with django_assert_num_queries(one):
        rows = list(access_review_rows(large.org, ACCESS_REVIEW_SOURCES))
    assert [r[0] for r in rows].count("delegation") == 9
