"""The person's own account pages in Chromium: moving through them by the side navigation, sessions
named by browser and system, the authenticator key and the recovery codes copied to the clipboard
and the codes downloaded as a file, every page fitting 1,280 px (screenshots in tmp_path).

The clipboard needs a secure context, so the pages are opened on the live server's localhost URL."""

import re
from base64 import b32decode
from urllib.parse import urlparse, urlsplit

import pytest
from django_otp.oath import TOTP

from tests.browser.test_agents_console_browser import fits
from tests.browser.test_browser import log_in

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def base(live_server, settings):
    url = live_server.url.replace("127.0.0.1", "localhost")
    assert urlparse(url).hostname == "localhost"
    settings.CSRF_TRUSTED_ORIGINS = [url]
    settings.ALLOWED_HOSTS = ["localhost"]
    return url


def account_nav(page, name):
    """Follow a link of the account navigation and check the page it opens is marked current there."""
    nav = page.get_by_role("navigation", name="Your account")
    link = nav.get_by_role("link", name=name, exact=True)
    path = urlsplit(link.get_attribute("href")).path
    link.click()
    page.wait_for_url(lambda url: urlsplit(url).path == path)
    page.wait_for_load_state()
    expect(nav.locator('[aria-current="page"]')).to_have_text(name)


def clipboard(page) -> str:
    return page.evaluate("navigator.clipboard.readText()")


def test_the_account_pages_by_the_side_nav(page, base, owner, tmp_path):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    log_in(page, base, owner.user.email)
    expect(page).to_have_url(re.compile(r"/orgs/"))
    page.get_by_role("banner").get_by_role("link", name="Security", exact=True).click()
    expect(page.get_by_role("heading", name="Security", exact=True)).to_be_visible()
    expect(page.get_by_role("navigation", name="Your account").locator('[aria-current="page"]')).to_have_text(
        "Security overview")
    fits(page, tmp_path, "security")

    account_nav(page, "Password")
    expect(page.get_by_role("heading", name="Change your password")).to_be_visible()
    fits(page, tmp_path, "password")

    account_nav(page, "Sessions")
    device = page.get_by_test_id("session-device")
    expect(device).to_have_count(1)
    expect(device).to_have_text(re.compile(r"^Headless Chrome \d+ on Linux$"))
    expect(device).to_have_attribute("title", re.compile(r"HeadlessChrome/\d+"))  # the raw header, kept
    fits(page, tmp_path, "sessions")

    account_nav(page, "Delegations I granted")
    expect(page.get_by_role("heading", name="Agents acting for me")).to_be_visible()
    fits(page, tmp_path, "delegations")

    account_nav(page, "Authenticator app")
    secret = page.get_by_test_id("totp-secret").inner_text()
    page.get_by_role("button", name="Copy the key").click()
    expect(page.get_by_role("status").filter(has_text="Copied")).to_have_text("Copied to the clipboard.")
    assert clipboard(page) == secret.replace(" ", "")
    fits(page, tmp_path, "authenticator")
    totp = TOTP(b32decode(clipboard(page)))
    page.get_by_label("Code from the app").fill(f"{totp.token():06d}")
    page.get_by_role("button", name="Turn on").click()

    expect(page.get_by_role("heading", name="Recovery codes")).to_be_visible()
    expect(page.get_by_role("navigation", name="Your account").locator('[aria-current="page"]')).to_have_text(
        "Recovery codes")
    page.get_by_role("button", name="Generate recovery codes").click()
    shown = page.get_by_test_id("recovery-codes").locator("li").all_inner_texts()
    assert len(shown) == 10 and all(re.fullmatch(r"[a-z2-9]{5}-[a-z2-9]{5}", c) for c in shown)
    page.get_by_role("button", name="Copy the recovery codes").click()
    expect(page.get_by_role("status").filter(has_text="Copied")).to_have_text("Copied to the clipboard.")
    assert clipboard(page).split() == shown
    with page.expect_download() as download:
        page.get_by_role("link", name="Download as a text file").click()
    assert download.value.suggested_filename == "agent-iam-recovery-codes.txt"
    assert open(download.value.path()).read() == "".join(f"{code}\n" for code in shown)
    fits(page, tmp_path, "recovery-codes")

    page.get_by_role("navigation", name="Your account").get_by_role("link", name="Acme Robotics").click()
    expect(page).to_have_url(f"{base}/orgs/{owner.org.slug}/")
