"""SAML single sign-on in Chromium: our login redirects to a pysaml2 IdP on loopback (127.0.0.1,
another site than the live server on localhost), whose page POSTs the signed response cross-site
to our ACS; the same-site finish step then signs the person in (provisioned just in time)."""

import re
from urllib.parse import urlparse

import pytest
from django.utils import timezone

from accounts.models import Membership
from sso.models import Domain
from tests.factories import OrgFactory
from tests.helpers import latest_event
from tests.sso.saml_idp import SamlIdpServer, saml_connection, xmlsec_missing_reason

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def idp(tmp_path):
    reason = xmlsec_missing_reason()
    if reason:
        pytest.skip(reason)
    server = SamlIdpServer(str(tmp_path))
    yield server
    server.close()


@pytest.fixture
def base(live_server, settings):
    settings.IAM_CANONICAL_ORIGIN = live_server.url
    settings.CSRF_TRUSTED_ORIGINS = [live_server.url]
    assert urlparse(live_server.url).hostname == "localhost"
    return live_server.url


def test_sign_in_through_the_saml_idp(page, base, idp):
    org = OrgFactory(name="Acme Robotics")
    Domain.objects.create(org=org, domain="acme.example", verified_at=timezone.now())
    idp.connection = saml_connection(org, idp.idp, jit=True)
    page.goto(f"{base}/sso/{org.slug}/{idp.connection.slug}/saml/login/?next=/orgs/{org.slug}/members/")
    expect(page).to_have_url(f"{base}/orgs/{org.slug}/members/")
    expect(page.get_by_text("carol@acme.example").first).to_be_visible()
    assert Membership.objects.get(org=org, user__email="carol@acme.example").source == "sso"
    assert latest_event(org, "sso.login_accepted").data["protocol"] == "saml"


def test_the_email_alone_on_the_login_page_reaches_the_saml_idp(page, base, idp):
    org = OrgFactory(name="Acme Robotics")
    Domain.objects.create(org=org, domain="acme.example", verified_at=timezone.now())
    idp.connection = saml_connection(org, idp.idp, jit=True)
    idp.person = {"name_id": "dan@acme.example"}
    page.goto(f"{base}/login/")
    page.get_by_label("Email").fill("dan@acme.example")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(base)}/orgs/{org.slug}/"))
    assert Membership.objects.filter(org=org, user__email="dan@acme.example").exists()
