"""Onboarding in a real browser: an owner invites someone, who opens the mailed link, sets a password,
signs in and lands in the org; a signed-in person answers an invitation from the banner; a form that
ran into re-authentication is not lost."""

import re

import pytest
from django.core import mail

from accounts.models import Membership
from tests.browser.test_browser import log_in, nav
from tests.factories import PASSWORD, MemberFactory, OrgFactory, UserFactory

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NEW_PASSWORD = "lantern orbit ferry 7291 quietly"
LINK = re.compile(r"https?://[^/\s]+(/invitation/[A-Za-z0-9_-]+/)")


def test_an_invited_person_accepts_sets_a_password_and_signs_in(page, chromium, live_server, owner):
    org = owner.org
    log_in(page, live_server.url, owner.user.email)
    nav(page, "Members")
    page.get_by_label("Email").fill("newcomer@example.com")
    page.get_by_label("Role", exact=True).select_option("member")  # not "Filter by role"
    page.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_role("status")).to_contain_text("Invited newcomer@example.com")
    expect(page.get_by_role("button", name="Resend invitation to newcomer@example.com")).to_be_visible()
    [message] = [m for m in mail.outbox if m.to == ["newcomer@example.com"]]
    path = LINK.search(message.body).group(1)

    # The invited person, in a browser of their own.
    context = chromium.new_context()
    tab = context.new_page()
    tab.goto(live_server.url + path)
    expect(tab.get_by_role("heading", name=f"Join {org.name}?")).to_be_visible()
    tab.get_by_label("Choose a password").fill(NEW_PASSWORD)
    tab.get_by_label("The password, again").fill(NEW_PASSWORD)
    tab.get_by_role("button", name="Accept and join").click()  # a real POST: Origin, CSRF, Referer
    expect(tab).to_have_url(live_server.url + "/login/")
    expect(tab.get_by_role("status")).to_contain_text(f"You joined {org.name}")
    tab.get_by_label("Email").fill("newcomer@example.com")
    tab.get_by_label("Password").fill(NEW_PASSWORD)
    tab.get_by_role("button", name="Sign in").click()
    expect(tab).to_have_url(live_server.url + f"/orgs/{org.slug}/")
    expect(tab.get_by_role("heading", name=org.name, level=1)).to_be_visible()
    assert Membership.objects.for_org(org).get(user__email="newcomer@example.com").status == "active"
    # The link is spent.
    tab.goto(live_server.url + path)
    expect(tab.get_by_role("heading", name="This invitation link is not valid")).to_be_visible()
    context.close()


def test_a_signed_in_person_accepts_from_the_banner(page, live_server):
    person = UserFactory(password=PASSWORD, email="dana@example.com")
    MemberFactory(org=OrgFactory(name="Home Org"), user=person)
    inviting = OrgFactory(name="Partner Org")
    invited = MemberFactory(org=inviting, user=person, status="invited")
    log_in(page, live_server.url, person.email)
    banner = page.get_by_role("region", name="Invitations")
    expect(banner).to_contain_text("You are invited to Partner Org")
    banner.get_by_role("button", name="Accept the invitation to Partner Org").click()
    expect(page).to_have_url(live_server.url + f"/orgs/{inviting.slug}/members/")
    expect(page.get_by_role("status")).to_contain_text("You joined Partner Org")
    expect(page.get_by_role("region", name="Invitations")).to_have_count(0)
    invited.refresh_from_db()
    assert invited.status == "active"


