"""Every page that mints a secret shows it once, after a redirect: the POST answers 303 to a GET that
shows it (no-store), the same GET again says it was already shown, and no reload mints another. In
between, the session row holds the secret only sealed."""

import re
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from freezegun import freeze_time

from accounts.models import ApiKey, UserSession
from accounts.sessions import SessionStore
from accounts.views.shown_once import SESSION_KEY, SHOWN_ONCE_SECONDS
from agents import policies
from agents.models import Agent, AgentSecret, Connection
from scim.models import ScimToken
from tests.factories import MemberFactory, sign_in
from tests.helpers import access_of

pytestmark = pytest.mark.django_db

AUDIENCE = "https://tickets.example.test/api"


def make_connection(owner):
    return policies.connection_create(access=access_of(owner), name="Tickets", audience=AUDIENCE,
                                      scopes=["tickets:read"])[0]


def make_agent(owner):
    make_connection(owner)
    return policies.agent_create(access=access_of(owner), name="Triage bot", scopes=["tickets:read"],
                                 audiences=[AUDIENCE], owner=owner)[0]


@dataclass(frozen=True)
class Flow:
    """One page that mints a secret: what to set up, where to post, which rows it writes."""

    name: str
    setup: object  # owner -> the object the URL names, or None
    url: object  # (org, obj) -> the URL posted to
    data: dict
    prefix: str  # what the secret starts with
    rows: object  # org -> what must not change when the page is reloaded


def _org_url(name):
    return lambda org, obj: reverse(name, kwargs={"org": org.slug})


def _obj_url(name):
    return lambda org, obj: reverse(name, kwargs={"org": org.slug, "pk": obj.pk})


def _credentials(org):
    return (sorted(ApiKey.objects.for_org(org).values_list("lookup_id", flat=True)),
            sorted(ScimToken.objects.for_org(org).values_list("lookup_id", flat=True)),
            Agent.objects.for_org(org).count(),
            sorted(AgentSecret.objects.filter(agent__org=org).values_list("lookup_id", flat=True)),
            sorted(Connection.objects.for_org(org).values_list("lookup_id", flat=True)))


FLOWS = [
    Flow("api key", lambda owner: None, _org_url("accounts:api-keys"),
         {"name": "CI", "permissions": ["member:read"]}, "iamk_", _credentials),
    Flow("scim token", lambda owner: None, _org_url("provisioning:tokens"), {"name": "Okta"}, "scim_",
         _credentials),
    Flow("agent", make_connection, _org_url("agents:agents"),
         {"name": "Bot", "audiences": [AUDIENCE], "scopes": ["tickets:read"]}, "ags_", _credentials),
    Flow("agent secret rotation", make_agent, _obj_url("agents:agent-rotate"),
         {"overlap_seconds": "60", "confirm": "yes"}, "ags_", _credentials),
    Flow("connection", lambda owner: None, _org_url("agents:connections"),
         {"name": "CRM", "audience": "https://crm.example.test", "scopes": "crm:read"}, "cns_", _credentials),
    Flow("connection secret rotation", make_connection, _obj_url("agents:connection-rotate"),
         {"confirm": "yes"}, "cns_", _credentials),
]


def posted(flow, owner, client):
    obj = flow.setup(owner)
    data = dict(flow.data)
    if flow.name == "agent":
        data["owner"] = str(owner.pk)
    response = client.post(flow.url(owner.org, obj), data)
    assert response.status_code == 303, response.content[:500]
    assert response["Cache-Control"] == "no-store" and "?shown=" in response["Location"]
    return response


def session_row_text(client) -> str:
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    row = UserSession.objects.get(session_key=key)
    return row.session_data + repr(SessionStore().decode(row.session_data))


@pytest.mark.parametrize("flow", FLOWS, ids=[f.name for f in FLOWS])
def test_shown_once_after_a_redirect_and_a_reload_mints_nothing(org, owner, flow):
    client = sign_in(Client(), owner.user)
    redirect = posted(flow, owner, client)
    minted = flow.rows(org)

    shown = client.get(redirect["Location"])
    assert shown.status_code == 200 and shown["Cache-Control"] == "no-store"
    secret = shown.context["secret"]
    assert secret.startswith(flow.prefix)
    assert shown.content.decode().count(secret) == 1
    assert secret not in redirect.content.decode()
    # A copy button for the field that holds it (console.js copies the field; the secret is not
    # written a second time into the page).
    field = re.search(rf'<input id="([\w-]+)"[^>]*value="{re.escape(secret)}"', shown.content.decode())
    assert field and f'data-copy="#{field.group(1)}"' in shown.content.decode(), flow.name

    for _ in range(2):  # a reload, then the back button
        again = client.get(redirect["Location"])
        assert again.status_code == 410 and again["Cache-Control"] == "no-store"
        body = again.content.decode()
        assert secret not in body and 'data-testid="secret-already-shown"' in body
    assert flow.rows(org) == minted  # nothing minted by any reload
    assert client.session.get(SESSION_KEY) == {}


@pytest.mark.parametrize("flow", FLOWS, ids=[f.name for f in FLOWS])
def test_between_the_post_and_the_get_the_session_row_holds_it_only_sealed(org, owner, flow):
    client = sign_in(Client(), owner.user)
    redirect = posted(flow, owner, client)
    stored = session_row_text(client)
    secret = client.get(redirect["Location"]).context["secret"]
    raw = secret.split("_", 2)[2]
    assert raw not in stored and secret not in stored


def test_a_handle_shows_nothing_in_another_session(org, owner):
    client = sign_in(Client(), owner.user)
    redirect = posted(FLOWS[0], owner, client)
    colleague = MemberFactory(org=org, role="owner")
    other = sign_in(Client(), colleague.user)
    refused = other.get(redirect["Location"])
    assert refused.status_code == 410 and refused.context["secret"] is None
    assert client.get(redirect["Location"]).status_code == 200  # still there for its owner, once


def test_a_handle_expires(org, owner):
    with freeze_time() as frozen:
        client = sign_in(Client(), owner.user)
        redirect = posted(FLOWS[0], owner, client)
        frozen.tick(timedelta(seconds=SHOWN_ONCE_SECONDS + 1))
        sign_in(client, owner.user)  # a fresh proof: only the handle has aged
        late = client.get(redirect["Location"])
        assert late.status_code == 410 and late.context["secret"] is None


def test_an_unknown_or_foreign_handle_is_already_shown(org, owner):
    client = sign_in(Client(), owner.user)
    agent_redirect = posted(FLOWS[2], owner, client)  # an agent's secret, on that agent's page
    api_keys = reverse("accounts:api-keys", kwargs={"org": org.slug})
    handle = agent_redirect["Location"].split("?", 1)[1]
    wrong_page = client.get(f"{api_keys}?{handle}")
    assert wrong_page.status_code == 410 and wrong_page.context["secret"] is None
    assert client.get(f"{api_keys}?shown=nonsense").status_code == 410
    assert client.get(agent_redirect["Location"]).status_code == 200  # a wrong page did not spend it
