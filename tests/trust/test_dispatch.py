"""Dispatch through the trust gates, over HTTP: the org floor, a connection's minimum and a policy
gate each allow, escalate or block; an escalated run waits (its tokens are authorization_pending)
until a person other than its dispatcher approves it; the same gates hold at the token endpoint;
a collapse contains the agent; a score the client asserts is ignored. Each asserts the answer, what
changed (or that nothing did) and the audit event."""

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from agents.models import Agent, Run
from core.permissions import Perm
from tests.agents.conftest import AUDIENCE, basic, post_form
from tests.factories import MemberFactory, api_key_for
from tests.helpers import audit_events, latest_event
from trust.models import Approval


def _runs(tw, body=None, api=None, **headers):
    return (api or tw.api).post(
        tw.url("runs"), {"agent": str(tw.agent.pk), **(body or {})}, format="json", **headers
    )


def _token(tw, **params):
    return post_form(
        Client(),
        tw.world.url("token"),
        {"grant_type": "client_credentials", **params},
        auth=(tw.agent.client_id, tw.world.agent_secret),
    )


def _introspect(tw, token) -> bool:
    response = post_form(
        Client(),
        tw.world.url("introspect"),
        {"token": token},
        auth=(tw.world.connection.client_id, tw.world.connection_secret),
    )
    return response.json()["active"]


def _run_state(tw, run_id):
    return Client().get(
        f"/oauth/{tw.org.slug}/runs/{run_id}",
        HTTP_AUTHORIZATION=basic(tw.agent.client_id, tw.world.agent_secret),
    )


