"""Token exchange (RFC 8693) over HTTP: chains recorded in `act`, attenuated at every hop, limited in
depth, free of loops, and revoked as one. Every issued token is verified with joserfc."""

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents import revocation
from agents.models import AgentPolicy
from agents.policies import (
    agent_delegates_set,
    agent_grant_update,
    agent_set_status,
    run_start,
    run_terminate,
)
from agents.tokens import verified_forget
from tests.agents.conftest import AUDIENCE, build_world, issued_count, post_form
from tests.agents.delegation_world import ACCESS, exchange, second_agent, verified
from tests.helpers import audit_events, latest_event


@pytest.fixture
def chain(world):
    """Agents A (the world's), B, C, D: each may hand its tokens to the next."""
    b, b_secret = second_agent(world, "agent-b", allow_from=world.agent)
    c, c_secret = second_agent(world, "agent-c", allow_from=b)
    d, d_secret = second_agent(world, "agent-d", allow_from=c)
    return {
        "A": (world.agent, world.agent_secret),
        "B": (b, b_secret),
        "C": (c, c_secret),
        "D": (d, d_secret),
    }


def own_token(client, w, agent, secret, **params) -> str:
    data = {"grant_type": "client_credentials", "resource": AUDIENCE, "scope": "tickets:read", **params}
    response = post_form(client, w.url("token"), data, auth=(agent.client_id, secret))
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


def hop(client, w, chain, name, subject_token, *, next_name=None, **params) -> dict:
    agent, secret = chain[name]
    if next_name:
        params["may_act"] = chain[next_name][0].client_id
    response = exchange(client, w, agent, secret, subject_token, resource=AUDIENCE, **params)
    assert response.status_code == 200, response.content
    return response.json()


def refused(response, error="invalid_request"):
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == error, body
    assert response["Cache-Control"] == "no-store"
    return body


def subject(agent) -> str:
    return f"agent:{agent.pk}"


def test_exchange_at_depth_one_keeps_the_subject_and_records_the_actor(client, world, chain):
    a, b = chain["A"][0], chain["B"][0]
    token = own_token(client, world, *chain["A"], may_act=b.client_id)
    first = verified(client, world, token)
    assert first["may_act"] == {"sub": subject(b), "client_id": b.client_id}
    body = hop(client, world, chain, "B", token)
    assert body["issued_token_type"] == ACCESS and body["token_type"] == "Bearer"
    assert body["scope"] == "tickets:read" and 0 < body["expires_in"] <= 300
    claims = verified(client, world, body["access_token"])
    assert claims["sub"] == subject(a) and claims["client_id"] == b.client_id
    assert claims["act"] == {"sub": subject(b), "act": {"sub": subject(a)}}
    assert claims["org"] == world.slug and claims["aud"] == AUDIENCE
    assert claims["exp"] <= first["exp"]
    assert "may_act" not in claims  # not exchangeable again unless B names someone
    issued = latest_event(world.org, "token.issued")
    assert issued.actor_id == str(b.pk) and issued.data["grant"] == "token_exchange"
    assert issued.data["subject"] == subject(a) and issued.data["chain"] == [subject(a), subject(b)]
    assert issued.data["parent_jti"] == first["jti"]


def test_depth_two_and_the_limit_nest_the_chain_and_one_more_is_refused(client, world, chain):
    a, b, c, d = (chain[n][0] for n in "ABCD")
    token = own_token(client, world, *chain["A"], may_act=b.client_id)
    at_b = hop(client, world, chain, "B", token, next_name="C")["access_token"]
    at_c = hop(client, world, chain, "C", at_b, next_name="D")["access_token"]
    claims = verified(client, world, at_c)
    assert claims["act"] == {"sub": subject(c), "act": {"sub": subject(b), "act": {"sub": subject(a)}}}
    at_d = hop(client, world, chain, "D", at_c)["access_token"]  # depth 3: the default limit
    assert verified(client, world, at_d)["act"]["sub"] == subject(d)
    # One more hop is refused, and changes nothing but the audit log.
    e, e_secret = second_agent(world, "agent-e", allow_from=d)
    at_d_for_e = hop(client, world, chain, "C", at_b, next_name="D")["access_token"]
    at_d2 = hop(client, world, chain, "D", at_d_for_e, next_name=None, may_act=e.client_id)["access_token"]
    before = issued_count(world.org)
    body = refused(exchange(client, world, e, e_secret, at_d2, resource=AUDIENCE))
    assert "too deep" in body["error_description"]
    assert issued_count(world.org) == before
    error = latest_event(world.org, "token_exchange.error")
    assert error.data["reason"] == "chain_too_deep" and error.actor_id == str(e.pk)
    assert error.data["chain"] == [subject(a), subject(b), subject(c), subject(d)]


