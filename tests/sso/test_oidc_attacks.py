"""Security cases 44-51 (OIDC relying party) against the real OpenID Provider on loopback, and the ID
token verifier alone with keys of the tests' own. Every refused callback answers with an error page,
creates no user, identity, membership or session link, and is audited `sso.login_refused` with its
reason. Tokens the OP would never issue are signed with its own key (the fixture made it) or with an
attacker's, and swapped into the OP's real token response (`peer.next_id_token`)."""

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.test import Client
from django.utils import timezone
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from accounts.models import Membership, User
from core.errors import Invalid
from sso import oidc
from sso.models import Connection, Domain, Flow, Identity, IdpSession
from sso.signin import SsoRefused
from tests.factories import OrgFactory
from tests.helpers import latest_event
from tests.sso import oidc_peer as peer
from tests.sso.oidc_peer import oidc_connection

oidc_peer_process, oidc_peer = peer.oidc_peer_process, peer.oidc_peer  # the fixtures

pytestmark = pytest.mark.django_db


def _query(url: str) -> dict:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def _with(url: str, **changes) -> str:
    """`url` with query parameters changed (None drops one)."""
    parts = urlsplit(url)
    params = _query(url)
    for name, value in changes.items():
        if value is None:
            params.pop(name, None)
        else:
            params[name] = value
    return urlunsplit(parts._replace(query=urlencode(params)))


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def acme():
    org = OrgFactory()
    Domain.objects.create(org=org, domain="acme.example", verified_at=timezone.now())
    return org


def snapshot():
    return (User.objects.count(), Identity.objects.count(), Membership.objects.count(),
            IdpSession.objects.count())


def start(client, connection, **params) -> str:
    response = client.get(f"/sso/{connection.org.slug}/{connection.slug}/oidc/login/", params)
    assert response.status_code == 302
    return response["Location"]


def assert_refused(response, connection, reason: str, status: int = 400, before=None):
    assert response.status_code == status, response.content[:400]
    assert f'data-reason="{reason}"'.encode() in response.content
    assert latest_event(connection.org, "sso.login_refused").data["reason"] == reason
    if before is not None:
        assert snapshot() == before
    assert "_auth_user_id" not in response.wsgi_request.session


def with_swapped_id_token(peer, connection, make, client=None, account="alice-0001"):
    """Start our login, have the OP's next token response carry `make(nonce)` as its ID token, sign
    in at the OP and return our callback's response."""
    client = client or Client()
    location = start(client, connection)
    nonce = _query(location)["nonce"]
    peer.next_id_token(make(nonce))
    back = peer.login(location, account)
    return client.get(_path(back))


@pytest.fixture
def world(oidc_peer):
    return oidc_connection(acme(), oidc_peer, jit=True)


# --- 44: state missing, mismatched, already used ---------------------------------------------------


def test_44_state_missing(oidc_peer, world):
    client = Client()
    back = oidc_peer.login(start(client, world))
    before = snapshot()
    assert_refused(client.get(_path(_with(back, state=None))), world, "state_missing", before=before)


def test_44_state_from_another_browser_or_tampered(oidc_peer, world):
    mine, theirs = Client(), Client()
    back = oidc_peer.login(start(mine, world))
    before = snapshot()
    assert_refused(theirs.get(_path(back)), world, "state_invalid", before=before)
    state = _query(back)["state"]
    tampered = state[:-2] + ("aa" if not state.endswith("aa") else "bb")
    assert_refused(mine.get(_path(_with(back, state=tampered))), world, "state_invalid", before=before)


def test_44_state_already_used_even_by_a_refused_callback(oidc_peer, world):
    client = Client()
    back = oidc_peer.login(start(client, world))
    before = snapshot()
    # The first callback is refused (another issuer), and that spends the flow all the same.
    assert_refused(client.get(_path(_with(back, iss="https://op.evil.example"))), world, "issuer_mismatch")
    assert_refused(client.get(_path(back)), world, "state_used", before=before)
    assert Flow.objects.get(connection=world).consumed_at is not None


