"""The device authorization grant (RFC 8628) with a person in Chromium and an agent on the wire: the
agent asks and polls the live server over HTTP, the person follows the link, signs in, reads the
consent page and answers it, then ends the delegation on "Agents acting for me". Tokens are
verified with joserfc against the org's published keys, not with the server's own code."""

import re
from urllib.parse import urlparse

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from agents import keys
from agents.models import Delegation, DeviceAuthorization, DeviceStatus
from agents.policies import agent_create, connection_create
from rbac.guard import access_for_user
from tests.factories import PASSWORD, MemberFactory, UserFactory

# Skips (or, under IAM_REQUIRE_BROWSER=1, conftest fails the run) when Playwright is absent.
expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AUDIENCE = "https://tickets.acme.test/api"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture(autouse=True)
def _fresh_key_caches():
    # Parsed signing keys are cached per process and the database is emptied between tests.
    keys.caches_clear()
    yield
    keys.caches_clear()


@pytest.fixture
def base(live_server, settings):
    # verification_uri is built from the configured origin, never from the request: point it here.
    settings.IAM_CANONICAL_ORIGIN = live_server.url
    settings.CSRF_TRUSTED_ORIGINS = [live_server.url]
    assert urlparse(live_server.url).hostname == "localhost"
    return live_server.url


class Wire:
    """The agent and its downstream service, speaking to the live server over real HTTP."""

    def __init__(self, base, owner):
        access = access_for_user(user=owner.user, org_slug=owner.org.slug)
        self.connection, self.connection_secret = connection_create(
            access=access, name="Ticket service", audience=AUDIENCE, scopes=["tickets:read", "tickets:write"])
        self.agent, self.agent_secret = agent_create(
            access=access, name="Triage bot", scopes=["tickets:read"], audiences=[AUDIENCE])
        self.oauth = f"{base}/oauth/{owner.org.slug}"

    def _as_agent(self, endpoint, data):
        return requests.post(f"{self.oauth}/{endpoint}", data=data, timeout=10,
                             auth=(self.agent.client_id, self.agent_secret))

    def start(self, scope="tickets:read"):
        response = self._as_agent("device_authorization", {"scope": scope, "resource": AUDIENCE})
        assert response.status_code == 200, response.text
        return response.json()

    def poll(self, device_code):
        return self._as_agent("token", {"grant_type": DEVICE_GRANT, "device_code": device_code})

    def refresh(self, refresh_token):
        return self._as_agent("token", {"grant_type": "refresh_token", "refresh_token": refresh_token})

    def introspect(self, token):
        response = requests.post(f"{self.oauth}/introspect", data={"token": token}, timeout=10,
                                 auth=(self.connection.client_id, self.connection_secret))
        assert response.status_code == 200, response.text
        return response.json()

    def claims(self, token):
        jwks = requests.get(f"{self.oauth}/jwks.json", timeout=10).json()
        decoded = jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["ES256", "EdDSA", "RS256"])
        jwt.JWTClaimsRegistry(exp={"essential": True}, iat={"essential": True}).validate(decoded.claims)
        assert decoded.header["typ"] == "at+jwt"
        return decoded.claims


@pytest.fixture
def wire(base, owner):
    return Wire(base, owner)


@pytest.fixture
def person(owner):
    """A member of the owner's org who has never signed in on this browser."""
    user = UserFactory(email="grace@example.com", display_name="Grace Hopper", password=PASSWORD)
    return MemberFactory(org=owner.org, role="member", user=user).user


def waited_the_interval():
    # The agent sleeps `interval` seconds between polls; the tests move the clock of the row instead.
    DeviceAuthorization.objects.unscoped().update(last_polled_at=None)


def rfc8628_error(response):
    assert response.status_code == 400, response.text
    return response.json()["error"]


def sign_in(page, email):
    expect(page).to_have_url(re.compile(r"/login/\?next="))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def open_link_and_continue(page, started, email):
    """Follow verification_uri_complete as a visitor, sign in, and go on to the consent page."""
    page.goto(started["verification_uri_complete"])
    sign_in(page, email)
    expect(page).to_have_url(started["verification_uri_complete"])
    expect(page.get_by_role("heading", name="Connect an agent")).to_be_visible()
    expect(page.get_by_label("Code shown by the agent")).to_have_value(started["user_code"])
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Let Triage bot act for you?")).to_be_visible()


def approve_in_browser(page, started, email, lifetime="8 hours"):
    open_link_and_continue(page, started, email)
    page.get_by_label("For how long").select_option(label=lifetime)
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("heading", name="Triage bot can now act for you")).to_be_visible()


