"""The OpenID Connect relying party against a real OpenID Provider on loopback (oidc-provider, see
tests/sso/oidc_peer.py): discovery through the outbound guard, the login redirect (state, nonce,
PKCE S256), the callback's code exchange and ID token verification, userinfo, sign-in (new person
provisioned, linked person), the MFA the IdP proved against the org's mandate, and back-channel
logout."""

import base64
import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import Membership, User
from core.errors import Invalid
from sso import oidc
from sso.models import Connection, Domain, Flow, Identity, IdpSession
from tests.factories import OrgFactory
from tests.helpers import audit_events, latest_event
from tests.sso import oidc_peer as peer
from tests.sso.oidc_peer import oidc_connection

oidc_peer_process, oidc_peer = peer.oidc_peer_process, peer.oidc_peer  # the fixtures

pytestmark = pytest.mark.django_db


def _query(url: str) -> dict:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def _callback_path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def acme(**fields):
    """An org that verified acme.example, the domain of the peer's accounts."""
    org = OrgFactory(**fields)
    Domain.objects.create(org=org, domain="acme.example", verified_at=timezone.now())
    return org


def start(client, connection, **params):
    response = client.get(f"/sso/{connection.org.slug}/{connection.slug}/oidc/login/", params)
    assert response.status_code == 302, response.content[:300]
    return response["Location"]


def round_trip(client, peer, connection, account="alice-0001", **login):
    """Our login, the OP's sign-in as `account`, and our callback. Returns the callback's response."""
    location = start(client, connection)
    back = peer.login(location, account, **login)
    return client.get(_callback_path(back))


# --- discovery ---------------------------------------------------------------------------------


def test_discovery_and_jwks_through_the_guard(oidc_peer):
    metadata = oidc.provider_discover(oidc_peer.issuer)
    assert metadata["issuer"] == oidc_peer.issuer
    assert metadata["authorization_response_iss_parameter_supported"] is True
    keys = oidc.jwks_fetch(metadata["jwks_uri"])["keys"]
    assert [k["kid"] for k in keys] == [oidc_peer.kid]
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(keys[0])


def test_discovered_issuer_must_equal_the_configured_one_exactly(oidc_peer):
    # Same discovery URL, but the document names the issuer without the trailing slash.
    with pytest.raises(Invalid) as caught:
        oidc.provider_discover(oidc_peer.issuer + "/")
    assert caught.value.code == "issuer_mismatch" and "issuer" in caught.value.fields


def test_the_guard_refuses_the_loopback_provider_unless_allow_listed(oidc_peer, settings):
    settings.IAM_OUTBOUND_ALLOW_NETWORKS = []
    with pytest.raises(Invalid) as caught:
        oidc.provider_discover(oidc_peer.issuer)
    assert caught.value.code == "provider_unreachable"
    assert "address_not_allowed" in caught.value.detail
    with pytest.raises(Invalid):
        oidc.jwks_fetch(oidc_peer.issuer + "/jwks")


# --- the login redirect --------------------------------------------------------------------------


def test_login_redirects_to_the_provider_with_state_nonce_and_pkce(oidc_peer):
    connection = oidc_connection(OrgFactory(), oidc_peer)
    client = Client()
    location = start(client, connection, next="/account/")
    assert location.startswith(oidc_peer.issuer + "/auth?")
    params = _query(location)
    assert params["response_type"] == "code" and params["client_id"] == connection.client_id
    assert params["redirect_uri"] == oidc.redirect_uri(connection)
    assert params["redirect_uri"].endswith(f"/sso/{connection.org.slug}/acme-idp/oidc/callback/")
    assert params["scope"] == "openid email profile" and params["code_challenge_method"] == "S256"
    flow = Flow.objects.get(connection=connection)
    assert flow.nonce == params["nonce"] and flow.next_url == "/account/"
    verifier = oidc.verifier_unseal(connection, flow)
    assert verifier not in flow.verifier_sealed
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert params["code_challenge"] == expected
    assert latest_event(connection.org, "sso.login_started").data["connection"] == "acme-idp"


def test_a_disabled_or_foreign_connection_is_not_found(oidc_peer):
    connection = oidc_connection(OrgFactory(), oidc_peer)
    other = OrgFactory()
    assert Client().get(f"/sso/{other.slug}/acme-idp/oidc/login/").status_code == 404
    Connection.objects.filter(pk=connection.pk).update(enabled=False)
    assert Client().get(f"/sso/{connection.org.slug}/acme-idp/oidc/login/").status_code == 404


# --- the round trip ------------------------------------------------------------------------------


def test_a_new_person_is_provisioned_just_in_time(oidc_peer):
    connection = oidc_connection(acme(), oidc_peer, jit=True)
    client = Client()
    response = round_trip(client, oidc_peer, connection)
    assert response.status_code == 302, response.content[:500]
    identity = Identity.objects.get(connection=connection)
    assert (identity.issuer, identity.subject) == (oidc_peer.issuer, "alice-0001")
    user = User.objects.get(pk=identity.user_id)
    assert user.email == "alice@acme.example"
    assert Membership.objects.filter(org=connection.org, user=user).exists()
    assert client.session["_auth_user_id"] == str(user.pk)
    assert IdpSession.objects.filter(identity=identity).exclude(idp_session="").count() == 1
    accepted = latest_event(connection.org, "sso.login_accepted")
    assert accepted.data["subject"] == "alice-0001"
    assert not audit_events(connection.org, "sso.login_refused").exists()
