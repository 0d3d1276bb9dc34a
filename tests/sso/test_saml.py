"""SAML 2.0 end to end against a real pysaml2 IdP (tests/sso/saml_idp.py): metadata, the signed
AuthnRequest, the ACS (a cross-site POST) and the same-site finish step, linking, JIT and the MFA
mandate through AuthnContextClassRef."""

from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import Membership, SecurityPolicy
from sso.models import Domain, Flow, Identity, SeenAssertion
from tests.factories import OrgFactory
from tests.helpers import latest_event
from tests.sso.saml_idp import MFA_CONTEXT, saml_connection
from tests.sso.saml_idp import saml_idp as saml_idp  # noqa: PLC0414 (the fixture)

pytestmark = pytest.mark.django_db


def acme(**fields):
    org = OrgFactory(**fields)
    Domain.objects.create(org=org, domain="acme.example", verified_at=timezone.now())
    return org


def login(client, connection, **params) -> str:
    response = client.get(f"/sso/{connection.org.slug}/{connection.slug}/saml/login/", params)
    assert response.status_code == 302, response.content[:300]
    return response["Location"]


def acs(client, connection, saml_response, relay_state):
    return client.post(f"/sso/{connection.org.slug}/{connection.slug}/saml/acs/",
                       {"SAMLResponse": saml_response, "RelayState": relay_state})


def round_trip(client, idp, connection, **answer):
    location = login(client, connection)
    posted = acs(Client(), connection, *idp.respond(connection, location, **answer))  # cross-site: no cookie
    assert posted.status_code == 303, posted.content[:500]
    return client.get(posted["Location"])


def test_the_connection_reads_the_idps_metadata_and_publishes_ours(saml_idp):
    connection = saml_connection(acme(), saml_idp)
    assert connection.idp_entity_id == "https://idp.acme.example/saml/metadata"
    assert connection.idp_sso_url == "https://idp.acme.example/saml/sso"
    assert len(connection.idp_certificates_info) == 1 and connection.sp_certificate
    assert "PRIVATE KEY" not in connection.sp_private_key_sealed
    metadata = Client().get(f"/sso/{connection.org.slug}/{connection.slug}/saml/metadata/")
    assert metadata.status_code == 200
    body = metadata.content.decode()
    assert f"/sso/{connection.org.slug}/{connection.slug}/saml/acs/" in body and "PRIVATE" not in body


def test_the_login_sends_a_signed_authn_request(client, saml_idp):
    connection = saml_connection(acme(), saml_idp)
    location = login(client, connection)
    query = parse_qs(urlsplit(location).query)
    assert location.startswith("https://idp.acme.example/saml/sso?")
    assert query["SigAlg"] == ["http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"] and query["Signature"]
    flow = Flow.objects.get()
    assert flow.request_id.startswith("_") and query["RelayState"][0].startswith(flow.id.hex)


def test_a_new_person_is_provisioned_just_in_time(client, saml_idp):
    org = acme()
    connection = saml_connection(org, saml_idp, jit=True)
    response = round_trip(client, saml_idp, connection, groups=("eng",))
    assert response.status_code == 302
    membership = Membership.objects.get(org=org, user__email="carol@acme.example")
    assert membership.source == "sso"
    assert client.session["_auth_user_id"] == str(membership.user_id)
    identity = Identity.objects.get()
    assert identity.issuer == "https://idp.acme.example/saml/metadata"
    assert identity.subject == "carol@acme.example"
    assert SeenAssertion.objects.count() == 1
    assert latest_event(org, "sso.login_accepted").data["protocol"] == "saml"


def test_an_authn_context_the_connection_accepts_satisfies_the_mfa_mandate(client, saml_idp):
    org = acme()
    SecurityPolicy.objects.create(org=org, mfa_required=True)
    connection = saml_connection(org, saml_idp, jit=True, accepted_mfa=[MFA_CONTEXT])
    round_trip(client, saml_idp, connection, context=MFA_CONTEXT)
    assert client.get(f"/orgs/{org.slug}/members/").status_code == 200
    other = Client()
    round_trip(other, saml_idp, connection, name_id="dan@acme.example")  # password only
    assert latest_event(org, "sso.mfa_step_up").data["reason"] == "enrolment"
    assert other.get(f"/orgs/{org.slug}/members/").status_code == 302