def test_a_visitor_signs_in_approves_and_the_agent_gets_a_token_for_them(page, base, wire, person):
    started = wire.start()
    assert started["verification_uri"] == f"{base}/device/"
    assert started["verification_uri_complete"] == f"{base}/device/?user_code={started['user_code']}"
    assert rfc8628_error(wire.poll(started["device_code"])) == "authorization_pending"

    open_link_and_continue(page, started, person.email)
    facts = page.locator("dl.facts")
    expect(facts).to_contain_text("Triage bot")
    expect(facts).to_contain_text(wire.agent.client_id)
    expect(facts).to_contain_text("Acme Robotics")
    expect(facts).to_contain_text("Ticket service")
    expect(facts.locator("dt", has_text="It asks for").locator("+ dd")).to_have_text("tickets:read")
    expect(facts.locator("dt", has_text="You can give it").locator("+ dd")).to_have_text("tickets:read")
    waited_the_interval()  # reading the consent page is not consent
    assert rfc8628_error(wire.poll(started["device_code"])) == "authorization_pending"

    page.get_by_label("For how long").select_option(label="8 hours")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("heading", name="Triage bot can now act for you")).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text("Acme Robotics")

    waited_the_interval()
    response = wire.poll(started["device_code"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer" and body["scope"] == "tickets:read"
    claims = wire.claims(body["access_token"])
    assert claims["sub"] == f"user:{person.pk}"
    assert claims["act"] == {"sub": f"agent:{wire.agent.pk}"}
    assert claims["aud"] == AUDIENCE and claims["client_id"] == wire.agent.client_id
    delegation = Delegation.objects.unscoped().get()
    assert claims["dlg"] == str(delegation.pk) and delegation.user == person
    assert (delegation.expires_at - delegation.created_at).total_seconds() == pytest.approx(8 * 3600, abs=10)


def test_a_person_denies_and_the_agent_is_told_access_denied(page, wire, person):
    started = wire.start()
    open_link_and_continue(page, started, person.email)
    page.get_by_role("button", name="Deny").click()
    expect(page.get_by_role("heading", name="Denied")).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text("Triage bot gets nothing")
    assert rfc8628_error(wire.poll(started["device_code"])) == "access_denied"
    assert not Delegation.objects.unscoped().exists()


def test_revoking_on_agents_acting_for_me_ends_the_tokens(page, wire, person):
    started = wire.start()
    approve_in_browser(page, started, person.email)
    waited_the_interval()
    tokens = wire.poll(started["device_code"]).json()
    assert wire.introspect(tokens["access_token"])["active"] is True

    page.get_by_role("main").get_by_role("link", name="Agents acting for me").click()  # the done page's
    expect(page.get_by_role("heading", name="Agents acting for me")).to_be_visible()
    row = page.get_by_role("row").filter(has_text="Triage bot")
    expect(row).to_contain_text("Acme Robotics")
    expect(row).to_contain_text(AUDIENCE)
    expect(row).to_contain_text("tickets:read")
    row.get_by_role("button", name="Revoke Triage bot in Acme Robotics").click()
    expect(page.get_by_test_id("consequences")).to_contain_text("stops working on its next use")
    page.get_by_role("button", name="Revoke delegation").click()
    expect(page.get_by_role("status")).to_contain_text("Revoked 1 delegation.")
    expect(page.get_by_role("table")).to_contain_text("No agent acts for you.")
    expect(page.get_by_role("main")).to_contain_text("Triage bot in Acme Robotics: revoked")

    assert wire.introspect(tokens["access_token"]) == {"active": False}
    assert rfc8628_error(wire.refresh(tokens["refresh_token"])) == "invalid_grant"


def test_a_wrong_code_shows_the_error_and_approves_nothing(page, base, wire, person):
    started = wire.start()
    page.goto(base + "/device/")
    sign_in(page, person.email)
    expect(page).to_have_url(base + "/device/")
    wrong = "BCDF-GHJK" if started["user_code"] != "BCDF-GHJK" else "KJHG-FDCB"
    page.get_by_label("Code shown by the agent").fill(wrong)
    page.get_by_role("button", name="Continue").click()
    message = "That code is not valid. Check it, or ask the agent for a new one."
    expect(page.get_by_role("alert")).to_have_text(message)
    field = page.get_by_label("Code shown by the agent")  # a screen reader hears the error on the field
    expect(field).to_have_value(wrong)
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_accessible_description(re.compile(re.escape(message)))
    expect(page.get_by_role("heading", name="Connect an agent")).to_be_visible()
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    assert DeviceAuthorization.objects.unscoped().get().status == DeviceStatus.PENDING
    assert not Delegation.objects.unscoped().exists()
    assert rfc8628_error(wire.poll(started["device_code"])) == "authorization_pending"