def test_a_form_survives_re_authentication(page, live_server, owner):
    from importlib import import_module

    from django.conf import settings

    from accounts.policy import AUTH_TIME_KEY
    from rbac.models import Team

    org = owner.org
    log_in(page, live_server.url, owner.user.email)
    page.goto(live_server.url + f"/orgs/{org.slug}/teams/")
    # The session's proof of identity ages past the re-authentication window.
    key = next(c["value"] for c in page.context.cookies() if c["name"] == settings.SESSION_COOKIE_NAME)
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key=key)
    session[AUTH_TIME_KEY] = session[AUTH_TIME_KEY] - 3600
    session.save()
    page.get_by_label("Name", exact=True).fill("Platform")
    page.get_by_role("button", name="Create team").click()
    expect(page.get_by_role("heading", name="Confirm it's you")).to_be_visible()
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Confirmed")).to_be_visible()
    assert not Team.objects.for_org(org).exists()
    page.get_by_role("button", name="Submit the form").click()
    expect(page.get_by_role("heading", name="Platform")).to_be_visible()
    assert Team.objects.for_org(org).get().name == "Platform"


def test_resend_and_cancel_an_invitation_and_decline_one_from_its_link(page, chromium, live_server, owner):
    org = owner.org
    log_in(page, live_server.url, owner.user.email)
    nav(page, "Members")
    for email in ("first@example.com", "second@example.com"):
        page.get_by_label("Email").fill(email)
        page.get_by_role("button", name="Send invitation", exact=True).click()
        expect(page.get_by_role("status")).to_contain_text(f"Invited {email}")
    first_link = LINK.search([m for m in mail.outbox if m.to == ["first@example.com"]][-1].body).group(1)
    page.get_by_role("button", name="Resend invitation to first@example.com").click()
    expect(page.get_by_role("status")).to_contain_text("Sent the invitation to first@example.com again")
    page.get_by_role("link", name="Cancel invitation of first@example.com").click()
    expect(page.get_by_role("heading", name="Cancel the invitation of first@example.com?")).to_be_visible()
    page.get_by_role("button", name="Cancel invitation").click()
    expect(page.get_by_role("status")).to_contain_text("Cancelled the invitation of first@example.com")
    assert not Membership.objects.for_org(org).filter(user__email="first@example.com").exists()

    invitee = chromium.new_context()
    tab = invitee.new_page()
    tab.goto(live_server.url + first_link)  # the first link died with the resend and the cancel
    expect(tab.get_by_role("heading", name="This invitation link is not valid")).to_be_visible()
    second = LINK.search([m for m in mail.outbox if m.to == ["second@example.com"]][-1].body).group(1)
    tab.goto(live_server.url + second)
    tab.get_by_role("button", name="Decline").click()
    expect(tab).to_have_url(live_server.url + "/login/")
    expect(tab.get_by_role("status")).to_contain_text(f"You declined the invitation to {org.name}")
    assert not Membership.objects.for_org(org).filter(user__email="second@example.com").exists()
    invitee.close()


def test_sign_out_everywhere_ends_a_members_access_to_this_org(page, chromium, live_server, owner):
    org = owner.org
    member = MemberFactory(org=org, user=UserFactory(password=PASSWORD, email="mover@example.com"))
    theirs = chromium.new_context()
    tab = theirs.new_page()
    log_in(tab, live_server.url, member.user.email)
    expect(tab).to_have_url(live_server.url + f"/orgs/{org.slug}/")

    log_in(page, live_server.url, owner.user.email)
    page.goto(live_server.url + f"/orgs/{org.slug}/members/{member.pk}/")
    page.get_by_role("button", name="Sign out everywhere").click()
    expect(page.get_by_test_id("consequences")).to_contain_text(f"can no longer act in {org.name}")
    page.get_by_role("button", name="Sign out everywhere").click()
    expect(page.get_by_role("status")).to_contain_text(f"Signed mover@example.com out of {org.name}")

    tab.goto(live_server.url + f"/orgs/{org.slug}/members/")
    expect(tab.get_by_role("heading", name="Confirm it's you")).to_be_visible()
    tab.get_by_label("Password").fill(PASSWORD)
    tab.get_by_role("button", name="Continue").click()
    expect(tab).to_have_url(live_server.url + f"/orgs/{org.slug}/members/")
    theirs.close()