def test_an_error_from_the_provider_is_refused(oidc_peer, world):
    client = Client()
    back = oidc_peer.login(start(client, world), cancel=True)
    assert _query(back)["error"] == "access_denied"
    before = snapshot()
    assert_refused(client.get(_path(back)), world, "idp_error", before=before)


def test_only_get_reaches_login_and_callback(world):
    assert Client().post(f"/sso/{world.org.slug}/acme-idp/oidc/callback/").status_code == 405


# --- 45: wrong nonce; a valid ID token replayed into a new flow --------------------------------


def test_45_wrong_nonce(oidc_peer, world):
    before = snapshot()
    response = with_swapped_id_token(
        oidc_peer, world, lambda nonce: oidc_peer.sign(oidc_peer.claims(world.client_id, "another-nonce")))
    assert_refused(response, world, "nonce_mismatch", before=before)


def test_45_missing_nonce(oidc_peer, world):
    response = with_swapped_id_token(
        oidc_peer, world, lambda nonce: oidc_peer.sign(oidc_peer.claims(world.client_id, None)))
    assert_refused(response, world, "nonce_mismatch")


def test_45_a_real_id_token_replayed_into_a_new_flow(oidc_peer, world):
    first = Client()
    back = oidc_peer.login(start(first, world))
    first.get(_path(back))
    issued = oidc_peer.last_id_token()
    assert jwt.decode(issued, options={"verify_signature": False})["aud"] == world.client_id
    before = snapshot()
    response = with_swapped_id_token(oidc_peer, world, lambda nonce: issued)
    assert_refused(response, world, "nonce_mismatch", before=before)


# --- 46: alg none; HS256 keyed with the OP's public key ----------------------------------------


def _unsigned(claims: dict, header: dict) -> str:
    def part(value):
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}."


def _hs256(claims: dict, key: bytes, kid: str) -> str:
    def part(value):
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    signing_input = f"{part({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{part(claims)}"
    mac = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def _public_pem(peer) -> bytes:
    return peer.private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_46_alg_none(oidc_peer, world, alg):
    before = snapshot()
    response = with_swapped_id_token(oidc_peer, world, lambda nonce: _unsigned(
        oidc_peer.claims(world.client_id, nonce), {"alg": alg, "kid": oidc_peer.kid}))
    assert_refused(response, world, "id_token_invalid", before=before)


def test_46_hs256_keyed_with_the_providers_public_key(oidc_peer, world):
    before = snapshot()
    response = with_swapped_id_token(oidc_peer, world, lambda nonce: _hs256(
        oidc_peer.claims(world.client_id, nonce), _public_pem(oidc_peer), oidc_peer.kid))
    assert_refused(response, world, "id_token_invalid", before=before)


def test_46_hs256_needs_a_connection_set_up_for_it_and_then_only_the_client_secret(oidc_peer, world):
    secret = world.unsealed("client_secret").encode()
    claims = oidc_peer.claims(world.client_id, "n-1")
    with pytest.raises(SsoRefused):
        oidc.id_token_verify(world, _hs256(claims, secret, "x"), nonce="n-1")
    world.id_token_hs256 = True  # a connection set up for HS256
    assert oidc.id_token_verify(world, _hs256(claims, secret, "x"), nonce="n-1")["sub"] == "alice-0001"
    with pytest.raises(SsoRefused):
        oidc.id_token_verify(world, _hs256(claims, _public_pem(oidc_peer), "x"), nonce="n-1")
    jwk_n = json.dumps(world.jwks["keys"][0]).encode()
    with pytest.raises(SsoRefused):
        oidc.id_token_verify(world, _hs256(claims, jwk_n, "x"), nonce="n-1")


# --- 47: mix-up: iss, and the RFC 9207 iss parameter, from another OP ------------------------


def test_47_iss_parameter_from_another_provider(oidc_peer, world):
    client = Client()
    back = oidc_peer.login(start(client, world))
    before = snapshot()
    assert_refused(client.get(_path(_with(back, iss="https://op.evil.example"))), world, "issuer_mismatch",
                   before=before)


