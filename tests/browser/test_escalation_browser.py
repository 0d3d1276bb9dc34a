"""An escalation from dispatch to approval, with people in Chromium and the agent on the wire: an
owner adds a gate (below it: escalate) on the trust page, someone else's API key dispatches a run
through it, and an approver who neither dispatched it nor owns the agent opens the approvals
queue, confirms it's them when asked, approves, and the run then mints a run-bound token."""

import re
from importlib import import_module
from urllib.parse import urlparse

import pytest
import requests
from django.conf import settings

from accounts.policy import AUTH_TIME_KEY
from agents import keys
from agents.models import Run
from agents.policies import agent_create, connection_create
from core.permissions import Perm
from rbac.guard import access_for_user
from tests.factories import PASSWORD, MemberFactory, UserFactory, api_key_for
from trust.models import Approval, TrustGate

# Skips (or, under IAM_REQUIRE_BROWSER=1, conftest fails the run) when Playwright is absent.
expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AUDIENCE = "https://deploys.acme.test/api"


@pytest.fixture(autouse=True)
def _fresh_key_caches():
    keys.caches_clear()
    yield
    keys.caches_clear()


@pytest.fixture
def base(live_server, settings):
    settings.IAM_CANONICAL_ORIGIN = live_server.url
    settings.CSRF_TRUSTED_ORIGINS = [live_server.url]
    assert urlparse(live_server.url).hostname == "localhost"
    return live_server.url


def sign_in(page, email):
    expect(page).to_have_url(re.compile(r"/login/\?next="))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def age_the_sign_in(page):
    """The session's last proof of identity ages past the re-authentication window."""
    key = next(c["value"] for c in page.context.cookies() if c["name"] == settings.SESSION_COOKIE_NAME)
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key=key)
    session[AUTH_TIME_KEY] = session[AUTH_TIME_KEY] - 3600
    session.save()


def test_an_escalated_run_is_approved_in_the_browser_and_then_mints_a_token(page, chromium, base, owner):
    org = owner.org
    access = access_for_user(user=owner.user, org_slug=org.slug)
    connection_create(access=access, name="Deploy service", audience=AUDIENCE, scopes=["deploy:run"])
    agent, agent_secret = agent_create(
        access=access, name="Release bot", scopes=["deploy:run"], audiences=[AUDIENCE]
    )

    # The owner adds the gate on the trust page.
    page.goto(f"{base}/orgs/{org.slug}/trust/")
    sign_in(page, owner.user.email)
    expect(page.get_by_role("heading", name="Trust policy and gates")).to_be_visible()
    add = page.locator("form", has=page.get_by_role("button", name="Add gate"))
    add.get_by_label("Name").fill("Production deploys")
    add.get_by_label("Operation").fill("deploy")
    add.get_by_label("Minimum score").fill("99")
    add.get_by_label("Below it").select_option(label="Escalate to a person")
    add.get_by_role("button", name="Add gate").click()
    expect(page.get_by_role("status")).to_contain_text("Added the gate Production deploys")
    gate = TrustGate.objects.for_org(org).get()
    assert (gate.operation, gate.min_score, gate.below) == ("deploy", 99, "escalate")

    # Someone else's API key dispatches a run through it: it waits for a person.
    dispatcher = MemberFactory(org=org, role="member")
    key = api_key_for(org, [Perm.RUN_WRITE, Perm.RUN_READ], created_by=dispatcher.user)[1]
    dispatched = requests.post(
        f"{base}/api/v1/orgs/{org.slug}/runs",
        timeout=10,
        json={"agent": str(agent.pk), "operation": "deploy", "description": "v2.4"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert dispatched.status_code == 202, dispatched.text
    run_id = dispatched.json()["id"]

    def token():
        return requests.post(
            f"{base}/oauth/{org.slug}/token",
            timeout=10,
            auth=(agent.client_id, agent_secret),
            data={"grant_type": "client_credentials", "run": run_id},
        )

    pending = token()
    assert pending.status_code == 400 and pending.json()["error"] == "authorization_pending"

    # The approver, in a browser of their own, opens the queue and approves.
    approver = MemberFactory(
        org=org, role="owner", user=UserFactory(email="ada@acme.test", password=PASSWORD)
    ).user
    tab = chromium.new_context().new_page()
    tab.set_default_timeout(10_000)
    tab.goto(f"{base}/orgs/{org.slug}/approvals/")
    sign_in(tab, approver.email)
    expect(tab.get_by_role("heading", name="Approvals", exact=True)).to_be_visible()
    waiting = tab.get_by_role("table", name="Runs waiting for approval")
    expect(waiting).to_contain_text("Release bot")
    expect(waiting).to_contain_text("deploy")
    age_the_sign_in(tab)
    waiting.get_by_role("link", name=re.compile(r"^Release bot\W+deploy$")).click()
    expect(tab.get_by_role("heading", name=re.compile("Run of Release bot for deploy"))).to_be_visible()
    expect(tab.locator("dl.facts")).to_contain_text("Score at dispatch")
    expect(tab.get_by_role("region", name="Why it was escalated")).to_contain_text("Production deploys")
    tab.get_by_role("button", name="Approve").click()

    expect(tab.get_by_role("heading", name="Confirm it's you")).to_be_visible()
    assert Approval.objects.for_org(org).get().status == "pending"
    tab.get_by_label("Password").fill(PASSWORD)
    tab.get_by_role("button", name="Continue").click()
    expect(tab.get_by_role("heading", name="Confirmed")).to_be_visible()
    tab.get_by_role("button", name="Submit the form").click()
    expect(tab.get_by_role("status")).to_contain_text("Approved the run of Release bot")
    expect(tab.get_by_role("table", name="Runs waiting for approval")).to_contain_text("Nothing is waiting")

    approval = Approval.objects.for_org(org).get()
    assert approval.status == "approved" and approval.decided_by == approver
    assert Run.objects.for_org(org).get(pk=run_id).status == "running"
    minted = token()
    assert minted.status_code == 200, minted.text
    assert minted.json()["token_type"] == "Bearer"
