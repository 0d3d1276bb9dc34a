"""Playwright against Debian's Chromium. The sync API runs an event loop in the test thread, and
Django refuses synchronous ORM calls from a thread with a running loop; the tests only touch the
database between browser calls, never concurrently, so the check is switched off for this package.
"""

import os
import shutil

import pytest

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = os.environ.get("IAM_CHROMIUM", "/usr/bin/chromium")  # override to test the skip path
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def browser_unavailable_reason() -> str | None:
    if not shutil.which(CHROMIUM):
        return f"{CHROMIUM} is missing (apt-get install chromium); set IAM_REQUIRE_BROWSER=1 to fail instead"
    try:
        # Imported here, not at the top, so a machine without Playwright skips instead of erroring.
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed; set IAM_REQUIRE_BROWSER=1 to fail instead"
    return None


_reason = browser_unavailable_reason()
if _reason and os.environ.get("IAM_REQUIRE_BROWSER") == "1":
    raise pytest.UsageError(f"IAM_REQUIRE_BROWSER=1 but the browser tests cannot run: {_reason}")


def pytest_collection_modifyitems(config, items):
    if _reason is None:
        return
    skip = pytest.mark.skip(reason=_reason)
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context(accept_downloads=True)
    context.set_default_timeout(10_000)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture
def owner(db):
    """The owner the browser tests sign in as, of an org with a name a person would read."""
    from tests.factories import PASSWORD, MemberFactory, OrgFactory, UserFactory

    org = OrgFactory(name="Acme Robotics")
    return MemberFactory(org=org, role="owner", user=UserFactory(password=PASSWORD))
