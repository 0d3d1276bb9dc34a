"""The authorization server as an integrator meets it: discovery, JWKS, client_credentials with both
client authentication methods, the JWT checked by an independent JOSE library (joserfc), then
introspection and revocation, all over HTTP."""

from urllib.parse import urlsplit

import pytest
from django.conf import settings
from joserfc import jwt
from joserfc.jwk import KeySet

from agents.policies import run_start
from tests.agents.conftest import AUDIENCE, issued_count, post_form
from tests.helpers import audit_events


def _path(url: str) -> str:
    # The metadata names absolute URLs on the canonical origin; the test client speaks paths.
    return urlsplit(url).path


@pytest.fixture
def metadata(client, world):
    response = client.get(f"/.well-known/oauth-authorization-server/oauth/{world.slug}")
    assert response.status_code == 200
    return response.json()


def _verify(token: str, jwks: dict) -> jwt.Token:
    """Verify with joserfc against the published key set only (kid selects the key)."""
    return jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["ES256"])


def test_metadata_lists_every_endpoint_under_the_issuer(metadata, world):
    issuer = f"{settings.IAM_CANONICAL_ORIGIN.rstrip('/')}/oauth/{world.slug}"
    assert metadata["issuer"] == issuer  # RFC 8414 §3.3: identical to the well-known URL's issuer
    for name in ("token_endpoint", "jwks_uri", "introspection_endpoint", "revocation_endpoint"):
        assert metadata[name].startswith(issuer + "/")
    assert "client_credentials" in metadata["grant_types_supported"]
    assert {"client_secret_basic", "client_secret_post"} <= set(
        metadata["token_endpoint_auth_methods_supported"])


def test_metadata_of_an_unknown_org_is_404(client, db):
    assert client.get("/.well-known/oauth-authorization-server/oauth/no-such-org").status_code == 404


def test_jwks_publishes_public_keys_only(client, metadata, get_token, world):
    get_token(world)  # the first token creates the org's signing key
    jwks = client.get(_path(metadata["jwks_uri"])).json()
    assert len(jwks["keys"]) == 1
    (key,) = KeySet.import_key_set(jwks).keys
    assert key.key_type == "EC" and not key.is_private
    assert not {"d", "p", "q"} & set(jwks["keys"][0])


def _basic_token(client, world, metadata, **params):
    data = {"grant_type": "client_credentials", "resource": AUDIENCE, "scope": "tickets:read", **params}
    return post_form(client, _path(metadata["token_endpoint"]), data,
                     auth=(world.agent.client_id, world.agent_secret))


def test_client_credentials_with_basic_yields_a_verifiable_rfc9068_token(client, world, metadata):
    response = _basic_token(client, world, metadata)
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300 and body["scope"] == "tickets:read"
    jwks = client.get(_path(metadata["jwks_uri"])).json()
    token = _verify(body["access_token"], jwks)
    assert token.header["typ"] == "at+jwt" and token.header["alg"] == "ES256"
    assert token.header["kid"] in {k["kid"] for k in jwks["keys"]}
    claims = token.claims
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": metadata["issuer"]},
        sub={"essential": True, "value": f"agent:{world.agent.pk}"},
        aud={"essential": True, "value": AUDIENCE},
        exp={"essential": True}, iat={"essential": True}, jti={"essential": True},
    ).validate(claims)
    assert claims["client_id"] == world.agent.client_id
    assert claims["scope"] == "tickets:read"
    assert claims["org"] == world.slug
    assert "run" not in claims
    assert claims["exp"] - claims["iat"] == 300
    issued = audit_events(world.org, "token.issued").get()
    assert issued.data["jti"] == claims["jti"] and issued.actor_id == str(world.agent.pk)


def test_client_secret_post_works_too(client, world, metadata):
    data = {"grant_type": "client_credentials", "client_id": world.agent.client_id,
            "client_secret": world.agent_secret}
    response = post_form(client, _path(metadata["token_endpoint"]), data)
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    jwks = client.get(_path(metadata["jwks_uri"])).json()
    claims = _verify(response.json()["access_token"], jwks).claims
    assert claims["aud"] == AUDIENCE  # the agent's only audience is the default resource
    assert claims["scope"] == "tickets:read"  # no scope asked: everything granted, nothing more


def test_a_token_bound_to_a_run_carries_it(client, world, metadata):
    run = run_start(access=world.access, agent=world.agent, description="nightly triage")
    response = _basic_token(client, world, metadata, run=str(run.pk))
    assert response.status_code == 200
    jwks = client.get(_path(metadata["jwks_uri"])).json()
    assert _verify(response.json()["access_token"], jwks).claims["run"] == str(run.pk)
    assert audit_events(world.org, "token.issued").get().data["run"] == str(run.pk)


def test_introspect_then_revoke_then_introspect(client, world, metadata):
    token = _basic_token(client, world, metadata).json()["access_token"]
    jwks = client.get(_path(metadata["jwks_uri"])).json()
    claims = _verify(token, jwks).claims
    connection_auth = (world.connection.client_id, world.connection_secret)

    response = post_form(client, _path(metadata["introspection_endpoint"]), {"token": token},
                         auth=connection_auth)
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["active"] is True
    for name in ("iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope", "org"):
        assert body[name] == claims[name], name

    response = post_form(client, _path(metadata["revocation_endpoint"]),
                         {"token": token, "token_type_hint": "access_token"},
                         auth=(world.agent.client_id, world.agent_secret))
    assert response.status_code == 200
    assert audit_events(world.org, "token.revoked").get().data["jti"] == claims["jti"]

    response = post_form(client, _path(metadata["introspection_endpoint"]), {"token": token},
                         auth=connection_auth)
    assert response.json() == {"active": False}
    seen = [e.data["active"] for e in audit_events(world.org, "token.introspected")]
    assert seen == [True, False]


def test_introspection_with_client_secret_post(client, world, metadata, get_token):
    token = get_token(world)["access_token"]
    response = post_form(client, _path(metadata["introspection_endpoint"]), {
        "token": token, "client_id": world.connection.client_id, "client_secret": world.connection_secret})
    assert response.json()["active"] is True


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c", ""])
def test_revoking_an_unknown_token_is_200_and_changes_nothing(client, world, metadata, token):
    response = post_form(client, _path(metadata["revocation_endpoint"]), {"token": token},
                         auth=(world.agent.client_id, world.agent_secret))
    assert response.status_code == 200
    assert not audit_events(world.org, "token.revoked").exists()


def test_errors_are_rfc6749_json(client, world, metadata):
    url = _path(metadata["token_endpoint"])
    good = (world.agent.client_id, world.agent_secret)
    cases = [
        ({"grant_type": "password"}, good, 400, "unsupported_grant_type"),
        ({"grant_type": "client_credentials"}, (world.agent.client_id, "ags_0000000000000000_x"), 401,
         "invalid_client"),
        ({"grant_type": "client_credentials", "scope": "tickets:admin"}, good, 400, "invalid_scope"),
    ]
    for data, auth, status, error in cases:
        response = post_form(client, url, data, auth=auth)
        assert response.status_code == status
        assert response["Content-Type"] == "application/json"
        assert response["Cache-Control"] == "no-store"
        body = response.json()
        assert set(body) == {"error", "error_description"} and body["error"] == error
    assert issued_count(world.org) == 0


def test_the_token_endpoint_wants_a_form_body(client, world, metadata):
    response = client.post(_path(metadata["token_endpoint"]), {"grant_type": "client_credentials"},
                           content_type="application/json")
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    assert issued_count(world.org) == 0
