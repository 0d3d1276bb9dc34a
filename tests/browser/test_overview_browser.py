"""The org overview in Chromium, at the scale the console must hold: 1,000 members, 200 agents and
10,000 audit entries. Signing in lands on it; its items lead to the pages that deal with them; its
charts draw; nothing overflows at 1,280 px."""

from datetime import timedelta

import pytest
from django.utils import timezone

from agents.models import Agent
from audit.actors import Actor
from audit.events import AuditEvent, Outcome
from audit.services import audit_record
from tests.browser.test_browser import log_in
from tests.factories import MemberFactory, UserFactory
from tests.scale import big_org

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FITS = """() => document.documentElement.scrollWidth <= window.innerWidth &&
  [...document.querySelectorAll('.table-wrap, .charts, ul.attention')]
    .every(e => e.scrollWidth <= e.clientWidth)"""


def test_the_overview_of_a_large_org_shows_what_needs_attention_and_draws_its_charts(
        page, live_server, owner, tmp_path):
    org = owner.org
    big_org(org, owner=owner, members=1000, agents=200, audit_entries=10_000,
            start=timezone.now() - timedelta(days=6))
    Agent.objects.for_org(org).update(created_at=timezone.now() - timedelta(days=120))  # none used since
    for n in range(5):
        MemberFactory(org=org, status="invited", user=UserFactory(email=f"invitee{n}@acme.example"))
    actor = Actor.for_user(owner.user)
    audit_record(org=org, actor=actor, event=AuditEvent.TOKEN_ISSUED, data={"jti": "j1"})
    audit_record(org=org, actor=actor, event=AuditEvent.TOKEN_DENIED, outcome=Outcome.DENIED,
                 data={"reason": "low_trust", "client_id": "agt_demo"})
    page.set_viewport_size({"width": 1280, "height": 900})

    log_in(page, live_server.url, owner.user.email)
    expect(page).to_have_url(f"{live_server.url}/orgs/{org.slug}/")
    expect(page.get_by_role("heading", name="Acme Robotics", level=1)).to_be_visible()
    attention = page.get_by_test_id("attention")
    expect(attention.get_by_role("link", name="200 agents were not used for 90 days")).to_be_visible()
    expect(attention.get_by_role("link", name="5 invitations are waiting to be accepted")).to_be_visible()

    tokens = page.locator('[data-chart="tokens.daily"]')
    expect(tokens.locator("svg rect")).not_to_have_count(0)
    expect(tokens).to_contain_text("1 tokens granted and 1 refused in 14 days.")
    signins = page.locator('[data-chart="signins.method"]')
    expect(signins).to_contain_text("sign-ins in 14 days: ")
    expect(signins.locator("svg rect")).not_to_have_count(0)
    tokens.get_by_text("Figures").click()  # the same figures as a table
    expect(tokens.get_by_role("table")).to_be_visible()

    events = page.get_by_role("region", name="Recent security events")
    expect(events.get_by_role("row")).to_have_count(11)  # the header and the latest ten
    expect(events.get_by_role("row").nth(1)).to_contain_text("token.denied")

    assert page.evaluate(FITS), "the overview overflows at 1,280 px"
    page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)

    attention.get_by_role("link", name="5 invitations are waiting to be accepted").click()
    expect(page).to_have_url(f"{live_server.url}/orgs/{org.slug}/members/?status=invited")
    expect(page.get_by_role("heading", name="Members", level=1)).to_be_visible()
