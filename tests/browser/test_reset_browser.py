"""Password reset in Chromium, from the login page to signing in with the new password: the mailed
link (Django's in-memory outbox) is opened like a mail client would, and the form it leads to must
be accepted by the CSRF check (a `no-referrer` page makes Chromium send `Origin: null`)."""

import re
from urllib.parse import urlparse

import pytest
from django.core import mail

from accounts.models import PasswordResetToken
from audit.models import AuditEntry
from tests.factories import PASSWORD, MemberFactory, OrgFactory, UserFactory

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NEW_PASSWORD = "lantern orbit ferry 7291 quietly"
LINK = re.compile(r"https?://\S+/password/reset/\S+/")


@pytest.fixture
def base(live_server, settings):
    # Links are built from the configured origin, never from the request: point it at this server.
    settings.IAM_CANONICAL_ORIGIN = live_server.url
    settings.CSRF_TRUSTED_ORIGINS = [live_server.url]
    assert urlparse(live_server.url).hostname == "localhost"
    return live_server.url


@pytest.fixture
def member(db):
    return MemberFactory(org=OrgFactory(name="Acme Robotics"), role="owner",
                         user=UserFactory(password=PASSWORD))


def test_reset_a_forgotten_password_then_sign_in_with_the_new_one(page, base, member):
    user = member.user
    page.goto(base + "/login/")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email").fill(user.email)
    page.get_by_role("button", name="Send reset link").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    link = LINK.search(mail.outbox[-1].body).group(0)
    token = urlparse(link).path.rstrip("/").rsplit("/", 1)[1]

    form_page = page.goto(link)
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    # The secret leaves the address bar at once, and the page never hands a referrer elsewhere.
    assert token not in page.url
    assert form_page.headers["referrer-policy"] == "same-origin"
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password, again").fill(NEW_PASSWORD)
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Set new password").click()
    assert posted.value.status == 302  # accepted by the CSRF check, not a 403
    expect(page).to_have_url(base + "/login/")
    expect(page.get_by_role("status")).to_contain_text("Your password has been changed")

    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base}/orgs/{member.org.slug}/")
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert PasswordResetToken.objects.get(user=user).used_at is not None
    completed = AuditEntry.objects.unscoped().filter(event_name="password.reset_completed").get()
    assert completed.target_id == str(user.pk)


def test_the_link_opened_again_after_use_says_it_expired(page, base, member):
    page.goto(base + "/password/reset/")
    page.get_by_label("Email").fill(member.user.email)
    page.get_by_role("button", name="Send reset link").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    link = LINK.search(mail.outbox[-1].body).group(0)
    page.goto(link)
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password, again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set new password").click()
    expect(page).to_have_url(base + "/login/")

    response = page.goto(link)
    assert response.status == 400 and response.headers["referrer-policy"] == "no-referrer"
    expect(page.get_by_role("heading", name=re.compile("expired or has already been used"))).to_be_visible()
    member.user.refresh_from_db()
    assert member.user.check_password(NEW_PASSWORD)