def test_the_depth_limit_is_the_orgs_policy(client, world, chain):
    AgentPolicy.objects.update_or_create(org=world.org, defaults={"max_delegation_depth": 1})
    b = chain["B"][0]
    token = own_token(client, world, *chain["A"], may_act=b.client_id)
    at_b = hop(client, world, chain, "B", token, next_name="C")["access_token"]
    c, c_secret = chain["C"]
    refused(exchange(client, world, c, c_secret, at_b, resource=AUDIENCE))
    assert latest_event(world.org, "token_exchange.error").data["reason"] == "chain_too_deep"


def test_a_loop_is_refused(client, world, chain):
    a, a_secret = chain["A"]
    b = chain["B"][0]
    agent_delegates_set(access=world.access, agent=b, targets=[chain["C"][0], a])
    token = own_token(client, world, a, a_secret, may_act=b.client_id)
    back_to_a = hop(client, world, chain, "B", token, may_act=a.client_id)["access_token"]
    before = issued_count(world.org)
    refused(exchange(client, world, a, a_secret, back_to_a, resource=AUDIENCE))
    assert issued_count(world.org) == before
    assert latest_event(world.org, "token_exchange.error").data["reason"] == "chain_loop"


def test_an_agent_cannot_exchange_its_own_token(client, world, chain):
    a, a_secret = chain["A"]
    token = own_token(client, world, a, a_secret, may_act=chain["B"][0].client_id)
    refused(exchange(client, world, a, a_secret, token, resource=AUDIENCE))
    assert latest_event(world.org, "token_exchange.error").data["reason"] == "may_act_mismatch"


def test_widening_is_refused_scope_and_resource(client, world, chain):
    b, b_secret = chain["B"]
    agent_grant_update(access=world.access, agent=b, scopes=["tickets:read", "tickets:write"])
    token = own_token(client, world, *chain["A"], may_act=b.client_id)  # tickets:read only
    before = issued_count(world.org)
    refused(
        exchange(client, world, b, b_secret, token, resource=AUDIENCE, scope="tickets:read tickets:write"),
        "invalid_scope",
    )
    assert latest_event(world.org, "token_exchange.error").data["reason"] == "scope_widened"
    refused(
        exchange(client, world, b, b_secret, token, resource="https://elsewhere.example"), "invalid_target"
    )
    assert issued_count(world.org) == before
    # Without a scope the result is the intersection, never more than the subject's.
    assert (
        verified(client, world, hop(client, world, chain, "B", token)["access_token"])["scope"]
        == "tickets:read"
    )


def test_the_actors_grant_narrows_the_result(client, world, chain):
    a, a_secret = chain["A"]
    agent_grant_update(access=world.access, agent=a, scopes=["tickets:read", "tickets:write"])
    token = own_token(
        client, world, a, a_secret, scope="tickets:read tickets:write", may_act=chain["B"][0].client_id
    )
    body = hop(client, world, chain, "B", token)  # B holds tickets:read only
    assert body["scope"] == "tickets:read"


def test_a_token_without_may_act_cannot_be_exchanged(client, world, chain):
    b, b_secret = chain["B"]
    token = own_token(client, world, *chain["A"])
    refused(exchange(client, world, b, b_secret, token, resource=AUDIENCE))
    assert latest_event(world.org, "token_exchange.error").data["reason"] == "may_act_missing"


def test_only_the_agent_named_in_may_act_may_exchange(client, world, chain):
    c, c_secret = chain["C"]
    token = own_token(client, world, *chain["A"], may_act=chain["B"][0].client_id)
    refused(exchange(client, world, c, c_secret, token, resource=AUDIENCE))
    assert latest_event(world.org, "token_exchange.error").data["reason"] == "may_act_mismatch"


