"""Shared helpers for the delegation tests: a person approving a device authorization over HTTP,
tokens verified with an independent JOSE library (joserfc) against the published JWKS."""

import re

from django.test import Client
from joserfc import jwt
from joserfc.jwk import KeySet

from agents.policies import agent_create, agent_delegates_set
from tests.agents.conftest import AUDIENCE, World, post_form
from tests.factories import MemberFactory, sign_in

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"


def verified(client, w: World, token: str) -> dict:
    """The claims of `token` as joserfc reads them, verified against the org's published keys."""
    jwks = client.get(f"/oauth/{w.slug}/jwks.json").json()
    decoded = jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["ES256", "EdDSA", "RS256"])
    jwt.JWTClaimsRegistry(exp={"essential": True}, iat={"essential": True}).validate(decoded.claims)
    assert decoded.header["typ"] == "at+jwt"
    return decoded.claims


def device_start(client, w: World, *, agent=None, secret=None, **params):
    agent, secret = agent or w.agent, secret or w.agent_secret
    data = {"resource": AUDIENCE, "scope": "tickets:read", **params}
    return post_form(client, w.url("device_authorization"), data, auth=(agent.client_id, secret))


def poll(client, w: World, device_code: str, *, agent=None, secret=None, **params):
    agent, secret = agent or w.agent, secret or w.agent_secret
    return post_form(
        client,
        w.url("token"),
        {"grant_type": DEVICE_GRANT, "device_code": device_code, **params},
        auth=(agent.client_id, secret),
    )


def refresh(client, w: World, refresh_token: str, *, agent=None, secret=None, **params):
    agent, secret = agent or w.agent, secret or w.agent_secret
    return post_form(
        client,
        w.url("token"),
        {"grant_type": "refresh_token", "refresh_token": refresh_token, **params},
        auth=(agent.client_id, secret),
    )


def person_client(user, *, fresh=True) -> Client:
    return sign_in(Client(), user, auth_age=0 if fresh else 3600)


def approve(person: Client, user_code: str, *, decision="approve", lifetime=None, follow=False):
    """Enter the code on /device/ and answer the consent form, as a browser would."""
    page = person.post("/device/", {"user_code": user_code})
    assert page.status_code == 200, page.content.decode()[:2000]
    body = page.content.decode()
    authorization = re.search(r'name="authorization" value="([^"]+)"', body).group(1)
    data = {"decision": decision, "authorization": authorization}
    if lifetime is not None:
        data["lifetime_seconds"] = lifetime
    return person.post("/device/", data, follow=follow)


def delegated_tokens(client, w: World, user, **start) -> dict:
    """A person (`user`, a member of w.org) approves the world's agent; the token response."""
    started = device_start(client, w, **start).json()
    answer = approve(person_client(user), started["user_code"])
    assert answer.status_code == 200, answer.content.decode()[:2000]
    response = poll(client, w, started["device_code"])
    assert response.status_code == 200, response.content
    return response.json()


def second_agent(w: World, name="writer-bot", scopes=("tickets:read",), *, allow_from=None):
    """Another agent of the org, owned by the world's owner; `allow_from` may delegate to it."""
    agent, secret = agent_create(access=w.access, name=name, scopes=list(scopes), audiences=[AUDIENCE])
    if allow_from is not None:
        current = list(allow_from.may_delegate_to.all())
        agent_delegates_set(access=w.access, agent=allow_from, targets=[*current, agent])
    return agent, secret


def exchange(client, w: World, agent, secret, subject_token: str, **params):
    data = {"grant_type": EXCHANGE, "subject_token": subject_token, "subject_token_type": ACCESS, **params}
    return post_form(client, w.url("token"), data, auth=(agent.client_id, secret))


def member_of(w: World, role="member", **kw):
    return MemberFactory(org=w.org, role=role, **kw)
