"""The OpenID Connect relying party against a real OpenID Provider on loopback (oidc-provider, see
tests/sso/oidc_peer.py): discovery through the outbound guard, the login redirect (state, nonce,
PKCE S256), the callback's code exchange and ID token verification, userinfo, sign-in (new person
provisioned, linked person), the MFA the IdP proved against the org's mandate, and back-channel
logout."""

import base64
import hashlib
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.test import Client
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Membership, SecurityPolicy, User
from accounts.policy import MFA_TIME_KEY
from core.errors import Invalid
from sso import oidc
from sso.models import Connection, Domain, Flow, Identity, IdpSession
from tests.factories import MemberFactory, OrgFactory, UserFactory
from tests.helpers import audit_events, in_parallel, latest_event
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


def test_a_linked_person_signs_in_as_themselves_and_goes_where_they_were_going(oidc_peer):
    org = acme()
    connection = oidc_connection(org, oidc_peer)
    member = MemberFactory(org=org, user=UserFactory(email="alice.old@elsewhere.example"))
    Identity.objects.create(org=org, connection=connection, issuer=oidc_peer.issuer, subject="alice-0001",
                            user=member.user)
    users = User.objects.count()
    client = Client()
    location = start(client, connection, next=f"/orgs/{org.slug}/members/")
    response = client.get(_callback_path(oidc_peer.login(location, "alice-0001")))
    assert response.status_code == 302 and response["Location"] == f"/orgs/{org.slug}/members/"
    assert client.session["_auth_user_id"] == str(member.user.pk)
    assert User.objects.count() == users
    assert latest_event(org, "sso.login_accepted").data["linked"] == "identity"
    assert client.get(f"/orgs/{org.slug}/members/").status_code == 200


def test_after_sign_in_next_to_another_host_goes_home(oidc_peer):
    """Security case 51, end to end."""
    connection = oidc_connection(acme(), oidc_peer, jit=True)
    client = Client()
    response = client.get(_callback_path(oidc_peer.login(start(client, connection, next="//evil.com"))))
    assert response.status_code == 302 and response["Location"] == "/"


@pytest.mark.parametrize("verified", [False, "true", 1, None])
def test_email_verified_counts_only_when_it_is_true(oidc_peer, verified):
    connection = oidc_connection(acme(), oidc_peer, jit=True)
    oidc_peer.account("dave-0004", email="dave@acme.example", name="Dave", groups=[],
                      **({"email_verified": verified} if verified is not None else {}))
    users = User.objects.count()
    client = Client()
    response = client.get(_callback_path(oidc_peer.login(start(client, connection), "dave-0004")))
    assert response.status_code == 403 and b'data-reason="email_not_verified"' in response.content
    assert User.objects.count() == users and not Identity.objects.exists()
    assert latest_event(connection.org, "sso.login_refused").data["reason"] == "email_not_verified"


@pytest.fixture
def sent(monkeypatch):
    """What the relying party sent out (it still goes out, through the guard)."""
    calls = []
    real = oidc.outbound_request

    def record(method, url, **kwargs):
        calls.append({"method": method, "url": url, **kwargs})
        return real(method, url, **kwargs)

    monkeypatch.setattr(oidc, "outbound_request", record)
    return calls


def _token_request(calls, peer):
    (call,) = [c for c in calls if c["url"] == peer.issuer + "/token"]
    return call["headers"], parse_qs(call["body"].decode())


def test_client_secret_basic_by_default(oidc_peer, sent):
    connection = oidc_connection(acme(), oidc_peer, jit=True)
    assert round_trip(Client(), oidc_peer, connection).status_code == 302
    headers, form = _token_request(sent, oidc_peer)
    secret = connection.unsealed("client_secret")
    expected = base64.b64encode(f"{connection.client_id}:{secret}".encode()).decode()
    assert headers["Authorization"] == f"Basic {expected}" and "client_secret" not in form
    assert form["grant_type"] == ["authorization_code"] and len(form["code_verifier"][0]) >= 43
    assert form["redirect_uri"] == [oidc.redirect_uri(connection)]
    userinfo = [c for c in sent if c["url"] == oidc_peer.issuer + "/me"]
    assert len(userinfo) == 1 and userinfo[0]["headers"]["Authorization"].startswith("Bearer ")