def _gate(tw, **body):
    response = tw.api.post(
        tw.url("trust-gates"), {"name": "deploys", "operation": "deploy", **body}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def _min_trust(tw, value):
    response = tw.api.patch(
        tw.url(f"connections/{tw.world.connection.pk}"), {"min_trust": value}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def _signal(tw, severity="critical", type="guardrail_violation"):
    response = Client().post(
        f"/oauth/{tw.org.slug}/signals",
        json.dumps({"agent": tw.agent.client_id, "type": type, "severity": severity}),
        content_type="application/json",
        HTTP_AUTHORIZATION=basic(tw.world.connection.client_id, tw.world.connection_secret),
    )
    assert response.status_code == 202, response.content


def _approver(tw, perms=(Perm.TRUST_APPROVE, Perm.TRUST_READ)):
    person = MemberFactory(org=tw.org, role="owner")  # an org owner, not one of the agent's owners
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Bearer {api_key_for(tw.org, list(perms), created_by=person.user)[1]}"
    )
    return person, client


# Allow -----------------------------------------------------------------------------------------


def test_a_run_above_every_gate_is_allowed_with_its_score_and_mints_run_bound_tokens(tw):
    response = _runs(tw, {"description": "triage", "operation": "triage"})
    assert response.status_code == 201, response.content
    body = response.json()
    score = tw.score()
    assert body["status"] == "running" and body["decision"] == "allow"
    assert body["trust"] == {"score": score, "level": tw.trust()["level"]}
    run = Run.objects.get(pk=body["id"])
    assert (run.decision, run.trust_score) == ("allow", score)
    event = latest_event(tw.org, "trust.allow")
    assert (
        event.data["run"] == body["id"] and event.data["score"] == score and event.data["decision"] == "allow"
    )
    assert _token(tw, run=body["id"]).status_code == 200
    assert _run_state(tw, body["id"]).json() == {"id": body["id"], "status": "running"}


# Block -----------------------------------------------------------------------------------------


def test_a_connection_minimum_above_the_score_blocks_dispatch_and_the_token_endpoint(tw):
    _min_trust(tw, 95)
    response = _runs(tw)
    assert response.status_code == 403
    body = response.json()
    assert body["error"] == "dispatch_blocked" and body["decision"] == "block"
    assert any(AUDIENCE in reason and "95" in reason for reason in body["reasons"])
    assert body["trust"]["score"] == tw.score()
    assert not Run.objects.exists()
    denied = latest_event(tw.org, "trust.deny")
    assert denied.outcome == "denied" and denied.data["path"] == "dispatch"
    token = _token(tw)
    assert token.status_code == 403 and token.json()["error"] == "access_denied"
    assert (
        token.json()["reasons"]
        and latest_event(tw.org, "trust.deny").data["path"] == "token:client_credentials"
    )
    assert Agent.objects.get(pk=tw.agent.pk).status == "active"  # above the floor: not contained
    _min_trust(tw, 10)
    assert _runs(tw).status_code == 201 and _token(tw).status_code == 200


def test_a_policy_gate_blocks_its_operation_only(tw):
    _gate(tw, min_score=95, below="block")
    assert _runs(tw, {"operation": "deploy"}).status_code == 403
    assert _runs(tw, {"operation": "triage"}).status_code == 201
    assert latest_event(tw.org, "trust.deny").data["gates"][-1] == {
        "gate": "gate",
        "name": "deploys",
        "min_score": 95,
        "outcome": "block",
    }


def test_a_score_the_client_asserts_about_itself_is_ignored(tw):
    _gate(tw, min_score=95, below="block")
    for body, headers in (
        ({"trust": 100, "score": 100, "level": "trusted"}, {}),
        ({}, {"HTTP_X_TRUST_SCORE": "100"}),
    ):
        response = _runs(tw, {"operation": "deploy", **body}, **headers)
        assert response.status_code == 403 and response.json()["trust"]["score"] < 95
    token = _token(tw, trust_score="100", score="100")
    assert token.status_code == 200 and "trust_score" not in json.dumps(token.json())
    assert not Run.objects.exists()


def test_dispatch_names_only_the_agents_own_services(tw):
    response = _runs(tw, {"audiences": ["https://elsewhere.example"]})
    assert response.status_code == 400 and "audiences" in response.json()["fields"]
    assert _runs(tw, {"operation": "rm -rf"}).status_code == 400
    assert not Run.objects.exists()


# Escalate ------------------------------------------------------------------------------------


def test_an_escalated_run_waits_for_a_person_and_then_mints_tokens(tw):
    _gate(tw, min_score=95, below="escalate")
    response = _runs(tw, {"operation": "deploy", "description": "ship it"})
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "pending_approval" and body["decision"] == "escalate" and body["approval"]
    assert latest_event(tw.org, "trust.escalate").data["approval"] == body["approval"]
    pending = _token(tw, run=body["id"])
    assert pending.status_code == 400 and pending.json()["error"] == "authorization_pending"
    assert _run_state(tw, body["id"]).json()["status"] == "pending_approval"

    queue = tw.api.get(tw.url("approvals") + "?status=pending").json()
    listed = queue["results"] if isinstance(queue, dict) else queue
    assert [a["id"] for a in listed] == [body["approval"]]
    assert listed[0]["score"] == body["trust"]["score"] and listed[0]["reasons"]

    _person, approver = _approver(tw)
    decided = approver.post(tw.url(f"approvals/{body['approval']}/approve"), {}, format="json")
    assert decided.status_code == 200, decided.content
    assert decided.json()["status"] == "approved"
    assert latest_event(tw.org, "approval.approved").data["run"] == body["id"]
    assert _run_state(tw, body["id"]).json()["status"] == "running"
    assert _token(tw, run=body["id"]).status_code == 200
    again = approver.post(tw.url(f"approvals/{body['approval']}/deny"), {}, format="json")
    assert again.status_code == 409 and Approval.objects.get().status == "approved"


def test_the_dispatcher_cannot_approve_their_own_run_nor_an_owner_with_separation_of_duties(tw):
    _gate(tw, min_score=95, below="escalate")
    person, client = _approver(tw, perms=(Perm.TRUST_APPROVE, Perm.RUN_WRITE, Perm.TRUST_READ))
    body = _runs(tw, {"operation": "deploy"}, api=client).json()
    refused = client.post(tw.url(f"approvals/{body['approval']}/approve"), {}, format="json")
    assert refused.status_code == 403 and refused.json()["error"] == "separation_of_duties"
    assert latest_event(tw.org, "approval.refused").data["reason"] == "dispatcher"
    owner = APIClient()
    owner.credentials(
        HTTP_AUTHORIZATION="Bearer "
        + api_key_for(tw.org, [Perm.TRUST_APPROVE], created_by=tw.world.owner.user)[1]
    )
    refused = owner.post(tw.url(f"approvals/{body['approval']}/approve"), {}, format="json")
    assert (
        refused.status_code == 403
        and latest_event(tw.org, "approval.refused").data["reason"] == "agent_owner"
    )
    assert Approval.objects.get().status == "pending" and Run.objects.get().status == "pending_approval"
    without = _approver(tw, perms=(Perm.TRUST_READ,))[1]
    assert without.post(tw.url(f"approvals/{body['approval']}/approve"), {}, format="json").status_code == 403


def test_an_approval_expires_by_its_timestamp_and_its_run_with_it(tw):
    _gate(tw, min_score=95, below="escalate")
    body = _runs(tw, {"operation": "deploy"}).json()
    past = timezone.now() - timedelta(seconds=1)
    Approval.objects.update(expires_at=past)
    Run.objects.update(pending_until=past)  # as the approval TTL had passed: no worker has run
    assert _run_state(tw, body["id"]).json()["status"] == "terminated"
    token = _token(tw, run=body["id"])
    assert token.status_code == 400 and token.json()["error"] == "invalid_request"
    _person, approver = _approver(tw)
    late = approver.post(tw.url(f"approvals/{body['approval']}/approve"), {}, format="json")
    assert late.status_code == 409 and late.json()["error"] == "approval_expired"
    assert Approval.objects.get().status == "expired"
    assert latest_event(tw.org, "approval.expired").data["run"] == body["id"]


def test_a_denied_run_ends(tw):
    _gate(tw, min_score=95, below="escalate")
    body = _runs(tw, {"operation": "deploy"}).json()
    _person, approver = _approver(tw)
    response = approver.post(
        tw.url(f"approvals/{body['approval']}/deny"), {"comment": "not today"}, format="json"
    )
    assert response.status_code == 200 and response.json()["status"] == "denied"
    assert Run.objects.get().status == "terminated"
    assert latest_event(tw.org, "approval.denied").data["comment"] == "not today"


# Containment ---------------------------------------------------------------------------------


def test_a_collapse_contains_the_agent_its_tokens_die_and_it_resumes_only_once_recovered(
    tw, django_capture_on_commit_callbacks
):
    from tests.agents.delegation_world import delegated_tokens, member_of

    run = _runs(tw).json()
    token = _token(tw, run=run["id"]).json()["access_token"]
    plain = _token(tw).json()["access_token"]
    acting_for = delegated_tokens(Client(), tw.world, member_of(tw.world).user)
    assert _introspect(tw, acting_for["access_token"])
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):  # as each signal's commit would
            _signal(tw, "critical")
    agent = Agent.objects.get(pk=tw.agent.pk)
    assert agent.status == "suspended" and agent.contained_at is not None
    contained = latest_event(tw.org, "agent.contained")
    assert contained.data["score"] < contained.data["floor"] and contained.data["runs_ended"] == 1
    assert not _introspect(tw, token) and not _introspect(tw, plain)
    assert not _introspect(tw, acting_for["access_token"])  # delegated from a person: dies too
    assert Run.objects.get().status == "terminated"
    assert _run_state(tw, run["id"]).json() == {"id": run["id"], "status": "terminated"}
    blocked = _runs(tw)
    assert blocked.status_code in (403, 409) and not Run.objects.filter(status="running").exists()
    owner = APIClient()  # one of the agent's owners: only they resume a contained agent
    owner.credentials(HTTP_AUTHORIZATION="Bearer " + api_key_for(
        tw.org, [Perm.AGENT_WRITE], created_by=tw.world.owner.user)[1])
    resume = owner.post(tw.url(f"agents/{tw.agent.pk}/resume"), {}, format="json")
    assert resume.status_code == 409 and resume.json()["error"] == "trust_below_floor"
    assert Agent.objects.get(pk=tw.agent.pk).status == "suspended"
    tw.policy(org_floor=0)
    not_an_owner = tw.api.post(tw.url(f"agents/{tw.agent.pk}/resume"), {}, format="json")
    assert not_an_owner.status_code == 403 and not_an_owner.json()["error"] == "owner_required"
    resume = owner.post(tw.url(f"agents/{tw.agent.pk}/resume"), {}, format="json")
    assert resume.status_code == 200, resume.content
    agent.refresh_from_db()
    assert agent.status == "active" and agent.contained_at is None


