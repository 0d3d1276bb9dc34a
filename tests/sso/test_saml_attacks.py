"""The SAML security cases (SECURITY_CASES E 31-43) against the ACS, with answers made by the real
pysaml2 IdP and then tampered with. Each refusal asserts the status, that nobody was signed in or
created, and the audit entry with its reason."""

import base64
import datetime
import re

import pytest
from django.test import Client
from freezegun import freeze_time

from accounts.models import User
from sso.models import Identity, SeenAssertion
from tests.helpers import latest_event
from tests.sso.saml_idp import SamlIdp, saml_connection
from tests.sso.saml_idp import saml_idp as saml_idp  # noqa: PLC0414 (the fixture)
from tests.sso.test_saml import acme, acs, login

pytestmark = pytest.mark.django_db
SHA1 = ("http://www.w3.org/2000/09/xmldsig#rsa-sha1", "http://www.w3.org/2000/09/xmldsig#sha1")


@pytest.fixture
def world(saml_idp):
    org = acme()
    return org, saml_connection(org, saml_idp, jit=True)


def _xml(encoded: str) -> str:
    return base64.b64decode(encoded).decode()


def _b64(xml: str) -> str:
    return base64.b64encode(xml.encode()).decode()


def _refused(org, response, reason, status=400):
    assert response.status_code == status, response.content[:400]
    assert not User.objects.filter(email__endswith="@acme.example").exists()
    assert not Identity.objects.exists()
    assert latest_event(org, "sso.login_refused").data["reason"] == reason
    return response


def _answer(client, idp, connection, **answer):
    location = login(client, connection)
    return idp.respond(connection, location, **answer)


def test_both_unsigned_is_refused(client, world, saml_idp):
    org, connection = world
    answer = _answer(client, saml_idp, connection, sign_assertion=False, sign_response=False)
    _refused(org, acs(Client(), connection, *answer), "saml_response_rejected")


def test_a_signed_response_around_an_unsigned_assertion_is_refused(client, world, saml_idp):
    org, connection = world
    answer = _answer(client, saml_idp, connection, sign_assertion=False, sign_response=True)
    _refused(org, acs(Client(), connection, *answer), "saml_response_rejected")


def _assertion_of(xml: str) -> str:
    return re.search(r"<ns1:Assertion .*?</ns1:Assertion>", xml, re.S).group(0)


def test_an_unsigned_assertion_inserted_before_the_signed_one_is_refused(client, world, saml_idp):
    org, connection = world
    saml_response, relay = _answer(client, saml_idp, connection)
    xml = _xml(saml_response)
    signed = _assertion_of(xml)
    forged = re.sub(r"<ns2:Signature .*?</ns2:Signature>", "", signed, flags=re.S)
    forged = forged.replace("carol@acme.example", "admin@acme.example").replace('ID="id-', 'ID="forged-')
    _refused(org, acs(Client(), connection, _b64(xml.replace(signed, forged + signed)), relay),
             "saml_assertion_count")


def test_the_signed_assertion_moved_into_extensions_is_refused(client, world, saml_idp):
    org, connection = world
    saml_response, relay = _answer(client, saml_idp, connection)
    xml = _xml(saml_response)
    signed = _assertion_of(xml)
    forged = re.sub(r"<ns2:Signature .*?</ns2:Signature>", "", signed, flags=re.S).replace(
        "carol@acme.example", "admin@acme.example")
    wrapped = xml.replace(signed, forged).replace(
        "<ns0:Status>", f"<ns0:Extensions>{signed}</ns0:Extensions><ns0:Status>", 1)
    _refused(org, acs(Client(), connection, _b64(wrapped), relay), "saml_assertion_count")


def test_a_comment_in_the_name_id_is_refused(client, world, saml_idp):
    """CVE-2017-11427: the comment survives canonicalisation, so the signature still verifies."""
    org, connection = world
    saml_response, relay = _answer(client, saml_idp, connection, name_id="carol@acme.example.evil.test")
    xml = _xml(saml_response).replace("carol@acme.example.evil.test", "carol@acme.example<!---->.evil.test")
    _refused(org, acs(Client(), connection, _b64(xml), relay), "saml_response_invalid")


def test_a_signature_by_a_key_the_metadata_does_not_name_is_refused(client, world, tmp_path):
    """Security case 34: the attacker's certificate travels in KeyInfo; only stored keys count."""
    org, connection = world
    attacker = SamlIdp(str(tmp_path))
    answer = _answer(client, attacker, connection)
    assert attacker.certificate.split("\n")[1][:40] in "".join(_xml(answer[0]).split())
    _refused(org, acs(Client(), connection, *answer), "saml_response_rejected")


