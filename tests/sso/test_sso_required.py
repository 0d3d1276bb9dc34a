"""Home-realm discovery on the login page and the org's "SSO required" policy: password login and
password reset refuse the org's members with a clear message, owners keep a break-glass password
when the policy says so, and a session that a password started may not act in such an org."""

import pytest
from django.core import mail
from django.test import Client, TestCase
from django.utils import timezone

from accounts.models import PasswordResetToken, SecurityPolicy
from sso.models import Connection, Domain
from sso.outcomes import Assertion
from tests.factories import MemberFactory, OrgFactory, UserFactory, sign_in
from tests.helpers import audit_events, latest_event
from tests.sso.support import sso_sign_in
from tests.trust.conftest import admin_client

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple"
ISSUER = "https://idp.example.com"


@pytest.fixture
def org():
    org = OrgFactory()
    Domain.objects.create(org=org, domain="example.com", verified_at=timezone.now())
    return org


@pytest.fixture
def connection(org):
    return Connection.objects.create(org=org, name="Okta", slug="okta", protocol="oidc", issuer=ISSUER,
                                     client_id="rp")


def _require_sso(org, break_glass="owners"):
    SecurityPolicy.objects.update_or_create(org=org, defaults={"sso_required": True,
                                                               "sso_break_glass": break_glass})


def _member(org, email="ada@example.com", role="member"):
    return MemberFactory(org=org, user=UserFactory(email=email, password=PASSWORD), role=role)


def _login(client, email, password=PASSWORD, **extra):
    return client.post("/login/", {"email": email, "password": password, **extra})


# --- home-realm discovery ---------------------------------------------------------------------


def test_an_email_alone_at_a_verified_domain_goes_to_the_orgs_idp(client, org, connection):
    response = client.post("/login/", {"email": "Someone@Example.com", "next": "/orgs/x/members/"})
    assert response.status_code == 302
    assert response["Location"] == f"/sso/{org.slug}/?next=%2Forgs%2Fx%2Fmembers%2F"
    onward = client.get(response["Location"])
    assert onward.status_code == 302
    assert onward["Location"] == f"/sso/{org.slug}/okta/oidc/login/?next=%2Forgs%2Fx%2Fmembers%2F"


def test_several_connections_let_the_person_choose(client, org, connection):
    Connection.objects.create(org=org, name="Entra", slug="entra", protocol="saml")
    page = client.get(f"/sso/{org.slug}/")
    assert page.status_code == 200
    body = page.content.decode()
    assert f"/sso/{org.slug}/okta/oidc/login/" in body and f"/sso/{org.slug}/entra/saml/login/" in body


@pytest.mark.parametrize("email", ["ada@elsewhere.test", "ada@unverified.test", "not-an-email", "x" * 300])
def test_anyone_else_is_asked_for_a_password_whether_or_not_they_have_an_account(client, org, connection,
                                                                                email):
    Domain.objects.create(org=org, domain="unverified.test")  # claimed, never verified
    UserFactory(email="ada@elsewhere.test")
    response = client.post("/login/", {"email": email})
    assert response.status_code == 200
    assert 'name="password"' in response.content.decode()


def test_a_verified_domain_without_an_enabled_connection_discovers_nothing(client, org, connection):
    Connection.objects.filter(pk=connection.pk).update(enabled=False)
    assert client.post("/login/", {"email": "ada@example.com"}).status_code == 200
    assert client.get(f"/sso/{org.slug}/").status_code == 404


# --- "SSO required" ---------------------------------------------------------------------------


def test_password_login_is_refused_with_a_clear_message(client, org, connection):
    _member(org)
    _require_sso(org)
    response = _login(client, "ada@example.com")
    assert response.status_code == 403
    body = response.content.decode()
    assert "single sign-on" in body and f"/sso/{org.slug}/" in body
    assert "_auth_user_id" not in client.session
    assert latest_event(org, "sso.password_refused").data == {"reason": "sso_required"}


def test_a_wrong_password_still_gets_the_generic_answer(client, org, connection):
    _member(org)
    _require_sso(org)
    response = _login(client, "ada@example.com", "wrong password entirely")
    assert response.status_code == 401
    assert not audit_events(org, "sso.password_refused").exists()


def test_owners_keep_a_break_glass_password_when_the_policy_says(client, org, connection):
    _member(org, role="owner")
    _require_sso(org, break_glass="owners")
    assert _login(client, "ada@example.com").status_code == 302
    assert client.get(f"/orgs/{org.slug}/members/").status_code == 200


def test_without_break_glass_owners_too_must_use_sso(client, org, connection):
    _member(org, role="owner")
    _require_sso(org, break_glass="none")
    assert _login(client, "ada@example.com").status_code == 403


