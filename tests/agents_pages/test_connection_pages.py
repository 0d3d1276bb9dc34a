"""The connection's page: its name and scopes, rotating its introspection secret and deleting it,
through HTTP as a browser does, with what introspection and the token endpoint answer after."""

import pytest
from django.test import Client
from django.urls import reverse

from agents import policies
from agents.models import Agent, Connection
from tests.agents.conftest import build_world, post_form
from tests.factories import sign_in
from tests.helpers import audit_events, latest_event

pytestmark = pytest.mark.django_db

OTHER = "https://crm.example.com"


def url(name, world, **kwargs):
    return reverse(f"agents:{name}", kwargs={"org": world.slug, **kwargs})


def token(client, world, **params):
    return post_form(client, world.url("token"), {"grant_type": "client_credentials", **params},
                     auth=(world.agent.client_id, world.agent_secret))


def introspect(client, world, access_token, secret):
    return post_form(client, world.url("introspect"), {"token": access_token},
                     auth=(world.connection.client_id, secret))


def row(world):
    return Connection.objects.filter(pk=world.connection.pk).values_list(
        "name", "scopes", "lookup_id", "secret_hash").first()


@pytest.fixture
def world(db):
    return build_world()


@pytest.fixture
def page(world):
    return sign_in(Client(), world.owner.user)


def test_the_page_shows_the_connection_and_the_agents_that_use_it(page, world):
    response = page.get(url("connection-detail", world, pk=world.connection.pk))
    assert response.status_code == 200
    body = response.content.decode()
    assert world.connection.audience in body and world.connection.client_id in body
    assert f"cns_{world.connection.lookup_id}_…" in body and world.connection_secret not in body
    assert "triage-bot" in body and 'value="Tickets"' in body
    listed = page.get(url("connections", world)).content.decode()
    assert url("connection-detail", world, pk=world.connection.pk) in listed


def test_rename_and_change_scopes(page, world):
    response = page.post(url("connection-detail", world, pk=world.connection.pk),
                         {"name": "Ticket service", "scopes": "tickets:read tickets:admin"})
    assert response.status_code == 302
    assert row(world)[:2] == ("Ticket service", ["tickets:admin", "tickets:read"])
    assert latest_event(world.org, "connection.updated").data["previous_scopes"] == ["tickets:read",
                                                                                       "tickets:write"]


def test_removing_a_scope_in_use_is_a_form_error_and_changes_nothing(page, world):
    before = row(world)
    response = page.post(url("connection-detail", world, pk=world.connection.pk),
                         {"name": "Tickets", "scopes": "tickets:write"})
    assert response.status_code == 409
    assert "triage-bot holds tickets:read." in response.content.decode()
    assert row(world) == before
    assert not audit_events(world.org, "connection.updated").exists()


def test_rotate_from_the_page_stops_the_old_secret_at_once(client, page, world):
    access_token = token(client, world).json()["access_token"]
    assert introspect(client, world, access_token, world.connection_secret).json()["active"] is True
    confirm = page.get(url("connection-rotate", world, pk=world.connection.pk))
    assert confirm.status_code == 200 and 'name="confirm" value="yes"' in confirm.content.decode()
    posted = page.post(url("connection-rotate", world, pk=world.connection.pk), {"confirm": "yes"})
    assert posted.status_code == 303
    shown = page.get(posted["Location"])
    assert shown.status_code == 200 and shown["Cache-Control"] == "no-store"
    new_secret = shown.context["secret"]
    assert new_secret in shown.content.decode() and world.connection.client_id in shown.content.decode()
    old = introspect(client, world, access_token, world.connection_secret)
    assert old.status_code == 401 and old.json()["error"] == "invalid_client"
    assert introspect(client, world, access_token, new_secret).json()["active"] is True
    assert page.get(posted["Location"]).status_code == 410  # shown once
    assert audit_events(world.org, "connection.secret_rotated").count() == 1


def test_delete_from_the_page_is_refused_while_an_agent_holds_the_audience(page, world):
    confirm = page.get(url("connection-delete", world, pk=world.connection.pk))
    body = confirm.content.decode()
    assert confirm.status_code == 200 and "triage-bot" in body and "Delete connection</button>" not in body
    before = row(world)
    refused = page.post(url("connection-delete", world, pk=world.connection.pk), {"confirm": "yes"})
    assert refused.status_code == 409 and "take it out of their grants first" in refused.content.decode()
    assert row(world) == before
    assert not audit_events(world.org, "connection.deleted").exists()


def test_delete_from_the_page_once_no_grant_names_it(client, page, world):
    policies.connection_create(access=world.access, name="CRM", audience=OTHER, scopes=["crm:read"])
    access_token = token(client, world).json()["access_token"]
    assert introspect(client, world, access_token, world.connection_secret).json()["active"] is True
    policies.agent_grant_update(access=world.access, agent=world.agent, audiences=[OTHER],
                                scopes=["crm:read"])
    confirm = page.get(url("connection-delete", world, pk=world.connection.pk)).content.decode()
    assert "Delete connection</button>" in confirm
    deleted = page.post(url("connection-delete", world, pk=world.connection.pk), {"confirm": "yes"})
    assert deleted.status_code == 302 and deleted["Location"] == url("connections", world)
    assert not Connection.objects.filter(pk=world.connection.pk).exists()
    assert latest_event(world.org, "connection.deleted").actor_id == str(world.owner.user.pk)
    assert introspect(client, world, access_token, world.connection_secret).status_code == 401
    refused = token(client, world, resource=world.connection.audience)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_target"
    assert Agent.objects.get(pk=world.agent.pk).audiences == [OTHER]