def test_47_iss_parameter_missing_when_the_provider_sends_it(oidc_peer, world):
    assert world.provider_metadata["authorization_response_iss_parameter_supported"] is True
    client = Client()
    back = oidc_peer.login(start(client, world))
    before = snapshot()
    assert_refused(client.get(_path(_with(back, iss=None))), world, "issuer_mismatch", before=before)


def test_47_iss_parameter_checked_whenever_present(oidc_peer, world):
    world.provider_metadata = {**world.provider_metadata,
                               "authorization_response_iss_parameter_supported": False}
    world.save()
    client = Client()
    back = oidc_peer.login(start(client, world))
    assert_refused(client.get(_path(_with(back, iss=oidc_peer.issuer + "/other"))), world, "issuer_mismatch")


def test_47_id_token_from_another_issuer(oidc_peer, world):
    before = snapshot()
    response = with_swapped_id_token(oidc_peer, world, lambda nonce: oidc_peer.sign(
        oidc_peer.claims(world.client_id, nonce, iss="https://op.evil.example")))
    assert_refused(response, world, "id_token_invalid", before=before)


def test_47_id_token_for_another_client(oidc_peer, world):
    response = with_swapped_id_token(oidc_peer, world, lambda nonce: oidc_peer.sign(
        oidc_peer.claims("someone-else", nonce)))
    assert_refused(response, world, "id_token_invalid")


# --- 48: jku, x5u, jwk headers pointing at an attacker -----------------------------------------


class _Attacker(BaseHTTPRequestHandler):
    hits: list = []
    body = b"{}"

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)


@pytest.fixture
def attacker():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = {**json.loads(RSAAlgorithm.to_jwk(key.public_key())), "kid": "evil", "alg": "RS256",
              "use": "sig"}
    _Attacker.hits = []
    _Attacker.body = json.dumps({"keys": [public]}).encode()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Attacker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield key, public, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("header", ["jku", "x5u", "jwk"])
def test_48_a_key_the_token_names_is_never_used(oidc_peer, world, attacker, header):
    key, public, url = attacker
    headers = {"jku": {"jku": url + "/jwks", "kid": "evil"}, "x5u": {"x5u": url + "/cert.pem", "kid": "evil"},
               "jwk": {"jwk": public, "kid": "evil"}}[header]
    before = snapshot()
    response = with_swapped_id_token(oidc_peer, world, lambda nonce: oidc_peer.sign(
        oidc_peer.claims(world.client_id, nonce), key=key, headers=headers))
    assert_refused(response, world, "id_token_invalid", before=before)
    assert _Attacker.hits == []


def test_48_with_the_providers_own_key_the_header_is_ignored(oidc_peer, world, attacker):
    _key, public, url = attacker
    token = oidc_peer.sign(oidc_peer.claims(world.client_id, "n-48"),
                           headers={"jku": url + "/jwks", "x5u": url + "/c.pem", "jwk": public})
    assert oidc.id_token_verify(world, token, nonce="n-48")["sub"] == "alice-0001"
    assert _Attacker.hits == []


# --- 49: expired, or iat in the future -----------------------------------------------------------


def test_49_expired_id_token(oidc_peer, world):
    now = int(time.time())
    before = snapshot()
    response = with_swapped_id_token(oidc_peer, world, lambda nonce: oidc_peer.sign(
        oidc_peer.claims(world.client_id, nonce, iat=now - 600, exp=now - 61)))
    assert_refused(response, world, "id_token_invalid", before=before)


def test_49_iat_in_the_future(oidc_peer, world):
    now = int(time.time())
    before = snapshot()
    response = with_swapped_id_token(oidc_peer, world, lambda nonce: oidc_peer.sign(
        oidc_peer.claims(world.client_id, nonce, iat=now + 600, exp=now + 900)))
    assert_refused(response, world, "id_token_invalid", before=before)