def test_a_password_session_may_not_act_in_an_org_that_requires_sso(client, org, connection):
    member = _member(org)
    other = OrgFactory()
    MemberFactory(org=other, user=member.user)
    _require_sso(org)
    assert _login(client, "ada@example.com").status_code == 302  # the other org takes passwords
    assert client.get(f"/orgs/{other.slug}/members/").status_code == 200
    page = client.get(f"/orgs/{org.slug}/members/")
    assert page.status_code == 302 and page["Location"].startswith("/login/sso-required/")
    api = client.get(f"/api/v1/orgs/{org.slug}/members")
    assert api.status_code == 403 and api.json()["error"] == "sso_required"
    explained = client.get(page["Location"])
    assert explained.status_code == 200 and f"/sso/{org.slug}/" in explained.content.decode()


def test_a_session_the_orgs_idp_signed_in_acts_there(client, org, connection):
    member = _member(org)
    _require_sso(org)
    sso_sign_in(client, connection, Assertion(issuer=ISSUER, subject="s1", email="ada@example.com",
                                              email_verified=True))
    assert client.session["_auth_user_id"] == str(member.user.pk)
    assert client.get(f"/orgs/{org.slug}/members/").status_code == 200


def test_another_orgs_idp_does_not_count(client, org, connection):
    member = _member(org)
    _require_sso(org)
    other = OrgFactory()
    MemberFactory(org=other, user=member.user)
    Domain.objects.create(org=other, domain="other.test", verified_at=timezone.now())
    theirs = Connection.objects.create(org=other, name="Theirs", slug="theirs", protocol="oidc",
                                       issuer="https://other.test")
    from sso.models import Identity

    Identity.objects.create(org=other, connection=theirs, issuer="https://other.test", subject="s1",
                            user=member.user)
    sso_sign_in(client, theirs, Assertion(issuer="https://other.test", subject="s1"))
    assert client.get(f"/orgs/{other.slug}/members/").status_code == 200
    assert client.get(f"/orgs/{org.slug}/members/").status_code == 302


def test_sso_required_needs_an_enabled_connection(org):
    api = admin_client(org)
    Connection.objects.all().delete()
    refused = api.patch(f"/api/v1/orgs/{org.slug}/security-policy", {"sso_required": True}, format="json")
    assert refused.status_code == 409 and refused.json()["error"] == "sso_not_ready"
    assert not SecurityPolicy.objects.filter(org=org, sso_required=True).exists()
    assert latest_event(org, "policy.denied").data == {"reason": "sso_not_ready"}
    Connection.objects.create(org=org, name="Okta", slug="okta", protocol="oidc", issuer=ISSUER)
    accepted = api.patch(f"/api/v1/orgs/{org.slug}/security-policy", {"sso_required": True}, format="json")
    assert accepted.status_code == 200 and accepted.json()["sso_required"] is True


# --- password reset -----------------------------------------------------------------------------


def _reset(client, email):
    with TestCase.captureOnCommitCallbacks(execute=True):  # mail is queued once the request commits
        return client.post("/password/reset/", {"email": email})


def test_reset_mails_no_link_but_says_to_use_sso(client, org, connection):
    _member(org)
    _require_sso(org)
    response = _reset(client, "ada@example.com")
    unknown = _reset(client, "nobody@example.com")
    assert response.status_code == unknown.status_code
    assert not PasswordResetToken.objects.exists()
    assert len(mail.outbox) == 1 and "single sign-on" in mail.outbox[0].body
    assert "/password/reset/" not in mail.outbox[0].body


def test_a_link_mailed_before_the_org_required_sso_no_longer_works(client, org, connection):
    member = _member(org)
    _reset(client, "ada@example.com")
    link = next(word for word in mail.outbox[0].body.split() if "/password/reset/" in word)
    _require_sso(org)
    path = link.split("://", 1)[-1].split("/", 1)[1]
    page = client.get("/" + path, follow=True)
    assert "single sign-on" in page.content.decode()
    member.user.refresh_from_db()
    assert member.user.check_password(PASSWORD)


def test_an_admin_cannot_send_a_reset_to_a_member_who_must_use_sso(org, connection):
    owner = MemberFactory(org=org, role="owner")
    member = _member(org)
    _require_sso(org)
    browser = sign_in(Client(), owner.user, mfa=True)
    response = browser.post(f"/orgs/{org.slug}/members/{member.pk}/security/", {"action": "send_reset"})
    assert response.status_code == 302
    assert "single sign-on" in browser.get(response["Location"]).content.decode()
    assert not PasswordResetToken.objects.exists()
    assert latest_event(org, "password.reset_rejected").data == {"reason": "sso_required"}


def test_a_later_password_login_in_the_same_browser_forgets_the_idps_sign_in(client, org, connection):
    member = _member(org)
    other = OrgFactory()
    MemberFactory(org=other, user=member.user)
    _require_sso(org)
    sso_sign_in(client, connection, Assertion(issuer=ISSUER, subject="s1", email="ada@example.com",
                                              email_verified=True))
    assert client.get(f"/orgs/{org.slug}/members/").status_code == 200
    assert _login(client, "ada@example.com", next=f"/orgs/{other.slug}/members/").status_code == 302
    assert client.get(f"/orgs/{org.slug}/members/").status_code == 302
