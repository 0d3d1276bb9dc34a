"""Query budgets of the OAuth hot paths: constant whatever the owner's roles and teams."""

import pytest
from django.db import connection

from agents.tokens import token_verify
from rbac.models import RoleAssignment
from tests.agents.conftest import post_form
from tests.factories import RoleFactory, TeamFactory, TeamMemberFactory
from tests.helpers import audit_events

# Observed budgets, asserted exactly so that any new query on these paths is a decision.
# Token: one statement for the secret joined to its agent, org, policy and connection, and the
# acting owners with their custom and team permissions; then the audit append. Introspection: no
# query once the connection's record is in the fast store; the audit append the first time a token
# is seen. The append is one `audit_append()` call on PostgreSQL; on SQLite it is a savepoint, the
# locked chain head, the insert, the head update and the release (five).
AUDIT_APPEND = {"postgresql": 1, "sqlite": 5}
TOKEN_QUERIES = 1  # the secret with agent, org, policy, connection and the owners' permissions
INTROSPECTION_COLD_QUERIES = 1  # the connection, read once into the fast store


def _with_custom_roles(world):
    for _ in range(10):
        role = RoleFactory(org=world.org, permissions=["connection:use", "agent:read"])
        RoleAssignment.objects.create(membership=world.owner, role=role)


def _with_teams(world):
    for _ in range(10):
        team = TeamFactory(org=world.org)
        team.roles.add(RoleFactory(org=world.org, permissions=["connection:use"]))
        TeamMemberFactory(team=team, membership=world.owner)


SHAPES = {
    "owner_role_only": lambda world: None,
    "ten_custom_roles": _with_custom_roles,
    "ten_teams": _with_teams,
}


def _token(client, world):
    return post_form(client, world.url("token"), {"grant_type": "client_credentials"},
                     auth=(world.agent.client_id, world.agent_secret))


@pytest.mark.parametrize("shape", SHAPES)
def test_the_token_endpoint_costs_a_constant_number_of_queries(
        client, world, shape, django_assert_num_queries):
    SHAPES[shape](world)
    assert _token(client, world).status_code == 200  # warm: signing key created, last_used_at set
    with django_assert_num_queries(TOKEN_QUERIES + AUDIT_APPEND[connection.vendor]):
        assert _token(client, world).status_code == 200


@pytest.mark.parametrize("shape", SHAPES)
def test_introspection_costs_no_query_but_the_first_sights_audit_entry(
        client, world, shape, django_assert_num_queries):
    SHAPES[shape](world)
    first, second = (_token(client, world).json()["access_token"] for _ in range(2))
    auth = (world.connection.client_id, world.connection_secret)
    token_verify(first, org_slug=world.slug)  # warms the verifier cache and the revocation store
    with django_assert_num_queries(INTROSPECTION_COLD_QUERIES + AUDIT_APPEND[connection.vendor]):
        assert post_form(client, world.url("introspect"), {"token": first}, auth=auth).json()["active"]
    # The connection's record now comes from the fast store with the token's revocation state.
    with django_assert_num_queries(AUDIT_APPEND[connection.vendor]):
        assert post_form(client, world.url("introspect"), {"token": second}, auth=auth).json()["active"]
    with django_assert_num_queries(0):  # the same answer about the same token is already on record
        assert post_form(client, world.url("introspect"), {"token": second}, auth=auth).json()["active"]
    assert audit_events(world.org, "token.introspected").count() == 2


def test_verification_with_a_warm_key_cache_costs_no_query(client, world, django_assert_num_queries):
    token = _token(client, world).json()["access_token"]
    token_verify(token, org_slug=world.slug)  # warms the verifier cache
    with django_assert_num_queries(0):
        claims = token_verify(token, org_slug=world.slug, audience=world.connection.audience)
    assert claims["sub"] == world.agent.subject