def test_49_sixty_seconds_of_skew_are_allowed(oidc_peer, world):
    now = int(time.time())
    late = oidc_peer.sign(oidc_peer.claims(world.client_id, "n", iat=now - 300, exp=now - 30))
    early = oidc_peer.sign(oidc_peer.claims(world.client_id, "n", iat=now + 30, exp=now + 300))
    assert oidc.id_token_verify(world, late, nonce="n") and oidc.id_token_verify(world, early, nonce="n")
    for claims in ({"exp": None}, {"iat": None}, {"sub": None}, {"sub": ""}, {"exp": now - 90}):
        with pytest.raises(SsoRefused):
            oidc.id_token_verify(world, oidc_peer.sign(oidc_peer.claims(world.client_id, "n", **claims)),
                                 nonce="n")


# --- 50: PKCE verifier mismatch, code_challenge dropped ----------------------------------------


def test_50_a_verifier_that_does_not_match_the_challenge(oidc_peer, world):
    client = Client()
    back = oidc_peer.login(start(client, world))
    flow = Flow.objects.get(connection=world)
    Flow.objects.filter(pk=flow.pk).update(verifier_sealed=oidc.verifier_seal(world, flow.nonce, "x" * 64))
    before = snapshot()
    assert_refused(client.get(_path(back)), world, "token_exchange_failed", before=before)


def test_50_code_challenge_dropped(oidc_peer, world):
    client = Client()
    location = start(client, world)
    back = oidc_peer.login(_with(location, code_challenge=None, code_challenge_method=None))
    assert _query(back)["error"] == "invalid_request"  # the OP requires PKCE
    before = snapshot()
    assert_refused(client.get(_path(back)), world, "idp_error", before=before)


def test_50_a_verifier_sealed_for_another_flow_does_not_open(oidc_peer, world):
    client = Client()
    back = oidc_peer.login(start(client, world))
    flow = Flow.objects.get(connection=world)
    sealed = oidc.verifier_seal(world, "another-nonce", "v" * 64)
    Flow.objects.filter(pk=flow.pk).update(verifier_sealed=sealed)
    assert_refused(client.get(_path(back)), world, "state_invalid")


# --- 51: next=//evil.com --------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["//evil.com", "https://evil.com/", "/\\evil.com", "///evil.com",
                                    "http://testserver.evil.com/", "javascript:alert(1)"])
def test_51_next_to_another_host_is_dropped(oidc_peer, world, target):
    client = Client()
    start(client, world, next=target)
    assert Flow.objects.get(connection=world).next_url == ""


# --- the verifier alone, with keys of the tests' own ----------------------------------------------


def _key_pair(alg):
    if alg in ("RS256", "PS256"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return key, json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    if alg == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
        return key, json.loads(ECAlgorithm.to_jwk(key.public_key()))
    key = ed25519.Ed25519PrivateKey.generate()
    return key, json.loads(OKPAlgorithm.to_jwk(key.public_key()))


def _offline_connection(jwks, **fields):
    org = OrgFactory()
    connection = Connection(org=org, name="Offline", slug="offline", protocol="oidc",
                            issuer="https://op.example", client_id="our-client", jwks=jwks,
                            provider_metadata={"issuer": "https://op.example",
                                               "jwks_uri": "https://op.example/jwks"},
                            metadata_fetched_at=timezone.now(), **fields)
    connection.seal("client_secret", "s3cret-s3cret-s3cret-s3cret-s3cret")
    connection.save()
    return connection


def _claims(**extra):
    now = int(time.time())
    base = {"iss": "https://op.example", "sub": "p-1", "aud": "our-client", "iat": now, "exp": now + 300,
            "nonce": "n-1"}
    base.update(extra)
    return {name: value for name, value in base.items() if value is not None}


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "EdDSA"])
def test_each_allowed_algorithm_verifies(alg):
    key, public = _key_pair(alg)
    connection = _offline_connection({"keys": [{**public, "kid": "k1"}]})
    token = jwt.encode(_claims(), key, algorithm=alg, headers={"kid": "k1"})
    assert oidc.id_token_verify(connection, token, nonce="n-1")["sub"] == "p-1"


