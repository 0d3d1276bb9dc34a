"""An org whose owner registered one downstream service (connection) and one agent, through the
services, plus helpers that speak the OAuth endpoints the way a client on the wire does."""

import base64
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import pytest

from accounts.models import Membership
from agents import keys
from agents.models import Agent, Connection
from agents.policies import agent_create, connection_create
from core.models import Organization
from rbac.access import Access
from rbac.guard import access_for_user
from tests.factories import MemberFactory, OrgFactory
from tests.helpers import audit_events

AUDIENCE = "https://tickets.example.com"
SCOPES = ["tickets:read", "tickets:write"]
FORM = "application/x-www-form-urlencoded"


@dataclass
class World:
    """One org as a client sees it: the owner's access, a connection and an agent with secrets."""

    org: Organization
    owner: Membership
    access: Access
    connection: Connection
    connection_secret: str
    agent: Agent
    agent_secret: str

    @property
    def slug(self) -> str:
        return self.org.slug

    def url(self, endpoint: str) -> str:
        return f"/oauth/{self.slug}/{endpoint}"


def basic(client_id: str, secret: str) -> str:
    # RFC 6749 §2.3.1: each part form-urlencoded, then base64 of "id:secret".
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}"
    return "Basic " + base64.b64encode(raw.encode()).decode()


def post_form(client, url: str, data: dict, *, auth: tuple[str, str] | None = None, **extra):
    """POST an application/x-www-form-urlencoded body, with HTTP Basic when `auth` is given."""
    if auth is not None:
        extra["HTTP_AUTHORIZATION"] = basic(*auth)
    return client.post(url, urlencode(data), content_type=FORM, **extra)


def build_world(org=None, *, scopes=("tickets:read",), audience=AUDIENCE, connection_scopes=SCOPES) -> World:
    org = org or OrgFactory()
    owner = MemberFactory(org=org, role="owner")
    access = access_for_user(user=owner.user, org_slug=org.slug)
    connection, connection_secret = connection_create(
        access=access, name="Tickets", audience=audience, scopes=list(connection_scopes))
    agent, agent_secret = agent_create(access=access, name="triage-bot", scopes=list(scopes),
                                       audiences=[audience])
    return World(org, owner, access, connection, connection_secret, agent, agent_secret)


@pytest.fixture(autouse=True)
def _fresh_key_caches():
    # Parsed signing keys are cached per process; each test starts cold, like a new worker.
    keys.caches_clear()
    yield
    keys.caches_clear()


@pytest.fixture
def world(db) -> World:
    return build_world()


@pytest.fixture
def get_token(client):
    """Ask the token endpoint (HTTP Basic) and return the parsed JSON of a 200 answer."""

    def get(w: World, secret: str | None = None, **params) -> dict:
        data = {"grant_type": "client_credentials", **params}
        response = post_form(client, w.url("token"), data, auth=(w.agent.client_id, secret or w.agent_secret))
        assert response.status_code == 200, response.content
        return response.json()

    return get


@pytest.fixture
def introspect(client):
    """Introspect as the world's connection and return the RFC 7662 JSON."""

    def call(w: World, token: str, *, as_world: World | None = None) -> dict:
        caller = as_world or w
        response = post_form(client, caller.url("introspect"), {"token": token},
                             auth=(caller.connection.client_id, caller.connection_secret))
        assert response.status_code == 200, response.content
        return response.json()

    return call


def issued_count(org) -> int:
    return audit_events(org, "token.issued").count()