def test_a_wrong_audience_is_refused(client, world, saml_idp):
    org, connection = world
    answer = _answer(client, saml_idp, connection, audience="https://another-sp.example/metadata")
    _refused(org, acs(Client(), connection, *answer), "saml_response_rejected")


def test_a_wrong_destination_is_refused(client, world, saml_idp):
    org, connection = world
    answer = _answer(client, saml_idp, connection, destination="https://another-sp.example/acs")
    _refused(org, acs(Client(), connection, *answer), "saml_response_rejected")


def test_an_expired_assertion_is_refused(client, world, saml_idp):
    org, connection = world
    answer = _answer(client, saml_idp, connection)
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=9)
    with freeze_time(later):
        response = acs(Client(), connection, *answer)
    assert response.status_code == 400
    assert latest_event(org, "sso.login_refused").data["reason"] == "saml_response_rejected"
    assert not Identity.objects.exists()


def test_an_unknown_in_response_to_is_refused(client, world, saml_idp):
    org, connection = world
    answer = _answer(client, saml_idp, connection, in_response_to="_not-one-of-ours")
    _refused(org, acs(Client(), connection, *answer), "saml_unknown_request")


def test_an_unsolicited_response_is_refused_while_idp_initiated_login_is_off(client, world, saml_idp):
    org, connection = world
    answer = _answer(client, saml_idp, connection, unsolicited=True)
    _refused(org, acs(Client(), connection, *answer), "saml_unsolicited")


def test_idp_initiated_login_when_the_connection_allows_it(client, world, saml_idp):
    from sso.models import Connection

    org, connection = world
    Connection.objects.filter(pk=connection.pk).update(allow_idp_initiated=True)
    connection.refresh_from_db()
    browser = Client()
    saml_response, _ = _answer(client, saml_idp, connection, unsolicited=True)
    response = acs(browser, connection, saml_response, "")
    assert response.status_code == 302
    assert browser.session["_auth_user_id"] == str(User.objects.get(email="carol@acme.example").pk)
    stale = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=3)
    saml_response, _ = _answer(client, saml_idp, connection, unsolicited=True, name_id="dan@acme.example")
    with freeze_time(stale):
        refused = acs(Client(), connection, saml_response, "")
    assert refused.status_code == 400
    assert latest_event(org, "sso.login_refused").data["reason"] == "saml_unsolicited_stale"


@pytest.mark.parametrize("payload", [
    '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
    '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;">]><samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">'
    "&c;</samlp:Response>",
])
def test_dtds_and_entities_are_refused_at_once(world, payload):
    org, connection = world
    _refused(org, acs(Client(), connection, _b64(payload), ""), "saml_response_invalid")


def test_sha1_signatures_are_refused(client, world, saml_idp):
    org, connection = world
    answer = _answer(client, saml_idp, connection, sign_alg=SHA1[0], digest_alg=SHA1[1])
    _refused(org, acs(Client(), connection, *answer), "saml_weak_signature")


def test_an_oversize_response_is_refused(world):
    org, connection = world
    _refused(org, acs(Client(), connection, "A" * 400_000, ""), "saml_response_too_large", 413)


def test_a_missing_response_is_refused(world):
    org, connection = world
    _refused(org, acs(Client(), connection, "", ""), "saml_response_missing")


def test_a_non_success_status_is_refused(client, world, saml_idp):
    org, connection = world
    saml_response, relay = _answer(client, saml_idp, connection)
    xml = _xml(saml_response).replace("urn:oasis:names:tc:SAML:2.0:status:Success",
                                      "urn:oasis:names:tc:SAML:2.0:status:Requester")
    _refused(org, acs(Client(), connection, _b64(xml), relay), "saml_status")


def test_a_recipient_naming_another_service_is_refused(client, world, saml_idp):
    """The response's Destination is ours, but the signed assertion's bearer confirmation names
    another SP's ACS: it was issued for that SP (pysaml2 alone lets it through)."""
    org, connection = world
    answer = _answer(client, saml_idp, connection, recipient="https://another-sp.example/acs")
    assert "https://another-sp.example/acs" in _xml(answer[0])
    _refused(org, acs(Client(), connection, *answer), "saml_recipient_mismatch")
    assert not SeenAssertion.objects.exists()


def test_an_assertion_naming_no_audience_is_refused(client, world, saml_idp):
    """A signed assertion without an AudienceRestriction is meant for nobody in particular, so not
    for us (pysaml2 alone accepts it)."""
    org, connection = world
    answer = _answer(client, saml_idp, connection, audience_restriction=False)
    assert "Audience" not in _xml(answer[0])
    _refused(org, acs(Client(), connection, *answer), "saml_audience_mismatch")
    assert not SeenAssertion.objects.exists()
