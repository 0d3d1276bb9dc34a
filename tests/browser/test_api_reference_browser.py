"""The API reference a person opens from the console: Swagger UI, served from our own static files,
draws the whole product's schema grouped by family, and an operation opens to its parameters."""

import pytest

# Skips (or, under IAM_REQUIRE_BROWSER=1, conftest fails the run) when Playwright is absent.
expect = pytest.importorskip("playwright.sync_api").expect

from tests.browser.test_browser import log_in  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FAMILIES = ("OAuth 2.0", "SCIM 2.0", "Delegation", "Trust signals", "AuthZEN", "Members", "Audit")


def test_the_console_links_an_api_reference_that_draws_every_family(page, live_server, owner, tmp_path):
    page.set_viewport_size({"width": 1280, "height": 900})
    outside = []
    page.on("request", lambda request: outside.append(request.url)
            if not request.url.startswith(live_server.url) and not request.url.startswith("data:") else None)
    log_in(page, live_server.url, owner.user.email)
    page.get_by_role("link", name="API reference").click()
    page.wait_for_url(f"{live_server.url}/api/docs/")
    for family in FAMILIES:
        expect(page.locator(f'.opblock-tag[data-tag="{family}"]')).to_be_visible()
    token = page.locator('.opblock-tag-section:has(.opblock-tag[data-tag="OAuth 2.0"]) .opblock-summary-path',
                         has_text="/oauth/{org}/token").first
    expect(token).to_be_visible()
    token.click()
    expect(page.get_by_text("grant_type").first).to_be_visible()
    page.screenshot(path=tmp_path / "api-reference.png")
    assert not outside, f"the reference fetched from elsewhere: {outside}"
