"""An agent calling our own admin API with a capability token issued for it."""

import pytest
from django.test import Client

from agents.authentication import api_audience
from agents.policies import agent_create, agent_revoke, connection_create
from audit.models import AuditEntry
from core.roles import BUILTIN_ROLES
from tests.agents.conftest import build_world, post_form
from tests.factories import OrgFactory

pytestmark = pytest.mark.django_db


def _api_agent(org_world, scopes):
    access = org_world.access
    connection, _ = connection_create(access=access, name="Control plane",
                                      audience=api_audience(org_world.slug),
                                      scopes=["member:read", "team:read"])
    agent, secret = agent_create(access=access, name="api-bot", scopes=scopes,
                                 audiences=[connection.audience])
    return agent, secret, connection


def _token(client, org_world, agent, secret, scope):
    response = post_form(client, org_world.url("token"), {"grant_type": "client_credentials",
                                                         "resource": api_audience(org_world.slug),
                                                         "scope": scope}, auth=(agent.client_id, secret))
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


def test_an_agent_reads_members_with_a_token_for_the_api_audience(client, world):
    agent, secret, _ = _api_agent(world, ["member:read"])
    token = _token(client, world, agent, secret, "member:read")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.get(f"/api/v1/orgs/{world.slug}/members").status_code == 200
    refused = api.get(f"/api/v1/orgs/{world.slug}/teams")  # team:read was not granted
    assert refused.status_code == 403
    denial = AuditEntry.objects.for_org(world.org).latest("seq")
    assert (denial.event_name, denial.actor_type) == ("access.denied", "agent")
    assert denial.actor_id == str(agent.pk)


def test_a_token_for_another_audience_or_org_is_refused(client, world):
    agent, secret, _ = _api_agent(world, ["member:read"])
    token = _token(client, world, agent, secret, "member:read")
    other = build_world(OrgFactory())
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.get(f"/api/v1/orgs/{other.slug}/members").status_code == 404
    downstream = post_form(client, world.url("token"), {"grant_type": "client_credentials",
                                                       "resource": world.connection.audience},
                           auth=(world.agent.client_id, world.agent_secret)).json()["access_token"]
    response = Client(HTTP_AUTHORIZATION=f"Bearer {downstream}").get(f"/api/v1/orgs/{world.slug}/members")
    assert response.status_code == 401


def test_revoking_the_agent_stops_its_api_access_on_the_next_request(client, world):
    agent, secret, _ = _api_agent(world, ["member:read"])
    api = Client(HTTP_AUTHORIZATION=f"Bearer {_token(client, world, agent, secret, 'member:read')}")
    assert api.get(f"/api/v1/orgs/{world.slug}/members").status_code == 200
    agent_revoke(access=world.access, agent=agent)
    assert api.get(f"/api/v1/orgs/{world.slug}/members").status_code == 401


def test_a_token_in_the_query_string_is_not_accepted(client, world):
    agent, secret, _ = _api_agent(world, ["member:read"])
    token = _token(client, world, agent, secret, "member:read")
    assert Client().get(f"/api/v1/orgs/{world.slug}/members?access_token={token}").status_code == 401


def test_an_agent_is_not_asked_to_re_authenticate(client, world):
    # Re-authentication is for people in browser sessions; a token has no password to prove again
    # (like an API key). Adding a member is a gated action for a session.
    scopes = sorted({"member:write", *BUILTIN_ROLES["viewer"]})  # adding a viewer hands out theirs
    connection, _ = connection_create(access=world.access, name="Admin", audience=api_audience(world.slug),
                                      scopes=scopes)
    agent, secret = agent_create(access=world.access, name="hr-bot", scopes=scopes,
                                 audiences=[connection.audience])
    token = _token(client, world, agent, secret, " ".join(scopes))
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = api.post(f"/api/v1/orgs/{world.slug}/members", {"email": "new@example.com", "role": "viewer"},
                        content_type="application/json")
    assert response.status_code == 201, response.content
    added = AuditEntry.objects.for_org(world.org).filter(event_name="member.added", actor_type="agent")
    assert added.exists()


def test_an_agent_acting_for_a_person_is_the_actor_and_holds_no_more_than_the_person(client, world):
    from tests.agents.delegation_world import approve, person_client, poll
    from tests.factories import MemberFactory

    agent, secret, connection = _api_agent(world, ["member:read", "team:read"])
    viewer = MemberFactory(org=world.org, role="viewer")  # holds member:read and team:read
    data = {"resource": connection.audience, "scope": "member:read"}
    started = post_form(client, world.url("device_authorization"), data,
                        auth=(agent.client_id, secret)).json()
    assert approve(person_client(viewer.user), started["user_code"]).status_code == 200
    token = poll(client, world, started["device_code"], agent=agent, secret=secret).json()["access_token"]
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.get(f"/api/v1/orgs/{world.slug}/members").status_code == 200
    assert api.get(f"/api/v1/orgs/{world.slug}/teams").status_code == 403  # not delegated
    denial = AuditEntry.objects.for_org(world.org).latest("seq")
    assert (denial.event_name, denial.actor_type) == ("access.denied", "agent")
    assert denial.actor_id == str(agent.pk)
