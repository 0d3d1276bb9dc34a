"""Single sign-on with OpenID Connect in Chromium, against the real OpenID Provider on loopback
(tests/sso/oidc_peer.py): the person starts at our login URL, signs in on the provider's page,
comes back through the callback signed in (provisioned just in time), and is signed out when they
sign out at the provider (the provider's back-channel logout reaches the live server). The
provider lives on 127.0.0.1 and the live server on localhost: two sites, as in production, so the
callback is a cross-site navigation carrying our Lax session cookie."""

import re
from urllib.parse import urlparse

import pytest
from django.utils import timezone

from sso.models import Domain, Identity, IdpSession
from tests.factories import OrgFactory
from tests.helpers import latest_event
from tests.sso import oidc_peer as peer
from tests.sso.oidc_peer import oidc_connection

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
oidc_peer_process, oidc_peer = peer.oidc_peer_process, peer.oidc_peer  # the fixtures


@pytest.fixture
def base(live_server, settings):
    # The redirect and back-channel logout URIs are built from the configured origin.
    settings.IAM_CANONICAL_ORIGIN = live_server.url
    settings.CSRF_TRUSTED_ORIGINS = [live_server.url]
    assert urlparse(live_server.url).hostname == "localhost"
    return live_server.url


@pytest.fixture
def connection(base, oidc_peer):
    org = OrgFactory(name="Acme Robotics")
    Domain.objects.create(org=org, domain="acme.example", verified_at=timezone.now())
    return oidc_connection(org, oidc_peer, jit=True, accepted_mfa=["otp"])


def sign_in_at_the_provider(page, account: str, amr: str = ""):
    expect(page.get_by_role("heading", name="Test OpenID Provider")).to_be_visible()
    page.get_by_label("Account").select_option(account)
    if amr:
        page.get_by_label("Authenticated with").select_option(amr)
    page.get_by_role("button", name="Sign in").click()


def test_sign_in_with_the_provider_then_sign_out_there(page, base, connection, oidc_peer):
    org = connection.org
    members = f"{base}/orgs/{org.slug}/members/"
    page.goto(f"{base}/sso/{org.slug}/{connection.slug}/oidc/login/?next=/orgs/{org.slug}/members/")
    expect(page).to_have_url(re.compile("^" + re.escape(oidc_peer.issuer) + "/interaction/"))
    sign_in_at_the_provider(page, "carol-0003", "pwd otp")
    expect(page).to_have_url(members)
    expect(page.get_by_text("carol@acme.example").first).to_be_visible()
    identity = Identity.objects.get(connection=connection, subject="carol-0003")
    assert IdpSession.objects.filter(identity=identity).exclude(idp_session="").count() == 1
    assert latest_event(org, "sso.login_accepted").data["mfa"] is True

    # Signing out at the provider: it posts a logout token to our back-channel endpoint.
    page.goto(oidc_peer.issuer + "/session/end")
    page.get_by_role("button", name=re.compile("Yes", re.I)).click()
    expect(page.get_by_text(re.compile("signed out|sign-out|logged out", re.I)).first).to_be_visible()
    assert latest_event(org, "sso.backchannel_logout").data["sessions"] == 1
    page.goto(members)
    expect(page).to_have_url(re.compile(r"/login/"))


def test_cancelling_at_the_provider_shows_why_and_signs_nobody_in(page, base, connection, oidc_peer):
    org = connection.org
    page.goto(f"{base}/sso/{org.slug}/{connection.slug}/oidc/login/")
    expect(page.get_by_role("heading", name="Test OpenID Provider")).to_be_visible()
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("heading", name="Sign-in failed")).to_be_visible()
    expect(page.locator("[data-reason=idp_error]")).to_be_visible()
    assert not Identity.objects.exists()
    assert latest_event(org, "sso.login_refused").data["reason"] == "idp_error"