def test_may_act_names_only_agents_the_owners_allowed(client, world, chain):
    a, a_secret = chain["A"]
    data = {"grant_type": "client_credentials", "resource": AUDIENCE, "may_act": chain["C"][0].client_id}
    before = issued_count(world.org)
    refused(post_form(client, world.url("token"), data, auth=(a.client_id, a_secret)))
    assert latest_event(world.org, "token.denied").data["reason"] == "may_act_not_allowed"
    other = build_world()  # another org's agent is never a target, whatever its client id
    data["may_act"] = other.agent.client_id
    refused(post_form(client, world.url("token"), data, auth=(a.client_id, a_secret)))
    assert issued_count(world.org) == before


def test_may_act_is_matched_on_immutable_ids_not_names(client, world, chain):
    """Keycloak #50690: may_act keyed on a mutable user name. Renaming the named agent, and giving
    another agent its old name, changes nothing: only the agent whose id is named may act."""
    b, b_secret = chain["B"]
    token = own_token(client, world, *chain["A"], may_act=b.client_id)
    old_name = b.name
    type(b).objects.filter(pk=b.pk).update(name="renamed-b")
    impostor, impostor_secret = second_agent(world, old_name)
    refused(exchange(client, world, impostor, impostor_secret, token, resource=AUDIENCE))
    assert hop(client, world, chain, "B", token)["access_token"]


def test_the_actor_token_must_be_the_requesters_own(client, world, chain):
    """Keycloak compared may_act.client_id with the requester but not with the actor token."""
    b, b_secret = chain["B"]
    c, c_secret = chain["C"]
    token = own_token(client, world, *chain["A"], may_act=b.client_id)
    cs_token = own_token(client, world, c, c_secret)
    before = issued_count(world.org)
    refused(
        exchange(
            client,
            world,
            b,
            b_secret,
            token,
            resource=AUDIENCE,
            actor_token=cs_token,
            actor_token_type=ACCESS,
        )
    )
    assert latest_event(world.org, "token_exchange.error").data["reason"] == "actor_token_not_own"
    # Half an actor (a token without its type, or the reverse) is refused before anything else.
    refused(exchange(client, world, b, b_secret, token, resource=AUDIENCE, actor_token=cs_token))
    refused(exchange(client, world, b, b_secret, token, resource=AUDIENCE, actor_token_type=ACCESS))
    assert issued_count(world.org) == before
    bs_token = own_token(client, world, b, b_secret)
    assert (
        exchange(
            client,
            world,
            b,
            b_secret,
            token,
            resource=AUDIENCE,
            actor_token=bs_token,
            actor_token_type=ACCESS,
        ).status_code
        == 200
    )


@pytest.mark.parametrize(
    "token_type",
    [
        "urn:ietf:params:oauth:token-type:refresh_token",
        "urn:ietf:params:oauth:token-type:id_token",
        "",
        "bogus",
    ],
)
def test_only_access_tokens_are_exchanged(client, world, chain, token_type):
    b, b_secret = chain["B"]
    token = own_token(client, world, *chain["A"], may_act=b.client_id)
    refused(
        post_form(
            client,
            world.url("token"),
            {
                "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                "subject_token": token,
                "subject_token_type": token_type,
                "resource": AUDIENCE,
            },
            auth=(b.client_id, b_secret),
        )
    )


@pytest.mark.parametrize("bad", ["", "garbage", "rft_0123456789abcdef_secret", "a.b.c"])
def test_a_missing_or_invalid_subject_token_is_invalid_request(client, world, chain, bad):
    b, b_secret = chain["B"]
    before = issued_count(world.org)
    refused(exchange(client, world, b, b_secret, bad, resource=AUDIENCE))
    assert issued_count(world.org) == before
    assert audit_events(world.org, "token_exchange.error").count() == 1


def test_another_orgs_token_cannot_be_exchanged(client, world, chain):
    other = build_world()
    foreign = own_token(client, other, other.agent, other.agent_secret)
    b, b_secret = chain["B"]
    refused(exchange(client, world, b, b_secret, foreign, resource=AUDIENCE))
    assert latest_event(world.org, "token_exchange.error").data["reason"] == "subject_token_wrong_issuer"