@pytest.mark.parametrize("alg", ["RS384", "RS512", "ES384", "PS512"])
def test_algorithms_outside_the_allow_list_are_refused(alg):
    key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) if alg[0] in "RP"
           else ec.generate_private_key(ec.SECP384R1()))
    public = json.loads((RSAAlgorithm if alg[0] in "RP" else ECAlgorithm).to_jwk(key.public_key()))
    connection = _offline_connection({"keys": [{**public, "kid": "k1"}]})
    with pytest.raises(SsoRefused) as caught:
        oidc.id_token_verify(connection, jwt.encode(_claims(), key, algorithm=alg, headers={"kid": "k1"}),
                             nonce="n-1")
    assert caught.value.reason == "id_token_invalid"


def test_a_key_must_fit_the_algorithm_the_token_names():
    key, public = _key_pair("RS256")
    connection = _offline_connection({"keys": [{**public, "kid": "k1", "alg": "PS256"}]})
    with pytest.raises(SsoRefused):
        oidc.id_token_verify(connection, jwt.encode(_claims(), key, algorithm="RS256", headers={"kid": "k1"}),
                             nonce="n-1")
    connection.jwks = {"keys": [{**public, "kid": "k1", "use": "enc"}]}
    with pytest.raises(SsoRefused):
        oidc.id_token_verify(connection, jwt.encode(_claims(), key, algorithm="RS256", headers={"kid": "k1"}),
                             nonce="n-1")


def test_several_audiences_need_azp_equal_to_our_client():
    key, public = _key_pair("ES256")
    connection = _offline_connection({"keys": [{**public, "kid": "k1"}]})

    def verify(**claims):
        token = jwt.encode(_claims(**claims), key, algorithm="ES256", headers={"kid": "k1"})
        return oidc.id_token_verify(connection, token, nonce="n-1")

    assert verify(aud=["our-client", "other"], azp="our-client")["sub"] == "p-1"
    assert verify(aud=["our-client"])["sub"] == "p-1"
    for claims in ({"aud": ["our-client", "other"]}, {"aud": ["our-client", "other"], "azp": "other"},
                   {"aud": "our-client", "azp": "other"}, {"aud": ["other"]}, {"aud": None}):
        with pytest.raises(SsoRefused):
            verify(**claims)


def test_a_logout_token_is_not_an_id_token():
    key, public = _key_pair("RS256")
    connection = _offline_connection({"keys": [{**public, "kid": "k1"}]})
    token = jwt.encode(_claims(events={oidc.BACKCHANNEL_EVENT: {}}), key, algorithm="RS256",
                       headers={"kid": "k1", "typ": "logout+jwt"})
    with pytest.raises(SsoRefused):
        oidc.id_token_verify(connection, token, nonce="n-1")


def test_without_a_kid_one_key_of_the_right_type_must_be_found():
    key, public = _key_pair("RS256")
    _other, other_public = _key_pair("RS256")
    connection = _offline_connection({"keys": [public]})
    assert oidc.id_token_verify(connection, jwt.encode(_claims(), key, algorithm="RS256"), nonce="n-1")
    connection.jwks = {"keys": [public, other_public]}
    with pytest.raises(SsoRefused):
        oidc.id_token_verify(connection, jwt.encode(_claims(), key, algorithm="RS256"), nonce="n-1")


def test_an_unknown_kid_refreshes_the_jwks_at_most_once_a_minute(oidc_peer):
    connection = oidc_connection(acme(), oidc_peer)
    _stale, stale_public = _key_pair("RS256")
    Connection.objects.filter(pk=connection.pk).update(jwks={"keys": [{**stale_public, "kid": "old"}]},
                                                       metadata_fetched_at=None)
    connection.refresh_from_db()
    token = oidc_peer.sign(oidc_peer.claims(connection.client_id, "n"))
    assert oidc.id_token_verify(connection, token, nonce="n")["sub"] == "alice-0001"
    connection.refresh_from_db()
    assert [k["kid"] for k in connection.jwks["keys"]] == [oidc_peer.kid]
    fetched = connection.metadata_fetched_at
    assert fetched is not None
    # Another unknown kid within the minute: no new fetch, refused.
    Connection.objects.filter(pk=connection.pk).update(jwks={"keys": [{**stale_public, "kid": "old"}]})
    connection.refresh_from_db()
    with pytest.raises(SsoRefused):
        oidc.id_token_verify(connection, token, nonce="n")
    connection.refresh_from_db()
    assert connection.metadata_fetched_at == fetched and connection.jwks["keys"][0]["kid"] == "old"


