"""Query budgets of the OAuth hot paths: constant whatever the owner's roles and teams."""

import pytest
from django.db import connection

from agents.tokens import token_verify
from rbac.models import RoleAssignment
from tests.agents.conftest import post_form
from tests.factories import RoleFactory, TeamFactory, TeamMemberFactory

# Observed budgets, asserted exactly so that any new query on these paths is a decision.
# Token: the secret joined to its agent, org and policy; the connection; the acting owners; their
# custom and team permissions (one UNION); then the audit append. Introspection: the connection,
# then the audit append. The append is one `audit_append()` call on PostgreSQL; on SQLite it is a
# savepoint, the locked chain head, the insert, the head update and the release (five).
AUDIT_APPEND = {"postgresql": 1, "sqlite": 5}
TOKEN_QUERIES = 2  # the secret with agent, org, policy and connection; the owners' permissions
INTROSPECTION_QUERIES = 1


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
def test_introspection_costs_a_constant_number_of_queries(client, world, shape, django_assert_num_queries):
    SHAPES[shape](world)
    token = _token(client, world).json()["access_token"]
    auth = (world.connection.client_id, world.connection_secret)
    assert post_form(client, world.url("introspect"), {"token": token}, auth=auth).json()["active"]
    with django_assert_num_queries(INTROSPECTION_QUERIES + AUDIT_APPEND[connection.vendor]):
        assert post_form(client, world.url("introspect"), {"token": token}, auth=auth).json()["active"]


def test_verification_with_a_warm_key_cache_costs_no_query(client, world, django_assert_num_queries):
    token = _token(client, world).json()["access_token"]
    token_verify(token, org_slug=world.slug)  # warms the verifier cache
    with django_assert_num_queries(0):
        claims = token_verify(token, org_slug=world.slug, audience=world.connection.audience)
    assert claims["sub"] == world.agent.subject
