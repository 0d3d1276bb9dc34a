"""The owner's Single sign-on pages in Chromium: an OIDC connection created through the page against
the real OpenID Provider on loopback (tests/sso/oidc_peer.py), seen on the list, tested with a
round trip through the provider's own sign-in page that ends on the claims it sent (signing nobody
in), and a domain added and verified against a DNS server of the tests' own (tests/dns_server.py).
The provider lives on 127.0.0.1 and the live server on localhost: two sites, as in production."""

import re
from urllib.parse import urlparse

import pytest

from sso.models import Connection, Domain, Identity
from tests.dns_server import LocalDns
from tests.factories import PASSWORD
from tests.helpers import audit_events, latest_event
from tests.sso import oidc_peer as peer

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
oidc_peer_process, oidc_peer = peer.oidc_peer_process, peer.oidc_peer  # the fixtures


@pytest.fixture
def base(live_server, settings):
    # The redirect URI shown on the page and registered at the provider is built from this origin.
    settings.IAM_CANONICAL_ORIGIN = live_server.url
    settings.CSRF_TRUSTED_ORIGINS = [live_server.url]
    assert urlparse(live_server.url).hostname == "localhost"
    return live_server.url


@pytest.fixture
def dns(settings):
    server = LocalDns()
    settings.IAM_DNS_NAMESERVERS = [server.nameserver]
    yield server
    server.close()


def sign_in(page, base, owner):
    page.goto(base + "/login/")
    page.get_by_label("Email").fill(owner.user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_an_owner_connects_an_oidc_provider_tests_it_and_verifies_a_domain(page, base, owner, oidc_peer, dns):
    org = owner.org
    sign_in(page, base, owner)
    page.get_by_role("navigation", name="Organization").get_by_role("link", name="Single sign-on").click()
    expect(page.get_by_role("heading", name="Single sign-on")).to_be_visible()
    page.get_by_role("link", name="New OIDC connection").click()

    # What to enter at the provider, before the slug is chosen; then the client registered there.
    redirect_uri = f"{base}/sso/{org.slug}/okta/oidc/callback/"
    expect(page.get_by_test_id("redirect-uri")).to_have_text(f"{base}/sso/{org.slug}/<slug>/oidc/callback/")
    client_id, secret = oidc_peer.register(redirect_uri)
    page.get_by_label("Name", exact=True).fill("Okta")
    page.get_by_label("Slug").fill("okta")
    page.get_by_label("Issuer URL").fill(oidc_peer.issuer)
    page.get_by_label("Client ID").fill(client_id)
    page.get_by_label("Client secret").fill(secret)
    page.get_by_label("Accepted amr/acr values").fill("otp")
    page.get_by_role("button", name="Create connection").click()

    expect(page.get_by_role("heading", name="Okta", exact=True)).to_be_visible()
    expect(page.get_by_test_id("redirect-uri")).to_have_text(redirect_uri)
    expect(page.get_by_test_id("client-secret")).to_have_text("set")
    assert secret not in page.content()
    connection = Connection.objects.for_org(org).get()
    assert connection.issuer == oidc_peer.issuer and connection.accepted_mfa == ["otp"]

    page.get_by_role("link", name="← Connections").click()
    row = page.get_by_role("row").filter(has_text="Okta")
    expect(row).to_contain_text("OpenID Connect")
    expect(row).to_contain_text(f"{base}/sso/{org.slug}/okta/oidc/login/")
    row.get_by_role("link", name="Okta").click()

    # Test connection: the provider's own sign-in page, then back to the claims it sent.
    page.get_by_role("button", name="Test connection").click()
    expect(page).to_have_url(re.compile("^" + re.escape(oidc_peer.issuer) + "/interaction/"))
    expect(page.get_by_role("heading", name="Test OpenID Provider")).to_be_visible()
    page.get_by_label("Account").select_option("carol-0003")
    page.get_by_label("Authenticated with").select_option("pwd otp")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Test of Okta: the round trip worked")).to_be_visible()
    expect(page.get_by_role("cell", name="carol@acme.example", exact=True)).to_be_visible()
    assert latest_event(org, "sso.connection_tested").data["reason"] == "ok"
    assert not Identity.objects.exists() and not audit_events(org, "sso.login_accepted").exists()

    # A domain: add it, publish its TXT record, verify it.
    page.get_by_role("link", name="← Okta").click()
    page.get_by_role("navigation", name="Organization").get_by_role("link", name="Single sign-on").click()
    page.get_by_role("navigation", name="Single sign-on").get_by_role("link", name="Domains").click()
    page.get_by_role("textbox", name="Domain", exact=True).fill("acme.example")
    page.get_by_role("button", name="Add domain").click()
    # The page's message: the TXT record's copy buttons have status regions of their own.
    expect(page.locator(".messages[role=status]")).to_contain_text("Added acme.example")
    txt_name = page.get_by_test_id("txt-name").inner_text()
    txt_value = page.get_by_test_id("txt-value").inner_text()
    assert txt_name == "_agent-iam-challenge.acme.example"
    page.get_by_role("button", name="Verify now acme.example").click()
    expect(page.get_by_role("alert")).to_contain_text("No TXT record")
    assert not Domain.objects.for_org(org).get().verified
    dns.txt = {txt_name: [txt_value]}
    page.get_by_role("button", name="Verify now acme.example").click()
    expect(page.get_by_role("status")).to_contain_text("acme.example is verified.")
    expect(page.get_by_test_id("domain-acme.example")).to_contain_text("Verified")
    assert Domain.objects.for_org(org).get().verified
