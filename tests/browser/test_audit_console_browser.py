"""The audit log in Chromium at 10,000 entries by 40 people: a filter finds one person's entries, the
pager pages forward and back, an entry's page shows its before/after, the export link downloads a
file that starts with its header, and the page fits a 1,280 px window (a screenshot is kept)."""

import re

import pytest

from audit.exports import LOG_COLUMNS
from tests.browser.test_agents_console_browser import fits
from tests.browser.test_browser import log_in, nav
from tests.scale import audit_bulk, members_bulk

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def people(owner):
    people = members_bulk(owner.org, 40)
    audit_bulk(owner.org, 10_000, actor=owner, people=people)
    return people


def test_filter_page_open_and_export_the_audit_log_at_10000_entries(page, live_server, owner, people,
                                                                   tmp_path):
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, live_server.url, owner.user.email)
    nav(page, "Audit log")
    rows = page.locator("table.audit tbody tr")
    expect(rows).to_have_count(50)
    newest = int(rows.first.locator("td").first.inner_text())
    assert newest > 10_000  # and the sign-in's own entries on top
    fits(page, tmp_path, "audit-log")

    # The pager, forward and back.
    page.get_by_role("link", name="Older entries →").click()
    expect(rows.first.locator("td").first).to_have_text(str(newest - 50))
    page.get_by_role("link", name="Older entries →").click()
    expect(rows.first.locator("td").first).to_have_text(str(newest - 100))
    page.get_by_role("link", name="← Newer entries").click()
    expect(rows.first.locator("td").first).to_have_text(str(newest - 50))
    page.get_by_role("link", name="← Newer entries").click()
    expect(rows.first.locator("td").first).to_have_text(str(newest))

    # One person's member changes, by typing their address (the actor box is a searching picker).
    person = people[7].user.email
    page.get_by_label("Actor").fill(person)
    page.get_by_label("Event family").select_option("member")
    page.get_by_role("button", name="Filter").click()
    expect(rows.first).to_contain_text("member.updated")
    for text in rows.all_inner_texts():
        assert person in text and "member.updated" in text
    fits(page, tmp_path, "audit-log-filtered")
    page.get_by_role("link", name="Older entries →").click()
    expect(rows.first).to_contain_text(person)
    page.get_by_role("link", name="← Newer entries").click()
    assert "family=member" in page.url

    # The export carries the filters, and its file starts with the header.
    with page.expect_download() as caught:
        page.get_by_role("link", name="Export CSV").click()
    path = caught.value.path()
    with open(path, encoding="utf-8") as downloaded:
        lines = downloaded.read().splitlines()
    assert lines[0] == ",".join(LOG_COLUMNS)
    # audit_bulk: entry n is by people[n % 40], and a member change when n % 3 == 2.
    theirs = sum(1 for n in range(10_000) if n % 40 == 7 and n % 3 == 2)
    assert len(lines) == 1 + theirs and all(person in line for line in lines[1:])

    # An entry's page: who, about whom, and what changed.
    first = rows.first.get_by_role("link", name=re.compile(r"^Entry \d+$"))
    first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("member.updated")
    changes = page.get_by_role("table", name="What changed")
    expect(changes.locator("tbody tr")).to_have_text([re.compile(r"role\s+member\s+admin")])
    fits(page, tmp_path, "audit-entry")