def test_an_expired_subject_token_is_refused(client, world, chain, settings):
    b, b_secret = chain["B"]
    AgentPolicy.objects.update_or_create(org=world.org, defaults={"agent_token_ttl_seconds": 30})
    token = own_token(client, world, *chain["A"], may_act=b.client_id)
    settings.IAM_CLOCK_SKEW_SECONDS = 0
    verified_forget()
    from datetime import UTC, datetime

    from freezegun import freeze_time

    with freeze_time(datetime.fromtimestamp(time.time() + 31, tz=UTC), tick=True):
        refused(exchange(client, world, b, b_secret, token, resource=AUDIENCE))
    assert latest_event(world.org, "token_exchange.error").data["reason"] == "subject_token_expired"


def test_the_run_binding_is_inherited(client, world, chain):
    a, a_secret = chain["A"]
    run = run_start(access=world.access, agent=a)
    token = own_token(client, world, a, a_secret, run=str(run.pk), may_act=chain["B"][0].client_id)
    claims = verified(client, world, hop(client, world, chain, "B", token)["access_token"])
    assert claims["run"] == str(run.pk)


# Cascades ---------------------------------------------------------------------------------------


def _two_hops(client, world, chain, **a_params):
    token = own_token(client, world, *chain["A"], may_act=chain["B"][0].client_id, **a_params)
    at_b = hop(client, world, chain, "B", token, next_name="C")["access_token"]
    at_c = hop(client, world, chain, "C", at_b)["access_token"]
    return token, at_b, at_c


def _active(introspect, world, token) -> bool:
    return introspect(world, token)["active"]


def test_revoking_a_token_kills_every_token_exchanged_from_it(client, world, chain, introspect):
    a, a_secret = chain["A"]
    token, at_b, at_c = _two_hops(client, world, chain)
    assert _active(introspect, world, at_c)
    assert (
        post_form(client, world.url("revoke"), {"token": token}, auth=(a.client_id, a_secret)).status_code
        == 200
    )
    assert not _active(introspect, world, token)
    assert not _active(introspect, world, at_b) and not _active(introspect, world, at_c)


def test_revoking_a_middle_token_kills_below_it_and_not_above(client, world, chain, introspect):
    b, b_secret = chain["B"]
    token, at_b, at_c = _two_hops(client, world, chain)
    assert (
        post_form(client, world.url("revoke"), {"token": at_b}, auth=(b.client_id, b_secret)).status_code
        == 200
    )
    assert _active(introspect, world, token)
    assert not _active(introspect, world, at_b) and not _active(introspect, world, at_c)


@pytest.mark.parametrize("link", ["A", "B"])
@pytest.mark.parametrize("how", ["suspend", "revoke"])
def test_disabling_or_deleting_any_agent_of_the_chain_kills_the_chain(client, world, chain, introspect, link,
                                                                      how):
    """Keycloak #52691: delegated tokens survived the actor's disabling and deletion."""
    from agents.policies import agent_revoke

    _token, _at_b, at_c = _two_hops(client, world, chain)
    if how == "suspend":
        agent_set_status(access=world.access, agent=chain[link][0], status="suspended")
    else:
        agent_revoke(access=world.access, agent=chain[link][0])
    assert not _active(introspect, world, at_c)


def test_ending_a_secret_of_the_chain_kills_the_tokens_below(client, world, chain, introspect):
    from agents.policies import agent_secret_rotate

    _token, at_b, at_c = _two_hops(client, world, chain)
    agent_secret_rotate(access=world.access, agent=chain["A"][0], overlap_seconds=0)  # A's secret ends now
    assert not _active(introspect, world, at_b) and not _active(introspect, world, at_c)


def test_terminating_the_run_kills_the_exchanged_tokens(client, world, chain, introspect):
    run = run_start(access=world.access, agent=chain["A"][0])
    _token, _at_b, at_c = _two_hops(client, world, chain, run=str(run.pk))
    run_terminate(access=world.access, run=run)
    assert not _active(introspect, world, at_c)


def test_a_revoked_chain_cannot_be_extended(client, world, chain):
    """Keycloak #51633: a revoked chain could still be extended."""
    a, a_secret = chain["A"]
    token = own_token(client, world, a, a_secret, may_act=chain["B"][0].client_id)
    at_b = hop(client, world, chain, "B", token, next_name="C")["access_token"]
    post_form(client, world.url("revoke"), {"token": token}, auth=(a.client_id, a_secret))
    c, c_secret = chain["C"]
    before = issued_count(world.org)
    refused(exchange(client, world, c, c_secret, at_b, resource=AUDIENCE))
    assert issued_count(world.org) == before
    assert latest_event(world.org, "token_exchange.error").data["reason"] == "subject_token_ancestor_revoked"


