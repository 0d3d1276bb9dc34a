"""Every page the org navigation and the account navigation lead to, in Chromium at 1,280 px, with
rows in every list: nothing overflows the window and every table fits its container (a screenshot
of each is kept). The page families' own browser tests use each page at scale; this one makes sure
no page in the navigation is left out."""

import pytest

from tests.browser.test_browser import log_in
from tests.factories import ConnectionFactory
from tests.scale import agents_bulk, audit_bulk, members_bulk

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FITS = """() => document.documentElement.scrollWidth <= window.innerWidth &&
  [...document.querySelectorAll('.table-wrap')].every(e => e.scrollWidth <= e.clientWidth)"""


def _links(page, navigation: str) -> list[tuple[str, str]]:
    nav = page.get_by_role("navigation", name=navigation)
    return [(link.inner_text().strip(), link.get_attribute("href"))
            for link in nav.get_by_role("link").all()]


def test_every_page_in_the_navigation_fits_1280(page, live_server, owner, tmp_path):
    org = owner.org
    members_bulk(org, 60)
    agents_bulk(org, 30, owner=owner)
    audit_bulk(org, 200, actor=owner)
    ConnectionFactory(org=org)
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, live_server.url, owner.user.email)
    links = _links(page, "Organization")
    assert len(links) >= 15, links  # every family is there for an owner
    page.get_by_role("link", name="Security", exact=True).first.click()
    page.wait_for_load_state()
    links += _links(page, "Your account")
    checked = []
    for name, href in links:
        if href.startswith("http") and not href.startswith(live_server.url):
            continue
        response = page.goto(href if href.startswith("http") else live_server.url + href)
        assert response.status == 200, (name, href, response.status)
        if "/api/docs/" in href:
            continue  # Swagger UI's own layout (tests/browser/test_api_reference_browser.py)
        assert page.evaluate(FITS), f"{name} ({href}) overflows at 1,280 px"
        page.screenshot(path=tmp_path / f"{len(checked):02d}.png")
        checked.append(name)
    assert {"Overview", "Members", "Agents", "Audit log", "Sessions"} <= set(checked), checked
