"""Passkeys (SECURITY_CASES C24) with real signatures: a software authenticator holding an EC P-256
key builds "none" attestations and assertions, so each negative case differs from a valid response
in exactly the property under test and py_webauthn checks everything else."""

import hashlib
import json
import os
import time

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import Client
from django.urls import reverse
from webauthn.helpers import bytes_to_base64url

from accounts import lockout
from accounts.login_flow import AUTH_TIME_KEY
from accounts.models import WebAuthnCredential
from audit.models import AuditEntry
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

RP_ID, ORIGIN = "iam.example.test", "https://iam.example.test"
UP, UV, AT = 0x01, 0x04, 0x40


class SoftAuthenticator:
    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.id = bytes_to_base64url(self.credential_id)

    def cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"),
                            -3: numbers.y.to_bytes(32, "big")})

    def _auth_data(self, rp_id, flags, counter, attested=False) -> bytes:
        data = hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + counter.to_bytes(4, "big")
        if attested:
            cid = self.credential_id
            data += bytes(16) + len(cid).to_bytes(2, "big") + cid + self.cose_key()  # AAGUID zero
        return data

    @staticmethod
    def _client_data(kind, challenge, origin) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin,
                           "crossOrigin": False}).encode()

    def attestation(self, challenge, *, rp_id=RP_ID, origin=ORIGIN, flags=UP | UV | AT) -> dict:
        auth_data = self._auth_data(rp_id, flags, 0, attested=True)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", challenge, origin)
        return {"id": self.id, "rawId": self.id, "type": "public-key", "clientExtensionResults": {},
                "response": {"clientDataJSON": bytes_to_base64url(client_data),
                             "attestationObject": bytes_to_base64url(attestation), "transports": ["usb"]}}

    def assertion(self, challenge, *, counter, rp_id=RP_ID, origin=ORIGIN, flags=UP | UV) -> dict:
        auth_data = self._auth_data(rp_id, flags, counter)
        client_data = self._client_data("webauthn.get", challenge, origin)
        signed = auth_data + hashlib.sha256(client_data).digest()
        signature = self.key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return {"id": self.id, "rawId": self.id, "type": "public-key", "clientExtensionResults": {},
                "response": {"clientDataJSON": bytes_to_base64url(client_data),
                             "authenticatorData": bytes_to_base64url(auth_data),
                             "signature": bytes_to_base64url(signature), "userHandle": None}}


@pytest.fixture(autouse=True)
def _relying_party(settings):
    settings.IAM_WEBAUTHN_RP_ID = RP_ID
    settings.IAM_WEBAUTHN_ORIGIN = ORIGIN


@pytest.fixture
def user(db):
    return UserFactory(password=PASSWORD)


@pytest.fixture
def authenticator():
    return SoftAuthenticator()


def failures():
    return list(AuditEntry.objects.for_org(None).filter(event_name="mfa.failure")
                .order_by("seq").values_list("data", flat=True))


def post_json(client, url, body=None):
    return client.post(url, body or {}, content_type="application/json")


# --- registration ------------------------------------------------------------------------------


def enrolling(user) -> Client:
    client = Client()
    client.force_login(user)
    session = client.session
    session[AUTH_TIME_KEY] = time.time()
    session.save()
    return client


def register_challenge(client) -> str:
    response = post_json(client, reverse("accounts:mfa-passkey-register-options"))
    assert response.status_code == 200
    options = response.json()
    assert options["rp"]["id"] == RP_ID
    assert options["authenticatorSelection"]["userVerification"] == "required"
    return options["challenge"]


def register(client, credential, name="Laptop"):
    return post_json(client, reverse("accounts:mfa-passkey-register-verify"),
                     {"credential": credential, "name": name})


def test_registration_stores_the_credential_and_offers_recovery_codes(user, authenticator):
    client = enrolling(user)
    response = register(client, authenticator.attestation(register_challenge(client)))
    assert response.status_code == 200
    assert response.json()["redirect"] == reverse("accounts:mfa-recovery-codes")
    device = WebAuthnCredential.objects.get(user=user)
    assert (device.credential_id, device.name, device.transports) == (authenticator.id, "Laptop", ["usb"])
    assert bytes(device.public_key) == authenticator.cose_key() and device.confirmed
    enrolled = AuditEntry.objects.for_org(None).get(event_name="mfa.enrolled")
    assert enrolled.data == {"method": "webauthn", "device": device.pk}


@pytest.mark.parametrize(("change", "reason"), [
    ({"origin": "https://evil.example"}, "enroll_origin"),
    ({"rp_id": "evil.example"}, "enroll_rp_id"),
])
def test_c24_registration_for_another_origin_or_rp_is_refused(user, authenticator, change, reason):
    client = enrolling(user)
    response = register(client, authenticator.attestation(register_challenge(client), **change))
    assert response.status_code == 400
    assert not WebAuthnCredential.objects.exists()
    assert failures() == [{"method": "webauthn", "reason": reason}]


def test_c24_a_registration_challenge_answers_once(user, authenticator):
    client = enrolling(user)
    credential = authenticator.attestation(register_challenge(client))
    assert register(client, credential).status_code == 200
    WebAuthnCredential.objects.all().delete()
    assert register(client, credential).status_code == 400
    assert not WebAuthnCredential.objects.exists()
    assert failures() == [{"method": "webauthn", "reason": "enroll_challenge"}]


