"""The fast store can lose its data; a revoked token must never come back because of that."""

import pytest
from django.core.cache import cache

from agents.policies import agent_revoke, agent_set_status, run_start, run_terminate
from agents.tokens import token_sign
from tests.agents.conftest import post_form

pytestmark = pytest.mark.django_db


def _lose_store():
    cache.clear()  # as after a Redis restart without persistence


def test_revoked_agents_tokens_stay_dead_after_the_store_loses_its_data(world, get_token, introspect):
    token = get_token(world)["access_token"]
    agent_revoke(access=world.access, agent=world.agent)
    _lose_store()
    assert introspect(world, token) == {"active": False}


def test_a_revoked_agents_cutoff_alone_survives_data_loss(world, introspect):
    # A token bound to no credential (`cred`), so only the agent's own cutoff can end it: the
    # rebuild must bring that cutoff back for a revoked agent.
    token = token_sign(org=world.org, alg="ES256", agent=world.agent, audience=world.connection.audience,
                       scope="tickets:read", ttl=300).token
    assert introspect(world, token)["active"] is True
    agent_revoke(access=world.access, agent=world.agent)
    _lose_store()
    assert introspect(world, token) == {"active": False}


def test_suspended_agents_and_ended_runs_survive_data_loss(world, get_token, introspect):
    run = run_start(access=world.access, agent=world.agent)
    bound = get_token(world, run=str(run.pk))["access_token"]
    free = get_token(world)["access_token"]
    run_terminate(access=world.access, run=run)
    _lose_store()
    assert introspect(world, bound) == {"active": False}
    assert introspect(world, free)["active"] is True
    agent_set_status(access=world.access, agent=world.agent, status="suspended")
    _lose_store()
    assert introspect(world, free) == {"active": False}


def test_a_revoked_token_id_survives_data_loss(client, world, get_token, introspect):
    token = get_token(world)["access_token"]
    assert post_form(client, world.url("revoke"), {"token": token},
                     auth=(world.agent.client_id, world.agent_secret)).status_code == 200
    _lose_store()
    assert introspect(world, token) == {"active": False}


def test_valid_tokens_stay_valid_after_the_rebuild(world, get_token, introspect):
    token = get_token(world)["access_token"]
    _lose_store()
    assert introspect(world, token)["active"] is True