def test_an_exchanged_token_without_may_act_cannot_be_re_exchanged(client, world, chain):
    """Keycloak #52691: delegated tokens could be re-exchanged on the plain exchange path."""
    token = own_token(client, world, *chain["A"], may_act=chain["B"][0].client_id)
    at_b = hop(client, world, chain, "B", token)["access_token"]
    c, c_secret = chain["C"]
    refused(exchange(client, world, c, c_secret, at_b, resource=AUDIENCE))
    b, b_secret = chain["B"]
    refused(exchange(client, world, b, b_secret, at_b, resource=AUDIENCE))


def test_introspection_returns_act_exactly_and_nothing_for_an_inactive_token(
    client, world, chain, introspect
):
    """Keycloak #53029: introspection dropped `act`."""
    _token, _at_b, at_c = _two_hops(client, world, chain)
    claims = verified(client, world, at_c)
    body = introspect(world, at_c)
    assert body["active"] is True and body["act"] == claims["act"] and body["sub"] == claims["sub"]
    agent_set_status(access=world.access, agent=chain["B"][0], status="suspended")
    assert introspect(world, at_c) == {"active": False}


# Cost ----------------------------------------------------------------------------------------


def _queries(call) -> int:
    with CaptureQueriesContext(connection) as queries:
        call()
    return len(queries)


def test_the_exchange_costs_the_same_queries_at_any_depth(client, world, chain):
    b, c, d = (chain[n][0] for n in "BCD")
    token = own_token(client, world, *chain["A"], may_act=b.client_id)
    at_b = hop(client, world, chain, "B", token, next_name="C")["access_token"]
    at_c = hop(client, world, chain, "C", at_b, next_name="D")["access_token"]
    token2 = own_token(client, world, *chain["A"], may_act=b.client_id)
    from agents.tokens import token_verify

    for t in (token2, at_c):  # the store has seen every key once, as in the steady state
        token_verify(t, org_slug=world.slug)
    from trust.dispatch import trust_now

    for agent in (b, d):  # and the trust gates have each agent's score (trust.dispatch's cache)
        trust_now(agent)
    shallow = _queries(lambda: hop(client, world, chain, "B", token2))
    with CaptureQueriesContext(connection) as queries:
        hop(client, world, chain, "D", at_c)
    assert shallow == len(queries)
    # Besides the audit append, one statement: the grant's (client, grant, owners' power).
    others = [
        q["sql"]
        for q in queries.captured_queries
        if "audit_" not in q["sql"] and "SAVEPOINT" not in q["sql"] and "pg_advisory" not in q["sql"]
    ]
    assert len(others) == 1, others


def test_verifying_a_chain_costs_no_query_at_any_depth(client, world, chain, introspect):
    token = own_token(client, world, *chain["A"], may_act=chain["B"][0].client_id)
    at_b = hop(client, world, chain, "B", token, next_name="C")["access_token"]
    at_c = hop(client, world, chain, "C", at_b, next_name="D")["access_token"]
    at_d = hop(client, world, chain, "D", at_c)["access_token"]
    for t in (token, at_d):
        introspect(world, t)  # the first sight is audited, and a new connection record is cached
    from agents.tokens import token_verify

    shallow = _queries(lambda: token_verify(token, org_slug=world.slug))
    deep = _queries(lambda: token_verify(at_d, org_slug=world.slug))
    assert shallow == deep == 0
    keys = revocation.revocation_keys(verified(client, world, at_d))
    assert len(keys) <= 16  # read in one get_many


def test_the_result_never_outlives_the_subject_token(client, world, chain):
    from datetime import UTC, datetime

    from freezegun import freeze_time

    token = own_token(client, world, *chain["A"], may_act=chain["B"][0].client_id)
    subject_exp = verified(client, world, token)["exp"]
    with freeze_time(datetime.fromtimestamp(time.time() + 200, tz=UTC), tick=True):
        body = hop(client, world, chain, "B", token)
        claims = verified(client, world, body["access_token"])
    assert claims["exp"] <= subject_exp and body["expires_in"] <= 101