def test_client_secret_post_when_the_provider_takes_only_that(oidc_peer, sent):
    connection = oidc_connection(acme(), oidc_peer, jit=True, auth_method="client_secret_post")
    connection.provider_metadata = {**connection.provider_metadata,
                                    "token_endpoint_auth_methods_supported": ["client_secret_post"]}
    connection.save()
    response = round_trip(Client(), oidc_peer, connection)
    assert response.status_code == 302 and Identity.objects.filter(connection=connection).exists()
    headers, form = _token_request(sent, oidc_peer)
    assert "Authorization" not in headers
    assert form["client_id"] == [connection.client_id]
    assert form["client_secret"] == [connection.unsealed("client_secret")]


def test_a_wrong_client_secret_fails_the_exchange_and_is_not_shown(oidc_peer):
    connection = oidc_connection(acme(), oidc_peer, jit=True)
    connection.seal("client_secret", "not-the-secret-at-all")
    connection.save()
    response = round_trip(Client(), oidc_peer, connection)
    assert response.status_code == 400 and b'data-reason="token_exchange_failed"' in response.content
    assert b"not-the-secret-at-all" not in response.content and not Identity.objects.exists()
    entry = latest_event(connection.org, "sso.login_refused")
    assert "not-the-secret" not in str(entry.data)


def test_groups_and_names_come_from_userinfo_after_the_id_token(oidc_peer):
    connection = oidc_connection(acme(), oidc_peer, jit=True, scopes="openid email profile groups")
    claims = {}

    real = oidc.assertion_from

    def spy(connection, id_claims, userinfo):
        assertion = real(connection, id_claims, userinfo)
        claims.update(id_token=id_claims, userinfo=userinfo, assertion=assertion)
        return assertion

    oidc.assertion_from = spy
    try:
        assert round_trip(Client(), oidc_peer, connection, "carol-0003").status_code == 302
    finally:
        oidc.assertion_from = real
    assert "email" not in claims["id_token"]  # the OP puts profile claims in userinfo only
    assertion = claims["assertion"]
    assert assertion.email == "carol@acme.example" and assertion.email_verified is True
    assert assertion.groups == ("engineering", "admins") and assertion.display_name == "Carol Poe"
    assert assertion.idp_session and assertion.mfa_values == ("pwd", "otp")
    assert assertion.claims["sub"] == "carol-0003" and "nonce" not in assertion.claims


# --- the MFA the IdP proved (security case 23) -------------------------------------------------


def _mfa_required(org):
    SecurityPolicy.objects.update_or_create(org=org, defaults={"mfa_required": True})


@pytest.mark.parametrize(("amr", "acr"), [("pwd otp", ""), ("pwd hwk", ""), ("pwd", "urn:acme:mfa")])
def test_amr_or_acr_the_connection_accepts_satisfies_the_mandate(oidc_peer, amr, acr):
    org = acme()
    _mfa_required(org)
    connection = oidc_connection(org, oidc_peer, jit=True, accepted_mfa=["otp", "hwk", "urn:acme:mfa"])
    client = Client()
    response = round_trip(client, oidc_peer, connection, amr=amr, acr=acr)
    assert response.status_code == 302 and client.session["_auth_user_id"]
    assert client.session[MFA_TIME_KEY]
    assert latest_event(org, "sso.login_accepted").data["mfa"] is True
    assert client.get(f"/orgs/{org.slug}/members/").status_code == 200


def test_an_sso_login_without_mfa_steps_up_to_our_own_factor(oidc_peer):
    org = acme()
    _mfa_required(org)
    connection = oidc_connection(org, oidc_peer, accepted_mfa=["otp", "hwk"])
    member = MemberFactory(org=org, user=UserFactory(email="alice@acme.example"))
    TOTPDevice.objects.create(user=member.user, name="phone", confirmed=True)
    Identity.objects.create(org=org, connection=connection, issuer=oidc_peer.issuer, subject="alice-0001",
                            user=member.user)
    client = Client()
    response = round_trip(client, oidc_peer, connection, amr="pwd", acr="urn:acme:pwd")
    assert response.status_code == 302 and response["Location"].startswith("/login/mfa/")
    assert "_auth_user_id" not in client.session
    assert latest_event(org, "sso.mfa_step_up").data["reason"] == "not_proven_by_idp"
    assert latest_event(org, "sso.login_accepted").data["mfa"] is False
    assert client.get(f"/orgs/{org.slug}/members/").status_code == 302