# --- userinfo: read after the ID token, for the same subject ---------------------------------------


@pytest.mark.parametrize("body", [{"sub": "mallory-9999", "email": "alice@acme.example",
                                   "email_verified": True}, {"email": "alice@acme.example"}, []])
def test_userinfo_for_another_subject_is_refused(oidc_peer, world, attacker, body):
    _key, _public, url = attacker
    _Attacker.body = json.dumps(body).encode()
    world.provider_metadata = {**world.provider_metadata, "userinfo_endpoint": url + "/me"}
    world.save()
    client = Client()
    back = oidc_peer.login(start(client, world))
    before = snapshot()
    assert_refused(client.get(_path(back)), world, "userinfo_invalid", before=before)
    assert _Attacker.hits == ["/me"]  # asked once, after the ID token was verified


# --- discovery documents we do not take ------------------------------------------------------------


class _Discovery(BaseHTTPRequestHandler):
    documents: dict = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = json.dumps(self.documents.get(self.path, {})).encode()
        self.send_response(200 if self.path in self.documents else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def discovery(settings):
    settings.IAM_OUTBOUND_ALLOW_NETWORKS = ["127.0.0.0/8"]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Discovery)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield base
    server.shutdown()


def _document(base, **changes):
    document = {"issuer": base, "authorization_endpoint": base + "/auth", "token_endpoint": base + "/token",
                "jwks_uri": base + "/jwks", "response_types_supported": ["code"],
                "id_token_signing_alg_values_supported": ["RS256"]}
    document.update(changes)
    return {name: value for name, value in document.items() if value is not None}


@pytest.mark.parametrize(("changes", "code"), [
    ({"issuer": "https://op.evil.example"}, "issuer_mismatch"),
    ({"token_endpoint": None}, "provider_invalid"),
    ({"jwks_uri": "javascript:alert(1)"}, "provider_invalid"),
    ({"response_types_supported": ["id_token"]}, "provider_invalid"),
    ({"id_token_signing_alg_values_supported": ["none", "RS384"]}, "provider_invalid"),
    ({"code_challenge_methods_supported": ["plain"]}, "provider_invalid"),
    ({"token_endpoint_auth_methods_supported": ["private_key_jwt"]}, "provider_invalid"),
])
def test_a_discovery_document_we_cannot_use_is_refused(discovery, changes, code):
    _Discovery.documents = {"/.well-known/openid-configuration": _document(discovery, **changes)}
    with pytest.raises(Invalid) as caught:
        oidc.provider_discover(discovery)
    assert caught.value.code == code and list(caught.value.fields) == ["issuer"]


def test_a_usable_discovery_document_is_taken(discovery):
    _Discovery.documents = {"/.well-known/openid-configuration": _document(discovery)}
    assert oidc.provider_discover(discovery)["token_endpoint"] == discovery + "/token"


def test_a_jwks_keeps_only_public_signing_keys(discovery):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with_private = {**json.loads(RSAAlgorithm.to_jwk(private)), "kid": "rsa"}
    _Discovery.documents = {"/jwks": {"keys": [
        with_private, {"kty": "oct", "k": "c2VjcmV0", "kid": "sym"},
        {**json.loads(RSAAlgorithm.to_jwk(private.public_key())), "kid": "enc", "use": "enc"},
        {"kty": "RSA", "kid": "broken", "n": "AQAB"}, "not a key"]}}
    keys = oidc.jwks_fetch(discovery + "/jwks")["keys"]
    assert [k["kid"] for k in keys] == ["rsa"] and not {"d", "p", "q", "dp", "dq", "qi"} & set(keys[0])
    _Discovery.documents = {"/jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}
    with pytest.raises(Invalid) as caught:
        oidc.jwks_fetch(discovery + "/jwks")
    assert caught.value.code == "jwks_empty"
    with pytest.raises(Invalid) as caught:
        oidc.jwks_fetch(discovery + "/missing")
    assert caught.value.code == "provider_unreachable"
