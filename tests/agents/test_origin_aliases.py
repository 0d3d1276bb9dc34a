"""One development server answers as localhost (passkeys need a host name) and as the documented
http://127.0.0.1:8000: its OAuth metadata and tokens name the origin the client used, and tokens of
either verify. Links in mails keep the canonical origin; a Host header nobody configured changes
nothing."""

import jwt
import pytest
from django.test import Client

from tests.agents.conftest import post_form

pytestmark = pytest.mark.django_db

LOCAL, LOOPBACK = "http://localhost:8000", "http://127.0.0.1:8000"


@pytest.fixture
def two_origins(settings):
    settings.IAM_CANONICAL_ORIGIN = LOCAL
    settings.IAM_ORIGIN_ALIASES = [LOOPBACK]
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1", "evil.example"]


@pytest.mark.parametrize(("host", "origin"), [("127.0.0.1:8000", LOOPBACK), ("localhost:8000", LOCAL),
                                              ("evil.example", LOCAL)])
def test_the_metadata_names_the_origin_the_client_used_when_it_is_configured(world, two_origins, host,
                                                                               origin):
    body = Client().get(f"/.well-known/oauth-authorization-server/oauth/{world.slug}", HTTP_HOST=host).json()
    assert body["issuer"] == f"{origin}/oauth/{world.slug}"
    assert body["token_endpoint"] == f"{origin}/oauth/{world.slug}/token"


def test_a_token_got_on_one_origin_verifies_on_the_other(world, two_origins):
    response = post_form(Client(), world.url("token"), {"grant_type": "client_credentials"},
                         auth=(world.agent.client_id, world.agent_secret), HTTP_HOST="127.0.0.1:8000")
    token = response.json()["access_token"]
    assert jwt.decode(token, options={"verify_signature": False})["iss"] == f"{LOOPBACK}/oauth/{world.slug}"
    answer = post_form(Client(), world.url("introspect"), {"token": token},
                       auth=(world.connection.client_id, world.connection_secret), HTTP_HOST="localhost:8000")
    assert answer.json()["active"] is True


def test_without_aliases_a_token_of_another_origin_is_refused(world, settings):
    settings.IAM_CANONICAL_ORIGIN, settings.IAM_ORIGIN_ALIASES = LOCAL, [LOOPBACK]
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
    token = post_form(Client(), world.url("token"), {"grant_type": "client_credentials"},
                      auth=(world.agent.client_id, world.agent_secret),
                      HTTP_HOST="127.0.0.1:8000").json()["access_token"]
    settings.IAM_ORIGIN_ALIASES = []  # production: one origin only
    answer = post_form(Client(), world.url("introspect"), {"token": token},
                       auth=(world.connection.client_id, world.connection_secret), HTTP_HOST="localhost:8000")
    assert answer.json() == {"active": False}
