"""The login page's single sign-on in Chromium, against the real OpenID Provider on loopback: an
email alone at a verified domain goes to the org's IdP and comes back signed in; a member of an org
that requires SSO who types a password is shown the way to the IdP instead; and a person signed in
through SSO re-authenticates at the IdP before a change."""

import re
from urllib.parse import urlparse

import pytest
from django.utils import timezone

from accounts.models import Membership, SecurityPolicy
from sso.models import Domain, Identity
from tests.factories import MemberFactory, OrgFactory, UserFactory
from tests.helpers import latest_event
from tests.sso import oidc_peer as peer
from tests.sso.oidc_peer import oidc_connection

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
oidc_peer_process, oidc_peer = peer.oidc_peer_process, peer.oidc_peer  # the fixtures
PASSWORD = "correct horse battery staple"


@pytest.fixture
def base(live_server, settings):
    settings.IAM_CANONICAL_ORIGIN = live_server.url
    settings.CSRF_TRUSTED_ORIGINS = [live_server.url]
    assert urlparse(live_server.url).hostname == "localhost"
    return live_server.url


@pytest.fixture
def connection(base, oidc_peer):
    org = OrgFactory(name="Acme Robotics")
    Domain.objects.create(org=org, domain="acme.example", verified_at=timezone.now())
    return oidc_connection(org, oidc_peer, jit=True)


def _at_the_provider(page, account: str):
    expect(page.get_by_role("heading", name="Test OpenID Provider")).to_be_visible()
    page.get_by_label("Account").select_option(account)
    page.get_by_role("button", name="Sign in").click()


def test_an_email_alone_signs_in_through_the_orgs_idp(page, base, connection, oidc_peer):
    org = connection.org
    page.goto(f"{base}/login/?next=/orgs/{org.slug}/members/")
    page.get_by_label("Email").fill("carol@acme.example")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile("^" + re.escape(oidc_peer.issuer) + "/interaction/"))
    _at_the_provider(page, "carol-0003")
    expect(page).to_have_url(f"{base}/orgs/{org.slug}/members/")
    membership = Membership.objects.get(org=org, user__email="carol@acme.example")
    assert membership.source == "sso"


def test_a_password_at_an_org_that_requires_sso_shows_the_way_to_the_idp(page, base, connection, oidc_peer):
    org = connection.org
    member = MemberFactory(org=org, user=UserFactory(email="carol@acme.example", password=PASSWORD))
    Identity.objects.create(org=org, connection=connection, issuer=oidc_peer.issuer, subject="carol-0003",
                            user=member.user)
    SecurityPolicy.objects.update_or_create(org=org, defaults={"sso_required": True})
    page.goto(f"{base}/login/")
    page.get_by_label("Email").fill("carol@acme.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("signs you in through its identity provider")).to_be_visible()
    assert latest_event(org, "sso.password_refused").data == {"reason": "sso_required"}
    page.get_by_role("link", name="Continue with single sign-on").click()
    _at_the_provider(page, "carol-0003")
    expect(page).to_have_url(re.compile(rf"{re.escape(base)}/orgs/{org.slug}/"))
    page.goto(f"{base}/orgs/{org.slug}/members/")
    expect(page).to_have_url(f"{base}/orgs/{org.slug}/members/")


def test_a_person_without_a_password_re_authenticates_at_the_idp(page, base, connection, oidc_peer):
    import time

    from accounts.policy import AUTH_TIME_KEY
    from accounts.sessions import SessionStore

    org = connection.org
    page.goto(f"{base}/sso/{org.slug}/{connection.slug}/oidc/login/?next=/orgs/{org.slug}/members/")
    _at_the_provider(page, "carol-0003")
    expect(page).to_have_url(f"{base}/orgs/{org.slug}/members/")
    key = next(c["value"] for c in page.context.cookies() if c["name"] == "sessionid")
    session = SessionStore(session_key=key)
    session[AUTH_TIME_KEY] = time.time() - 3600  # a change now needs re-authentication
    session.save()
    page.goto(f"{base}/reauth/?next=/orgs/{org.slug}/members/")
    page.get_by_role("link", name="confirm with single sign-on").click()
    _at_the_provider(page, "carol-0003")  # prompt=login: the provider asks again
    expect(page).to_have_url(f"{base}/orgs/{org.slug}/members/")
    key = next(c["value"] for c in page.context.cookies() if c["name"] == "sessionid")
    assert SessionStore(session_key=key)[AUTH_TIME_KEY] > time.time() - 60
    assert latest_event(org, "reauth.success").data == {"method": "sso"}