# --- back-channel logout -----------------------------------------------------------------------


def _signed_in(peer, connection, account="alice-0001"):
    client = Client()
    assert round_trip(client, peer, connection, account).status_code == 302
    identity = Identity.objects.get(connection=connection, subject=account)
    sid = IdpSession.objects.filter(identity=identity).latest("id").idp_session
    assert {"sub": account, "client_id": connection.client_id, "sid": sid} in peer.sessions(account)
    return client, identity, sid


def _logout(connection, token, **extra):
    csrf_checking = Client(enforce_csrf_checks=True)  # a server-to-server POST: no CSRF token
    return csrf_checking.post(f"/sso/{connection.org.slug}/{connection.slug}/oidc/backchannel-logout/",
                              {"logout_token": token, **extra})


def test_backchannel_logout_from_the_provider_ends_that_session_once(oidc_peer):
    org = acme()
    connection = oidc_connection(org, oidc_peer, jit=True)
    client, identity, sid = _signed_in(oidc_peer, connection)
    other, _, other_sid = _signed_in(oidc_peer, connection)
    assert sid != other_sid
    token = oidc_peer.logout_token(connection.client_id, "alice-0001", sid)
    response = _logout(connection, token)
    assert response.status_code == 200 and response["Cache-Control"].startswith("max-age=0")
    assert "_auth_user_id" not in client.session  # ended
    assert client.get(f"/orgs/{org.slug}/members/").status_code == 302
    assert other.get(f"/orgs/{org.slug}/members/").status_code == 200  # another IdP session lives on
    assert latest_event(org, "sso.backchannel_logout").data["sessions"] == 1
    replay = _logout(connection, token)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_request"
    assert latest_event(org, "sso.backchannel_logout").data["reason"] == "logout_token_replayed"
    assert other.get(f"/orgs/{org.slug}/members/").status_code == 200


def test_backchannel_logout_by_subject_ends_every_session_of_it(oidc_peer):
    org = acme()
    connection = oidc_connection(org, oidc_peer, jit=True)
    first, _, _ = _signed_in(oidc_peer, connection)
    second, _, _ = _signed_in(oidc_peer, connection)
    assert _logout(connection, oidc_peer.logout_token(connection.client_id, "alice-0001")).status_code == 200
    for client in (first, second):
        assert client.get(f"/orgs/{org.slug}/members/").status_code == 302


def _logout_claims(peer, connection, **changes):
    now = int(time.time())
    claims = {"iss": peer.issuer, "aud": connection.client_id, "iat": now, "exp": now + 120,
              "jti": uuid.uuid4().hex, "sub": "alice-0001", "events": {oidc.BACKCHANNEL_EVENT: {}}}
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


@pytest.mark.parametrize("changes", [
    {"nonce": "n"}, {"events": None}, {"events": {"http://schemas.openid.net/event/other": {}}},
    {"events": {oidc.BACKCHANNEL_EVENT: "yes"}}, {"sub": None}, {"jti": None}, {"iat": None},
    {"aud": "another-client"}, {"iss": "https://op.evil.example"}, {"exp": 1},
], ids=lambda changes: ",".join(f"{k}={v}" for k, v in changes.items()))
def test_a_logout_token_that_is_not_one_ends_nothing(oidc_peer, changes):
    org = acme()
    connection = oidc_connection(org, oidc_peer, jit=True)
    client, _, _ = _signed_in(oidc_peer, connection)
    token = oidc_peer.sign(_logout_claims(oidc_peer, connection, **changes), headers={"typ": "logout+jwt"})
    response = _logout(connection, token)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    assert client.get(f"/orgs/{org.slug}/members/").status_code == 200
    entry = latest_event(org, "sso.backchannel_logout")
    assert entry.data == {"connection": connection.slug, "sessions": 0, "reason": "logout_token_invalid"}


def test_a_logout_token_needs_the_providers_key_and_a_post(oidc_peer):
    org = acme()
    connection = oidc_connection(org, oidc_peer, jit=True)
    client, _, _ = _signed_in(oidc_peer, connection)
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = oidc_peer.sign(_logout_claims(oidc_peer, connection), key=attacker)
    assert _logout(connection, forged).status_code == 400
    assert _logout(connection, "").status_code == 400
    path = f"/sso/{org.slug}/{connection.slug}/oidc/backchannel-logout/"
    assert Client().get(path, {"logout_token": oidc_peer.logout_token(connection.client_id, "alice-0001")}
                        ).status_code == 405
    assert client.get(f"/orgs/{org.slug}/members/").status_code == 200


