"""Confirmations a person reaches in Chromium that the other browser tests do not: deleting a trust
gate and deleting a SCIM group mapping each show what still applies or is taken back, change nothing
until the question's own button is pressed, and then do it."""

import pytest

from scim.models import GroupMapping
from tests.browser.test_browser import log_in, nav
from tests.factories import GroupMappingFactory, ScimGroupFactory
from trust.models import TrustGate

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_deleting_a_gate_asks_first_then_deletes(page, live_server, owner):
    org = owner.org
    TrustGate.objects.create(org=org, name="deploys", operation="deploy", min_score=70, below="escalate")
    log_in(page, live_server.url, owner.user.email)
    nav(page, "Trust")
    page.get_by_role("button", name="Delete gate deploys").click()
    expect(page.get_by_role("heading", name="Delete the gate deploys?")).to_be_visible()
    expect(page.get_by_test_id("consequences")).to_contain_text("no longer need a trust score of 70")
    assert TrustGate.objects.for_org(org).exists()  # the question changed nothing
    page.get_by_role("button", name="Delete gate").click()
    expect(page.get_by_role("status").first).to_contain_text("Deleted the gate deploys.")
    assert not TrustGate.objects.for_org(org).exists()


def test_deleting_a_group_mapping_asks_first_then_deletes(page, live_server, owner):
    org = owner.org
    group = ScimGroupFactory(org=org, display_name="Engineers")
    GroupMappingFactory(group=group, builtin_role="viewer")
    log_in(page, live_server.url, owner.user.email)
    nav(page, "Provisioning")
    page.goto(f"{live_server.url}/orgs/{org.slug}/provisioning/mappings/")
    page.get_by_role("link", name="Delete this mapping of Engineers").click()
    expect(page.get_by_role("heading", name="Delete the mapping of “Engineers”?")).to_be_visible()
    assert GroupMapping.objects.for_org(org).exists()
    page.get_by_role("button", name="Delete mapping").click()
    expect(page.get_by_role("status").first).to_contain_text("Deleted a mapping of Engineers")
    assert not GroupMapping.objects.for_org(org).exists()
