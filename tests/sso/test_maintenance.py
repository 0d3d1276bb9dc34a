"""The daily SSO job (refresh what each IdP publishes, warn before an IdP signing certificate
expires) and the pruning of finished sign-ins and spent assertion ids."""

import json
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.utils import timezone

from sso.connections import certificate_info, connections_maintain, flows_prune
from sso.models import Connection, Flow, SeenAssertion
from tests.factories import OrgFactory
from tests.helpers import audit_events, latest_event
from tests.sso import oidc_peer as peer
from tests.sso.oidc_peer import oidc_connection
from tests.trust.conftest import admin_client

oidc_peer_process, oidc_peer = peer.oidc_peer_process, peer.oidc_peer  # the fixtures
pytestmark = pytest.mark.django_db


def _certificate(days: int) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp.example.com")])
    now = timezone.now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=days)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _saml(org, *days):
    connection = Connection(org=org, name="Entra", slug="entra", protocol="saml",
                            idp_entity_id="https://sts.example.com/", idp_sso_url="https://sts.example.com/sso")
    pems = [_certificate(d) for d in days]
    connection.seal("idp_certificates", json.dumps(pems))
    connection.idp_certificates_info = [certificate_info(p) for p in pems]
    connection.save()
    return connection


def test_a_certificate_near_its_end_is_warned_about_once_a_day():
    org = OrgFactory()
    connection = _saml(org, 10, 400)  # rotation: the new certificate is already there
    assert connections_maintain() == {"changed": 0, "warned": 1}
    entry = latest_event(org, "sso.certificate_expiring")
    soon = connection.idp_certificates_info[0]
    assert entry.data == {"connection": "entra", "fingerprint": soon["fingerprint_sha256"],
                          "not_after": soon["not_after"]}
    assert entry.actor_type == "system"
    assert connections_maintain()["warned"] == 0  # the same day
    assert connections_maintain(now=timezone.now() + timedelta(days=1))["warned"] == 1
    assert audit_events(org, "sso.certificate_expiring").count() == 2
    shown = admin_client(org).get(f"/api/v1/orgs/{org.slug}/sso-connections/{connection.pk}").json()
    assert [c["expiring"] for c in shown["idp_certificates"]] == [True, False]
    assert "warned_on" not in shown["idp_certificates"][0]


def test_certificates_far_from_their_end_raise_nothing():
    org = OrgFactory()
    _saml(org, 90)
    assert connections_maintain()["warned"] == 0
    assert not audit_events(org, "sso.certificate_expiring").exists()


def test_the_daily_job_refreshes_each_providers_metadata(oidc_peer):
    org = OrgFactory()
    connection = oidc_connection(org, oidc_peer)
    Connection.objects.filter(pk=connection.pk).update(jwks={"keys": []})
    assert connections_maintain()["changed"] == 1
    assert Connection.objects.get(pk=connection.pk).jwks["keys"]
    entry = latest_event(org, "sso.metadata_refreshed")
    assert entry.data == {"connection": connection.slug, "changed": True, "reason": "ok"}


def test_finished_sign_ins_and_spent_assertion_ids_are_pruned():
    org = OrgFactory()
    connection = _saml(org, 400)
    now = timezone.now()
    old = Flow.objects.create(org=org, connection=connection, state_hash="a", session_hash="s",
                              expires_at=now - timedelta(hours=2))
    live = Flow.objects.create(org=org, connection=connection, state_hash="b", session_hash="s",
                               expires_at=now + timedelta(minutes=5))
    for assertion_id, days in (("_old", -1), ("_live", 1)):
        SeenAssertion.objects.create(org=org, connection=connection, assertion_id=assertion_id,
                                     expires_at=now + timedelta(days=days))
    assert flows_prune() == 2
    assert list(Flow.objects.values_list("pk", flat=True)) == [live.pk] and old.pk != live.pk
    assert list(SeenAssertion.objects.values_list("assertion_id", flat=True)) == ["_live"]