# --- races (PostgreSQL: SQLite serialises every writer) -----------------------------------------


def _postgres_only():
    from django.db import connection as db

    if db.vendor != "postgresql":
        pytest.skip("race cases run on PostgreSQL (SQLite serialises every writer)")


@pytest.mark.django_db(transaction=True)
def test_of_parallel_callbacks_replaying_one_answer_exactly_one_signs_in(oidc_peer):
    _postgres_only()
    connection = oidc_connection(acme(), oidc_peer, jit=True)
    client = Client()
    back = _callback_path(oidc_peer.login(start(client, connection)))
    cookie = client.cookies["sessionid"].value

    def replay(_):
        browser = Client()
        browser.cookies["sessionid"] = cookie
        return browser.get(back).status_code

    statuses = in_parallel(6, replay)
    assert sorted(statuses) == [302] + [400] * 5
    assert Identity.objects.filter(connection=connection).count() == 1
    reasons = [e.data["reason"] for e in audit_events(connection.org, "sso.login_refused")]
    assert reasons == ["state_used"] * 5


@pytest.mark.django_db(transaction=True)
def test_of_parallel_deliveries_of_one_logout_token_one_is_accepted(oidc_peer):
    _postgres_only()
    connection = oidc_connection(acme(), oidc_peer, jit=True)
    _signed_in(oidc_peer, connection)
    token = oidc_peer.logout_token(connection.client_id, "alice-0001")
    statuses = in_parallel(6, lambda _: _logout(connection, token).status_code)
    assert sorted(statuses) == [200] + [400] * 5
    reasons = sorted(e.data["reason"] for e in audit_events(connection.org, "sso.backchannel_logout"))
    assert reasons == ["backchannel"] + ["logout_token_replayed"] * 5


# --- no secret leaves ------------------------------------------------------------------------


def test_no_secret_reaches_a_log_line_or_an_audit_record(oidc_peer, sent, caplog):
    import logging

    from audit.models import AuditEntry

    caplog.set_level(logging.DEBUG)
    connection = oidc_connection(acme(), oidc_peer, jit=True)
    client = Client()
    back = oidc_peer.login(start(client, connection))
    assert client.get(_callback_path(back)).status_code == 302
    flow = Flow.objects.get(connection=connection)
    _, form = _token_request(sent, oidc_peer)
    secrets_seen = [connection.unsealed("client_secret"), _query(back)["code"], form["code_verifier"][0],
                    oidc_peer.last_id_token(), oidc.verifier_unseal(connection, flow)]
    logged = "\n".join(record.getMessage() for record in caplog.records)
    audited = "\n".join(str(entry.data) for entry in AuditEntry.objects.for_org(connection.org))
    for secret in secrets_seen:
        assert secret not in logged and secret not in audited
    assert client.get(_callback_path(back)).status_code == 400  # a replay's refusal names none either
    page = client.get(_callback_path(back)).content.decode()
    assert not any(secret in page for secret in secrets_seen)


def test_login_before_the_provider_was_discovered_is_refused(oidc_peer):
    connection = oidc_connection(acme(), oidc_peer)
    Connection.objects.filter(pk=connection.pk).update(provider_metadata={})
    response = Client().get(f"/sso/{connection.org.slug}/{connection.slug}/oidc/login/")
    assert response.status_code == 503 and b'data-reason="provider_unconfigured"' in response.content
    assert latest_event(connection.org, "sso.login_refused").data["reason"] == "provider_unconfigured"
    assert not Flow.objects.filter(connection=connection).exists()
    assert not audit_events(connection.org, "sso.login_started").exists()


def test_a_login_hint_is_passed_on_and_an_oversized_one_dropped(oidc_peer):
    connection = oidc_connection(acme(), oidc_peer)
    assert _query(start(Client(), connection, login_hint="alice@acme.example"))["login_hint"] == \
        "alice@acme.example"
    assert "login_hint" not in _query(start(Client(), connection, login_hint="a" * 300))