def test_c24_registration_with_another_sessions_challenge_is_refused(user, authenticator):
    mine, theirs = enrolling(user), enrolling(user)
    register_challenge(mine)
    response = register(mine, authenticator.attestation(register_challenge(theirs)))
    assert response.status_code == 400
    assert not WebAuthnCredential.objects.exists()
    assert failures() == [{"method": "webauthn", "reason": "enroll_challenge"}]


# --- assertion at login ------------------------------------------------------------------------


@pytest.fixture
def passkey(user, authenticator):
    return WebAuthnCredential.objects.create(user=user, name="Laptop", credential_id=authenticator.id,
                                             public_key=authenticator.cose_key())


def pending(user) -> Client:
    client = Client()
    response = client.post("/login/", {"email": user.email, "password": PASSWORD})
    assert response["Location"] == reverse("accounts:mfa-verify")
    assert "Use a passkey" in client.get(response["Location"]).content.decode()
    return client


def login_challenge(client) -> str:
    response = post_json(client, reverse("accounts:mfa-passkey-options"))
    assert response.status_code == 200
    options = response.json()
    assert options["userVerification"] == "required" and options["rpId"] == RP_ID
    return options["challenge"]


def assert_refused(client, response, passkey, counter=0):
    assert response.status_code == 401 and response.json()["error"] == "passkey_rejected"
    assert "_auth_user_id" not in client.session
    passkey.refresh_from_db()
    assert passkey.sign_count == counter and passkey.last_used_at is None


def verify(client, credential):
    return post_json(client, reverse("accounts:mfa-passkey-verify"), {"credential": credential})


def test_a_passkey_completes_the_login(user, passkey, authenticator):
    client = pending(user)
    response = verify(client, authenticator.assertion(login_challenge(client), counter=3))
    assert response.status_code == 200 and response.json()["redirect"] == reverse("accounts:home")
    assert client.session["_auth_user_id"] == str(user.pk)
    passkey.refresh_from_db()
    assert passkey.sign_count == 3 and passkey.last_used_at is not None
    events = AuditEntry.objects.for_org(None)
    assert events.get(event_name="mfa.success").data == {"method": "webauthn"}
    assert events.get(event_name="login.success").data == {"method": "password+webauthn"}


@pytest.mark.parametrize(("change", "reason"), [
    ({"origin": "https://evil.example"}, "origin"),
    ({"rp_id": "evil.example"}, "rp_id"),
    ({"flags": UP}, "user_verification"),
])
def test_c24_an_assertion_for_another_origin_or_rp_or_without_uv_is_refused(user, passkey, authenticator,
                                                                            change, reason):
    client = pending(user)
    response = verify(client, authenticator.assertion(login_challenge(client), counter=1, **change))
    assert_refused(client, response, passkey)
    assert failures() == [{"method": "webauthn", "reason": reason}]


def test_c24_a_login_challenge_answers_once(user, passkey, authenticator):
    client = pending(user)
    challenge = login_challenge(client)
    wrong = verify(client, authenticator.assertion(challenge, counter=1, origin="https://evil.example"))
    assert_refused(client, wrong, passkey)
    replay = verify(client, authenticator.assertion(challenge, counter=2))
    assert_refused(client, replay, passkey)
    assert [f["reason"] for f in failures()] == ["origin", "challenge"]


def test_c24_another_sessions_challenge_is_refused(user, passkey, authenticator):
    theirs, mine = pending(user), pending(user)
    their_challenge = login_challenge(theirs)
    login_challenge(mine)
    response = verify(mine, authenticator.assertion(their_challenge, counter=1))
    assert_refused(mine, response, passkey)
    assert failures() == [{"method": "webauthn", "reason": "challenge"}]


@pytest.mark.parametrize("counter", [5, 10])
def test_c24_a_sign_counter_that_does_not_advance_is_refused(user, passkey, authenticator, counter):
    WebAuthnCredential.objects.filter(pk=passkey.pk).update(sign_count=10)
    client = pending(user)
    response = verify(client, authenticator.assertion(login_challenge(client), counter=counter))
    assert_refused(client, response, passkey, counter=10)
    assert failures() == [{"method": "webauthn", "reason": "sign_count"}]


def test_passkey_failures_count_towards_the_lockout(user, passkey, authenticator):
    client = pending(user)
    for _ in range(4):  # the password step was the first of the five verifications
        assert verify(client, authenticator.assertion(login_challenge(client), counter=1,
                                                      origin="https://evil.example")).status_code == 401
    response = verify(client, authenticator.assertion(login_challenge(client), counter=2))
    assert_refused(client, response, passkey)
    assert lockout.is_locked(user.email) > 0
    assert [f["reason"] for f in failures()] == ["origin"] * 4 + ["locked"]


def test_a_refusal_reported_by_the_browser_spends_the_challenge_and_is_audited(user, passkey, authenticator):
    client = pending(user)
    challenge = login_challenge(client)
    for _ in range(2):  # the second report has no challenge left, so it records nothing
        report = {"clientError": "NotAllowedError"}
        response = post_json(client, reverse("accounts:mfa-passkey-verify"), report)
        assert response.status_code == 400 and response.json()["error"] == "passkey_cancelled"
    assert_refused(client, verify(client, authenticator.assertion(challenge, counter=1)), passkey)
    assert [f["reason"] for f in failures()] == ["client_NotAllowedError", "challenge"]
    assert lockout.is_locked(user.email) == 0