# Stop ----------------------------------------------------------------------------------------


def test_a_graceful_stop_tells_the_agent_and_keeps_its_tokens_until_the_deadline(tw):
    run = _runs(tw).json()
    token = _token(tw, run=run["id"]).json()["access_token"]
    stopped = tw.api.post(tw.url(f"runs/{run['id']}/stop"), {"grace_seconds": 120}, format="json")
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopping"
    state = _run_state(tw, run["id"]).json()
    assert state["status"] == "stopping" and state["stop_by"].endswith("Z")
    assert _introspect(tw, token)  # it may finish its work until stop_by
    refused = _token(tw, run=run["id"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_request"
    assert latest_event(tw.org, "run.stopping").data["stop_by"]
    tw.api.post(tw.url(f"runs/{run['id']}/terminate"), {}, format="json")
    assert not _introspect(tw, token)
    assert _run_state(tw, run["id"]).json()["status"] == "terminated"


def test_another_agents_run_is_a_404_to_the_run_state_endpoint(tw):
    from tests.trust.conftest import trust_world

    other = trust_world()
    run = _runs(other).json()
    assert _run_state(tw, run["id"]).status_code == 404
    assert _run_state(tw, "not-a-uuid").status_code == 404


# Cost ----------------------------------------------------------------------------------------


def _decision_queries(agent) -> int:
    from trust.dispatch import dispatch_evaluate

    agent = Agent.objects.select_related("org").get(pk=agent.pk)  # no row cached on the instance
    with CaptureQueriesContext(connection) as queries:
        dispatch_evaluate(agent, operation="deploy")
    return len(queries)


def test_the_dispatch_decision_costs_constant_queries(tw, root):
    from django.core.cache import cache

    tw.register(root)
    _gate(tw, min_score=10, below="escalate")
    agent = Agent.objects.select_related("org").get(pk=tw.agent.pk)
    cold = _decision_queries(agent)
    assert _decision_queries(agent) == 0  # the cache holds until an input changes or valid_until
    for severity in ("low", "medium", "low"):
        _signal(tw, severity)
    _gate(tw, name="more", min_score=5)
    cache.clear()
    assert _decision_queries(agent) == cold


@pytest.mark.parametrize("change", ["signal", "gate", "minimum"])
def test_no_cached_score_outlives_a_change_to_its_inputs(tw, change):
    from trust.dispatch import dispatch_evaluate

    agent = Agent.objects.select_related("org").get(pk=tw.agent.pk)
    before = dispatch_evaluate(agent, operation="deploy")
    assert before.decision == "allow"
    if change == "signal":
        _signal(tw, "high")
        assert dispatch_evaluate(agent, operation="deploy").score < before.score
    elif change == "gate":
        _gate(tw, min_score=99, below="escalate")
        assert dispatch_evaluate(agent, operation="deploy").decision == "escalate"
    else:
        _min_trust(tw, 99)
        assert dispatch_evaluate(agent, operation="deploy").decision == "block"


# The periodic jobs --------------------------------------------------------------------------


def test_the_sweeps_record_expired_approvals_and_contain_agents_nobody_asked_about(tw):
    from trust.models import TrustSignal
    from trust.tasks import trust_approvals_lapse, trust_containment_sweep

    _gate(tw, min_score=95, below="escalate")
    body = _runs(tw, {"operation": "deploy"}).json()
    Approval.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert trust_approvals_lapse() == 1 and trust_approvals_lapse() == 0
    assert Approval.objects.get().status == "expired" and Run.objects.get().status == "terminated"
    assert latest_event(tw.org, "approval.expired").data["run"] == body["id"]

    assert trust_containment_sweep() == 0
    for _ in range(2):  # written as a signal would be, with nothing evaluating it afterwards
        TrustSignal.objects.create(org=tw.org, agent=tw.agent, type="policy_violation", severity="critical")
    assert trust_containment_sweep() == 1
    assert Agent.objects.get(pk=tw.agent.pk).status == "suspended"
    assert audit_events(tw.org, "agent.contained").count() == 1


# Every path that mints ----------------------------------------------------------------------


def test_no_grant_mints_around_the_gates(tw):
    from tests.agents.delegation_world import (
        approve,
        device_start,
        exchange,
        member_of,
        person_client,
        poll,
        refresh,
        second_agent,
    )

    world = tw.world
    person = member_of(world)
    first = device_start(Client(), world).json()
    assert approve(person_client(person.user), first["user_code"]).status_code == 200
    tokens = poll(Client(), world, first["device_code"]).json()
    second = device_start(Client(), world).json()
    assert approve(person_client(person.user), second["user_code"]).status_code == 200
    b, b_secret = second_agent(world, allow_from=world.agent)
    handed = _token(tw, may_act=b.client_id).json()["access_token"]

    _min_trust(tw, 95)
    refused = {
        "device_code": poll(Client(), world, second["device_code"]),
        "refresh_token": refresh(Client(), world, tokens["refresh_token"]),
        "token_exchange": exchange(Client(), world, b, b_secret, handed),
        "client_credentials": _token(tw),
    }
    for grant, response in refused.items():
        assert response.status_code == 403 and response.json()["error"] == "access_denied", grant
    paths = [e.data["path"] for e in audit_events(tw.org, "trust.deny")]
    assert sorted(paths) == sorted(f"token:{grant}" for grant in refused)

    _min_trust(tw, 0)  # nothing was spent by the refusals: the code and the refresh token still work
    assert poll(Client(), world, second["device_code"]).status_code == 200
    assert refresh(Client(), world, tokens["refresh_token"]).status_code == 200
    assert exchange(Client(), world, b, b_secret, handed).status_code == 200


def test_a_score_that_cannot_be_computed_refuses_dispatch_and_tokens(tw, monkeypatch):
    import trust.dispatch

    def broken(*args, **kwargs):
        raise TimeoutError("scoring backend timed out")

    monkeypatch.setattr(trust.dispatch, "trust_evaluate", broken)
    response = _runs(tw)
    assert response.status_code == 403 and response.json()["error"] == "dispatch_blocked"
    assert "could not be computed" in response.json()["reasons"][0] and not Run.objects.exists()
    token = _token(tw)
    assert token.status_code == 503 and token.json()["error"] == "temporarily_unavailable"
    assert latest_event(tw.org, "trust.deny").data["path"] == "token:client_credentials"


def test_an_agent_dispatching_with_its_token_is_recorded_as_the_chain(tw):
    from agents.authentication import api_audience
    from agents.policies import agent_create, connection_create

    access = tw.world.access
    connection_create(access=access, name="Control plane", audience=api_audience(tw.org.slug),
                      scopes=["run:write", "run:read"])
    planner, secret = agent_create(access=access, name="planner", scopes=["run:write"],
                                   audiences=[api_audience(tw.org.slug)])
    token = post_form(Client(), tw.world.url("token"),
                      {"grant_type": "client_credentials", "resource": api_audience(tw.org.slug)},
                      auth=(planner.client_id, secret)).json()["access_token"]
    _gate(tw, min_score=95, below="escalate")
    response = Client(HTTP_AUTHORIZATION=f"Bearer {token}").post(
        tw.url("runs"), json.dumps({"agent": str(tw.agent.pk), "operation": "deploy"}),
        content_type="application/json")
    assert response.status_code == 202, response.content
    approval = Approval.objects.get()
    assert approval.chain == [f"agent:{planner.pk}"] and approval.requested_by_type == "agent"
    assert latest_event(tw.org, "trust.escalate").data["dispatched_by"] == {"type": "agent",
                                                                          "id": str(planner.pk)}


def test_revoking_the_agents_secret_terminates_its_runs_and_a_normal_rotation_does_not(tw):
    kept = _runs(tw).json()
    rotated = tw.api.post(tw.url(f"agents/{tw.agent.pk}/rotate-secret"), {}, format="json")
    assert rotated.status_code == 200
    assert Run.objects.get(pk=kept["id"]).status == "running"  # a rotation with a window keeps it
    revoked = tw.api.post(tw.url(f"agents/{tw.agent.pk}/rotate-secret"), {"overlap_seconds": 0},
                          format="json")
    assert revoked.status_code == 200
    assert Run.objects.get(pk=kept["id"]).status == "terminated"
    assert latest_event(tw.org, "run.terminated").data["reason"] == "secret_revoked"


def test_a_gate_keeps_the_score_it_computed_in_the_history_once_a_minute(tw):
    from trust.models import ScoreSample

    assert _runs(tw).status_code == 201
    _signal(tw, "low")  # a new input: the next gate computes again, within the same minute
    assert _runs(tw).status_code == 201
    samples = list(ScoreSample.objects.filter(agent=tw.agent))
    assert len(samples) == 1 and samples[0].score == Run.objects.order_by("started_at")[0].trust_score


def test_separation_of_duties_and_the_approval_lifetime_are_the_orgs_to_set(tw):
    policy = tw.policy(separation_of_duties=False, approval_ttl_seconds=600)
    assert policy["separation_of_duties"] is False and policy["approval_ttl_seconds"] == 600
    refused = tw.api.patch(tw.url("trust-policy"), {"approval_ttl_seconds": 10}, format="json")
    assert refused.status_code == 400
    assert tw.api.get(tw.url("trust-policy")).json()["approval_ttl_seconds"] == 600
    _gate(tw, min_score=95, below="escalate")
    body = _runs(tw, {"operation": "deploy"}).json()
    approval = Approval.objects.get()
    assert 590 <= (approval.expires_at - approval.created_at).total_seconds() <= 600
    owner = APIClient()  # the agent's own owner may approve now
    owner.credentials(HTTP_AUTHORIZATION="Bearer " + api_key_for(
        tw.org, [Perm.TRUST_APPROVE], created_by=tw.world.owner.user)[1])
    assert owner.post(tw.url(f"approvals/{body['approval']}/approve"), {}, format="json").status_code == 200


def test_approvers_are_mailed_and_neither_the_dispatcher_nor_the_agents_owners_are(
    tw, mailoutbox, django_capture_on_commit_callbacks
):
    _gate(tw, min_score=95, below="escalate")
    approver, _client = _approver(tw)
    dispatcher, client = _approver(tw, perms=(Perm.TRUST_APPROVE, Perm.RUN_WRITE, Perm.TRUST_READ))
    with django_capture_on_commit_callbacks(execute=True):
        body = _runs(tw, {"operation": "deploy"}, api=client).json()
    recipients = {address for message in mailoutbox for address in message.to}
    assert approver.user.email in recipients
    assert dispatcher.user.email not in recipients and tw.world.owner.user.email not in recipients
    message = next(m for m in mailoutbox if approver.user.email in m.to)
    assert f"/orgs/{tw.org.slug}/approvals/{body['approval']}/" in message.body
    assert tw.world.agent_secret not in message.body


def test_the_owners_are_told_when_their_agent_is_contained(
    tw, mailoutbox, django_capture_on_commit_callbacks
):
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            _signal(tw, "critical")
    owners_mail = [m for m in mailoutbox if tw.world.owner.user.email in m.to]
    assert len(owners_mail) == 1 and "suspended" in owners_mail[0].body
    assert "guardrail violation" in owners_mail[0].body


def test_failed_authentications_count_against_identity_but_cannot_flood_the_table(tw):
    from trust.models import TrustSignal

    before = tw.trust()["components"]["identity"]["score"]
    for _ in range(15):
        wrong = post_form(Client(), tw.world.url("token"), {"grant_type": "client_credentials"},
                          auth=(tw.agent.client_id, tw.world.agent_secret[:-2] + "xx"))
        assert wrong.status_code in (401, 429)
    assert 0 < TrustSignal.objects.filter(agent=tw.agent, connection=None).count() <= 10
    assert tw.trust()["components"]["identity"]["score"] < before


def test_the_org_floor_blocks_dispatch_and_contains_an_agent_below_it(tw):
    score = tw.score()
    tw.policy(org_floor=score + 1)
    response = _runs(tw)
    assert response.status_code == 403 and response.json()["error"] == "dispatch_blocked"
    assert any("floor" in reason for reason in response.json()["reasons"])
    assert not Run.objects.exists()
    denied = latest_event(tw.org, "trust.deny")
    assert denied.data["gates"][0]["gate"] in ("org_floor", "agent") and denied.data["score"] <= score
    assert Agent.objects.get(pk=tw.agent.pk).status == "suspended"  # below the floor: contained
    assert latest_event(tw.org, "agent.contained").data["floor"] == score + 1


# What the review found ----------------------------------------------------------------------


def _api_agent(tw, name, scopes):
    from agents.authentication import api_audience
    from agents.models import Connection
    from agents.policies import agent_create, connection_create

    audience = api_audience(tw.org.slug)
    if not Connection.objects.filter(audience=audience).exists():
        connection_create(access=tw.world.access, name="Control plane", audience=audience,
                          scopes=["run:write", "trust:write", "agent:write", "trust:approve"])
    agent, secret = agent_create(access=tw.world.access, name=name, scopes=scopes, audiences=[audience])
    token = post_form(Client(), tw.world.url("token"),
                      {"grant_type": "client_credentials", "resource": audience},
                      auth=(agent.client_id, secret)).json()["access_token"]
    return agent, Client(HTTP_AUTHORIZATION=f"Bearer {token}")


def test_the_owner_of_an_agent_that_dispatched_cannot_approve_even_without_separation_of_duties(tw):
    tw.policy(separation_of_duties=False)
    _gate(tw, min_score=95, below="escalate")
    _planner, api = _api_agent(tw, "planner", ["run:write"])
    body = api.post(tw.url("runs"), json.dumps({"agent": str(tw.agent.pk), "operation": "deploy"}),
                    content_type="application/json").json()
    owner = APIClient()  # owns the planner (and, here allowed, the agent the run is for)
    owner.credentials(HTTP_AUTHORIZATION="Bearer " + api_key_for(
        tw.org, [Perm.TRUST_APPROVE], created_by=tw.world.owner.user)[1])
    refused = owner.post(tw.url(f"approvals/{body['approval']}/approve"), {}, format="json")
    assert refused.status_code == 403
    assert latest_event(tw.org, "approval.refused").data["reason"] == "dispatcher"
    assert Approval.objects.get().status == "pending"


def test_an_agent_cannot_change_trust_settings_or_its_own_standing(tw):
    agent, api = _api_agent(tw, "sly-bot", ["trust:write", "agent:write", "trust:approve"])
    refused = api.patch(tw.url("trust-policy"), json.dumps({"org_floor": 0}), content_type="application/json")
    assert refused.status_code == 403 and refused.json()["error"] == "agent_not_allowed"
    assert tw.api.get(tw.url("trust-policy")).json()["org_floor"] == 20
    root = api.post(tw.url("trust-roots"), json.dumps({"name": "mine", "jwks": {"keys": []}}),
                    content_type="application/json")
    assert root.status_code == 403
    own = api.patch(tw.url(f"agents/{agent.pk}"), json.dumps({"approved_versions": ["1.0"]}),
                    content_type="application/json")
    assert own.status_code == 403 and Agent.objects.get(pk=agent.pk).approved_versions == []


def test_a_pending_run_of_a_suspended_agent_cannot_be_approved_and_an_ended_one_leaves_the_queue(tw):
    _gate(tw, min_score=95, below="escalate")
    first = _runs(tw, {"operation": "deploy"}).json()
    tw.api.post(tw.url(f"agents/{tw.agent.pk}/suspend"), {}, format="json")
    _person, approver = _approver(tw)
    refused = approver.post(tw.url(f"approvals/{first['approval']}/approve"), {}, format="json")
    assert refused.status_code == 409 and Run.objects.get(pk=first["id"]).status == "pending_approval"
    tw.api.post(tw.url(f"runs/{first['id']}/terminate"), {}, format="json")
    queue = tw.api.get(tw.url("approvals") + "?status=pending").json()["results"]
    assert queue == []
    shown = tw.api.get(tw.url(f"approvals/{first['approval']}")).json()
    assert shown["status"] == "cancelled"
    late = approver.post(tw.url(f"approvals/{first['approval']}/approve"), {}, format="json")
    assert late.status_code == 409 and late.json()["error"] == "approval_cancelled"


def test_run_bound_tokens_keep_to_the_runs_services_and_its_operations_gate(tw):
    from agents.policies import agent_grant_update, connection_create

    connection_create(access=tw.world.access, name="Docs", audience="https://docs.example.com",
                      scopes=["docs:read"])
    agent_grant_update(access=tw.world.access, agent=tw.agent, scopes=["tickets:read", "docs:read"],
                       audiences=[AUDIENCE, "https://docs.example.com"])
    run = _runs(tw, {"audiences": [AUDIENCE], "operation": "deploy"}).json()
    other = _token(tw, run=run["id"], resource="https://docs.example.com")
    assert other.status_code == 400 and other.json()["error"] == "invalid_target"
    assert _token(tw, run=run["id"], resource=AUDIENCE).status_code == 200
    _gate(tw, min_score=95, below="escalate")  # the score is now below the run's operation's gate
    refused = _token(tw, run=run["id"], resource=AUDIENCE)
    assert refused.status_code == 403 and refused.json()["error"] == "access_denied"
    assert _token(tw, resource=AUDIENCE).status_code == 200  # not for this run: no operation gate


def test_a_stopping_run_gets_no_new_token_by_exchange(tw):
    from tests.agents.delegation_world import exchange, second_agent

    b, b_secret = second_agent(tw.world, allow_from=tw.world.agent)
    run = _runs(tw).json()
    handed = _token(tw, run=run["id"], may_act=b.client_id).json()["access_token"]
    tw.api.post(tw.url(f"runs/{run['id']}/stop"), {"grace_seconds": 120}, format="json")
    refused = exchange(Client(), tw.world, b, b_secret, handed)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_request"
    assert latest_event(tw.org, "token_exchange.error").data["reason"] == "run_not_running"


def test_a_run_can_be_completed_and_its_tokens_end(tw):
    run = _runs(tw).json()
    token = _token(tw, run=run["id"]).json()["access_token"]
    done = tw.api.post(tw.url(f"runs/{run['id']}/complete"), {}, format="json")
    assert done.status_code == 200 and done.json()["status"] == "completed"
    assert not _introspect(tw, token) and _run_state(tw, run["id"]).json()["status"] == "completed"
    assert latest_event(tw.org, "run.completed").data["agent"] == str(tw.agent.pk)