def test_the_same_response_posted_twice_is_refused_the_second_time(client, saml_idp):
    """Security case 36: the second POST, from a fresh browser, is a replay."""
    org = acme()
    connection = saml_connection(org, saml_idp, jit=True)
    location = login(client, connection)
    answer = saml_idp.respond(connection, location)
    assert acs(Client(), connection, *answer).status_code == 303
    again = acs(Client(), connection, *answer)
    assert again.status_code == 400
    assert latest_event(org, "sso.login_refused").data["reason"] in {"saml_unknown_request", "saml_replayed"}


def _metadata_server(body: str):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/samlmetadata+xml")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_connection_imports_the_idps_metadata_url_through_the_outbound_guard(saml_idp, settings):
    from tests.trust.conftest import admin_client

    org = acme()
    server = _metadata_server(saml_idp.metadata())
    url = f"http://127.0.0.1:{server.server_address[1]}/metadata"
    body = {"name": "Acme SAML", "slug": "acme-saml", "protocol": "saml", "idp_metadata_url": url,
            "accepted_authn_contexts": [MFA_CONTEXT]}
    try:
        settings.IAM_OUTBOUND_ALLOW_NETWORKS = []
        refused = admin_client(org).post(f"/api/v1/orgs/{org.slug}/sso-connections", body, format="json")
        assert refused.status_code == 400 and refused.json()["error"] == "provider_unreachable"
        settings.IAM_OUTBOUND_ALLOW_NETWORKS = ["127.0.0.0/8"]
        created = admin_client(org).post(f"/api/v1/orgs/{org.slug}/sso-connections", body, format="json")
    finally:
        server.shutdown()
        server.server_close()
    assert created.status_code == 201, created.content
    data = created.json()
    assert data["idp_entity_id"] == "https://idp.acme.example/saml/metadata"
    assert data["accepted_authn_contexts"] == [MFA_CONTEXT] and data["idp_metadata_url"] == url
    assert data["sp_acs_url"].endswith(f"/sso/{org.slug}/acme-saml/saml/acs/")
    assert len(data["idp_certificates"]) == 1 and "sp_private_key" not in str(data)


def test_during_rotation_either_stored_certificate_verifies(client, saml_idp, tmp_path):
    import json

    from sso.connections import certificates_store
    from tests.sso.saml_idp import SamlIdp

    org = acme()
    connection = saml_connection(org, saml_idp, jit=True)
    upcoming = SamlIdp(str(tmp_path))  # the IdP's next key, published before it signs
    certificates_store(connection, [upcoming.certificate, saml_idp.certificate])
    connection.save()
    assert len(json.loads(connection.unsealed("idp_certificates"))) == 2
    assert round_trip(client, saml_idp, connection).status_code == 302  # still the current key
    other = Client()
    assert round_trip(other, upcoming, connection, name_id="dan@acme.example").status_code == 302
    assert other.session["_auth_user_id"]


def test_no_name_id_or_assertion_reaches_the_logs(client, saml_idp, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    org = acme()
    connection = saml_connection(org, saml_idp, jit=True)
    assert round_trip(client, saml_idp, connection, name_id="secret.person@acme.example").status_code == 302
    assert "secret.person" not in caplog.text


def test_re_authentication_needs_a_fresh_authn_instant(client, saml_idp):
    import time

    from accounts.policy import AUTH_TIME_KEY

    org = acme()
    connection = saml_connection(org, saml_idp, jit=True)
    assert round_trip(client, saml_idp, connection).status_code == 302
    session = client.session
    session[AUTH_TIME_KEY] = time.time() - 3600
    session.save()
    start = client.get(f"/sso/reauth/{connection.pk}/")
    assert start.status_code == 302 and "ForceAuthn" in signin_request(start["Location"])
    stale = acs(Client(), connection, *saml_idp.respond(connection, start["Location"],
                                                         authn_instant=int(time.time()) - 600))
    assert client.get(stale["Location"]).status_code == 403
    assert latest_event(org, "sso.login_refused").data["reason"] == "reauth_not_fresh"
    assert client.session[AUTH_TIME_KEY] < time.time() - 3000
    start = client.get(f"/sso/reauth/{connection.pk}/")
    fresh = acs(Client(), connection, *saml_idp.respond(connection, start["Location"]))
    assert client.get(fresh["Location"]).status_code == 302
    assert client.session[AUTH_TIME_KEY] > time.time() - 60


def signin_request(location: str) -> str:
    import base64
    import zlib

    query = parse_qs(urlsplit(location).query)
    return zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), -15).decode()
