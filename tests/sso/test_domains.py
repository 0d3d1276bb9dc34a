"""An org proves it owns an email domain with a DNS TXT record, checked with a real resolver
against a DNS server of the tests' own on loopback (contract: `domains`, `domains/{id}/verify`)."""

import pytest

from core.permissions import Perm
from sso.models import Domain
from tests.dns_server import LocalDns
from tests.factories import OrgFactory
from tests.helpers import latest_event
from tests.trust.conftest import admin_client

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def nameserver():
    server = LocalDns()
    yield server
    server.close()


@pytest.fixture
def dns(nameserver, settings):
    settings.IAM_DNS_NAMESERVERS = [nameserver.nameserver]
    nameserver.txt = {}
    return nameserver


def _org_api():
    org = OrgFactory()
    return org, admin_client(org)


def _claim(api, org, domain="Example.COM"):
    response = api.post(f"/api/v1/orgs/{org.slug}/domains", {"domain": domain}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_a_domain_is_claimed_with_its_challenge_and_verified_once_the_txt_record_holds_it(dns):
    org, api = _org_api()
    body = _claim(api, org)
    assert body["domain"] == "example.com" and body["verified"] is False
    assert body["txt_name"] == "_agent-iam-challenge.example.com" and body["txt_value"].startswith(
        "agent-iam-verification=")
    assert latest_event(org, "sso.domain_added").data == {"domain": "example.com"}
    verify = f"/api/v1/orgs/{org.slug}/domains/{body['id']}/verify"
    missing = api.post(verify, {}, format="json")
    assert missing.status_code == 409 and missing.json()["error"] == "domain_not_verified"
    assert latest_event(org, "sso.domain_verify_failed").data["reason"] == "record_missing"
    dns.txt = {body["txt_name"]: ["v=spf1 -all", "agent-iam-verification=wrong"]}
    assert api.post(verify, {}, format="json").status_code == 409
    assert not Domain.objects.get().verified
    dns.txt = {body["txt_name"]: ["v=spf1 -all", body["txt_value"]]}
    verified = api.post(verify, {}, format="json")
    assert verified.status_code == 200 and verified.json()["verified"] is True
    assert latest_event(org, "sso.domain_verified").data == {"domain": "example.com"}


def test_only_one_org_holds_a_domain_verified(dns):
    first, first_api = _org_api()
    second, second_api = _org_api()
    mine, theirs = _claim(first_api, first), _claim(second_api, second)
    dns.txt = {mine["txt_name"]: [mine["txt_value"], theirs["txt_value"]]}
    assert first_api.post(f"/api/v1/orgs/{first.slug}/domains/{mine['id']}/verify").status_code == 200
    taken = second_api.post(f"/api/v1/orgs/{second.slug}/domains/{theirs['id']}/verify")
    assert taken.status_code == 409 and taken.json()["error"] == "domain_claimed"
    assert latest_event(second, "sso.domain_verify_failed").data["reason"] == "claimed_elsewhere"
    assert not Domain.objects.get(pk=theirs["id"]).verified
    assert second_api.get(f"/api/v1/orgs/{second.slug}/domains/{mine['id']}").status_code == 404


@pytest.mark.parametrize("bad", ["localhost", "exa mple.com", "-bad.com", "1.2.3.4", "", "a" * 64 + ".com",
                                 "com", "example..com", 42])
def test_a_malformed_domain_is_refused_and_nothing_is_written(dns, bad):
    org, api = _org_api()
    response = api.post(f"/api/v1/orgs/{org.slug}/domains", {"domain": bad}, format="json")
    assert response.status_code == 400 and not Domain.objects.exists()


def test_a_dns_failure_is_a_503_and_changes_nothing(settings, monkeypatch):
    import core.resolver

    org, api = _org_api()
    body = _claim(api, org)
    settings.IAM_DNS_NAMESERVERS = ["127.0.0.1:9"]  # nothing answers there
    monkeypatch.setattr(core.resolver, "LIFETIME_SECONDS", 0.5)
    response = api.post(f"/api/v1/orgs/{org.slug}/domains/{body['id']}/verify")
    assert response.status_code == 503 and response.json()["error"] == "dns_unavailable"
    assert not Domain.objects.get().verified


def test_domains_need_sso_write_and_removal_is_audited(dns):
    from rest_framework.test import APIClient

    from tests.factories import api_key_for

    org, api = _org_api()
    body = _claim(api, org)
    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(org, [Perm.SSO_READ])[1]}")
    assert reader.get(f"/api/v1/orgs/{org.slug}/domains").status_code == 200
    assert reader.post(f"/api/v1/orgs/{org.slug}/domains", {"domain": "other.com"}).status_code == 403
    assert reader.post(f"/api/v1/orgs/{org.slug}/domains/{body['id']}/verify").status_code == 403
    assert api.delete(f"/api/v1/orgs/{org.slug}/domains/{body['id']}").status_code == 204
    assert not Domain.objects.exists() and latest_event(org, "sso.domain_removed").data["verified"] is False
