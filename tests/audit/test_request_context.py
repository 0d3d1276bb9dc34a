import pytest
from django.test import override_settings

from audit.models import AuditEntry
from core.permissions import Perm

pytestmark = pytest.mark.django_db


def _denied(org, key_client, **headers):
    # A refused call writes an audit entry carrying the request's context.
    key_client(Perm.ORG_READ).get(f"/api/v1/orgs/{org.slug}/members", **headers)
    return AuditEntry.objects.for_org(org).latest("seq")


def test_a_well_formed_request_id_is_kept_echoed_and_audited(org, key_client):
    response = key_client(Perm.MEMBER_READ).get(f"/api/v1/orgs/{org.slug}/members",
                                                HTTP_X_REQUEST_ID="req-12345678")
    assert response["X-Request-ID"] == "req-12345678"
    assert _denied(org, key_client, HTTP_X_REQUEST_ID="req-abcdefgh").correlation_id == "req-abcdefgh"


@pytest.mark.parametrize("bad", ["short", "has spaces in it", "x" * 200, "<script>alert(1)</script>"])
def test_a_malformed_request_id_is_replaced(org, key_client, bad):
    response = key_client(Perm.MEMBER_READ).get(f"/api/v1/orgs/{org.slug}/members", HTTP_X_REQUEST_ID=bad)
    assert response["X-Request-ID"] != bad
    assert len(response["X-Request-ID"]) == 32


def test_forwarded_for_from_an_untrusted_peer_is_ignored(org, key_client):
    entry = _denied(org, key_client, HTTP_X_FORWARDED_FOR="203.0.113.9", HTTP_USER_AGENT="probe/1")
    assert entry.ip == "127.0.0.1"
    assert entry.user_agent == "probe/1"


def test_forwarded_for_is_honoured_behind_a_trusted_proxy(org, key_client):
    import ipaddress

    with override_settings(IAM_TRUSTED_PROXIES=[ipaddress.ip_network("127.0.0.0/8")]):
        entry = _denied(org, key_client, HTTP_X_FORWARDED_FOR="198.51.100.7, 203.0.113.9, 127.0.0.2")
    # The nearest hop that is not one of our proxies is the client; earlier hops are client-supplied.
    assert entry.ip == "203.0.113.9"

