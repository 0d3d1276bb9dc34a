"""Membership needs consent: adding an address invites the person, and until they accept the
membership grants nothing, applies no policy, reveals nothing and cannot end their sessions."""

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.test import Client, TestCase
from django.utils import timezone

from accounts.models import Invitation, Membership, MembershipStatus, SecurityPolicy, UserSession
from accounts.policy import user_policy
from audit.models import AuditEntry
from rbac.guard import access_for_user
from rbac.policies import policy_update
from tests.factories import PASSWORD, MemberFactory, OrgFactory, UserFactory, sign_in
from tests.helpers import audit_events, events_since, in_parallel, last_seq

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "lantern orbit ferry 7291 quietly"
LINK = re.compile(r"https?://[^/\s]+/invitation/([A-Za-z0-9_-]+)/")


def _invite(client, org, email, **body):
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(f"/api/v1/orgs/{org.slug}/members", {"email": email, **body},
                           content_type="application/json")


def _link():
    return LINK.search(mail.outbox[-1].body).group(1)


@pytest.fixture
def admin(org, owner):
    return sign_in(Client(), owner.user)


def test_the_answer_is_the_same_whether_or_not_the_address_has_an_account(org, admin):
    elsewhere = MemberFactory(user=UserFactory(password=PASSWORD, display_name="Known Person"))
    elsewhere.user.last_login = timezone.now()
    elsewhere.user.save()
    seq = last_seq(org)
    known = _invite(admin, org, elsewhere.user.email)
    unknown = _invite(admin, org, "nobody-yet@example.com")
    assert (known.status_code, unknown.status_code) == (201, 201)
    a, b = known.json(), unknown.json()
    for volatile in ("id", "email", "created_at"):
        a.pop(volatile), b.pop(volatile)
    assert a == b == {"user_id": None, "name": "", "role": "member", "status": "invited", "source": "manual",
                      "custom_roles": [], "teams": [], "last_login_at": None}
    assert events_since(org, seq) == ["member.added", "invitation.sent"] * 2
    assert [m.to for m in mail.outbox] == [[elsewhere.user.email], ["nobody-yet@example.com"]]
    # The account itself is untouched: the other org's member keeps their password and sessions.
    elsewhere.user.refresh_from_db()
    assert elsewhere.user.check_password(PASSWORD)


def test_until_accepted_the_membership_grants_nothing_and_applies_no_policy(org, owner, admin):
    person = MemberFactory(user=UserFactory(password=PASSWORD))  # a member of another org
    policy_update(access=access_for_user(user=owner.user, org_slug=org.slug),
                  password_min_length=40, lockout_threshold=3)
    _invite(admin, org, person.user.email, role="owner")
    browser = sign_in(Client(), person.user)
    assert browser.get(f"/api/v1/orgs/{org.slug}/members").status_code == 404
    assert browser.get(f"/orgs/{org.slug}/members/").status_code == 404
    policy = user_policy(person.user)
    assert (policy.min_length, policy.lockout_threshold) == (12, 5)  # the defaults, not this org's


def _owner(org):
    return Membership.objects.for_org(org).filter(role="owner").first()


def test_a_pending_invitation_cannot_end_the_persons_sessions_or_be_activated(org, admin):
    person = MemberFactory(user=UserFactory(password=PASSWORD))
    browser = sign_in(Client(), person.user)
    invited = _invite(admin, org, person.user.email).json()
    seq = last_seq(org)
    ended = admin.post(f"/api/v1/orgs/{org.slug}/members/{invited['id']}/revoke-sessions")
    activated = admin.patch(f"/api/v1/orgs/{org.slug}/members/{invited['id']}", {"status": "active"},
                            content_type="application/json")
    reset = admin.post(f"/api/v1/orgs/{org.slug}/members/{invited['id']}/send-password-reset")
    assert (ended.status_code, activated.status_code, reset.status_code) == (409, 400, 409)
    assert ended.json()["error"] == "not_accepted" and activated.json()["error"] == "not_accepted"
    assert browser.get(f"/api/v1/orgs/{person.org.slug}/members").status_code == 200
    assert Membership.objects.for_org(org).get(pk=invited["id"]).status == "invited"
    assert UserSession.objects.filter(user=person.user).count() == 1
    assert events_since(org, seq) == []


def test_a_person_without_a_password_accepts_from_the_link_sets_one_and_signs_in(org, admin):
    _invite(admin, org, "newcomer@example.com", role="viewer")
    token = _link()
    client = Client()
    page = client.get(f"/invitation/{token}/")
    assert page.status_code == 200 and page["Referrer-Policy"] == "same-origin"
    assert b"new_password" in page.content and org.name.encode() in page.content
    seq = last_seq(org)
    accepted = client.post(f"/invitation/{token}/", {"decision": "accept", "new_password": NEW_PASSWORD,
                                                     "new_password_again": NEW_PASSWORD})
    assert accepted.status_code == 302 and accepted["Location"] == "/login/"
    membership = Membership.objects.for_org(org).get(user__email="newcomer@example.com")
    assert membership.status == "active"
    assert Invitation.objects.for_org(org).get(membership=membership).used_at is not None
    assert events_since(org, seq) == ["member.updated", "invitation.accepted"]
    assert audit_events(org, "invitation.accepted").get().data == {"email": "newcomer@example.com",
                                                                    "via": "link"}
    login = client.post("/login/", {"email": "newcomer@example.com", "password": NEW_PASSWORD})
    assert login.status_code == 302
    assert client.get(f"/api/v1/orgs/{org.slug}/members").status_code == 200
    # The link works once.
    again = Client().get(f"/invitation/{token}/")
    assert again.status_code == 400
    assert audit_events(org, "invitation.rejected").get().data == {"reason": "used"}


def test_a_bad_password_on_the_link_changes_nothing_and_the_link_stays_usable(org, admin):
    _invite(admin, org, "newcomer@example.com")
    token = _link()
    refused = Client().post(f"/invitation/{token}/", {"decision": "accept", "new_password": "short",
                                                      "new_password_again": "short"})
    assert refused.status_code == 400
    membership = Membership.objects.for_org(org).get(user__email="newcomer@example.com")
    assert membership.status == "invited" and not membership.user.has_usable_password()
    assert Invitation.objects.for_org(org).get(membership=membership).used_at is None
    assert Client().get(f"/invitation/{token}/").status_code == 200


def test_a_signed_in_person_accepts_or_declines_from_the_banner(org, admin):
    person = UserFactory(password=PASSWORD)
    other = OrgFactory(name="Second Org")
    MemberFactory(org=other, user=person)
    _invite(admin, org, person.email)
    browser = sign_in(Client(), person)
    page = browser.get(f"/orgs/{other.slug}/members/")
    assert b"You are invited to" in page.content and org.name.encode() in page.content
    membership = Membership.objects.for_org(org).get(user=person)
    stranger = sign_in(Client(), UserFactory())
    assert stranger.post(f"/invitations/{membership.pk}/accept/").status_code == 404
    membership.refresh_from_db()
    assert membership.status == "invited"
    accepted = browser.post(f"/invitations/{membership.pk}/accept/")
    assert accepted.status_code == 302 and accepted["Location"] == f"/orgs/{org.slug}/members/"
    membership.refresh_from_db()
    assert membership.status == "active"
    assert audit_events(org, "invitation.accepted").get().data["via"] == "signed_in"
    # The link mailed earlier is spent too.
    assert Client().get(f"/invitation/{_link()}/").status_code == 400

    invite_back = _invite(sign_in(Client(), _owner(org).user), org, "second@example.com").json()
    second = sign_in(Client(), Membership.objects.for_org(org).get(pk=invite_back["id"]).user)
    declined = second.post(f"/invitations/{invite_back['id']}/decline/")
    assert declined.status_code == 302
    assert not Membership.objects.for_org(org).filter(pk=invite_back["id"]).exists()
    assert audit_events(org, "invitation.declined").count() == 1


def test_resend_replaces_the_link_and_cancel_withdraws_it(org, admin):
    invited = _invite(admin, org, "someone@example.com").json()
    first = _link()
    with TestCase.captureOnCommitCallbacks(execute=True):
        resent = admin.post(f"/api/v1/orgs/{org.slug}/members/{invited['id']}/resend-invitation")
    assert resent.status_code == 202
    second = _link()
    assert first != second
    assert Client().get(f"/invitation/{first}/").status_code == 400
    assert Client().get(f"/invitation/{second}/").status_code == 200
    assert audit_events(org, "invitation.sent").latest("seq").data["resend"] is True

    cancelled = admin.delete(f"/api/v1/orgs/{org.slug}/members/{invited['id']}")
    assert cancelled.status_code == 204
    assert not Membership.objects.for_org(org).filter(pk=invited["id"]).exists()
    assert audit_events(org, "invitation.cancelled").get().data == {"email": "someone@example.com"}
    assert not audit_events(org, "member.removed").exists()
    assert Client().get(f"/invitation/{second}/").status_code == 400


def test_an_expired_link_is_refused_by_its_timestamp(org, admin):
    _invite(admin, org, "late@example.com")
    token = _link()
    Invitation.objects.for_org(org).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = Client().post(f"/invitation/{token}/", {"decision": "accept", "new_password": NEW_PASSWORD,
                                                       "new_password_again": NEW_PASSWORD})
    assert response.status_code == 400
    assert Membership.objects.for_org(org).get(user__email="late@example.com").status == "invited"
    assert audit_events(org, "invitation.rejected").get().data == {"reason": "expired"}


def test_an_account_another_orgs_scim_manages_accepts_only_from_the_link(org, admin):
    from tests.scim.conftest import scim_for, user_body

    idp = scim_for()
    assert idp.post("/Users", user_body("ceo@victim.example", password=NEW_PASSWORD)).status_code == 201
    _invite(admin, org, "ceo@victim.example")
    person = Membership.objects.for_org(org).get(user__email="ceo@victim.example")
    browser = sign_in(Client(), person.user)  # as the other org's admin could, knowing the password
    refused = browser.post(f"/invitations/{person.pk}/accept/")
    assert refused.status_code == 302
    person.refresh_from_db()
    assert person.status == "invited"
    # From the mailed link the person chooses their own password, and the account is released.
    client = Client()
    accepted = client.post(f"/invitation/{_link()}/", {"decision": "accept", "new_password": PASSWORD,
                                                       "new_password_again": PASSWORD})
    assert accepted.status_code == 302
    person.user.refresh_from_db()
    assert person.user.scim_managed_by_id is None and not person.user.check_password(NEW_PASSWORD)
    assert person.user.check_password(PASSWORD)
    assert audit_events(org, "member.account_released").get().data["password_cleared"] is True
    assert browser.get(f"/orgs/{idp.org.slug}/members/").status_code == 302  # the old session ended


# --- sign out everywhere ------------------------------------------------------------------------------


def test_sign_out_everywhere_ends_this_orgs_access_only(org, admin):
    person = UserFactory(password=PASSWORD)
    here = MemberFactory(org=org, user=person)
    elsewhere = MemberFactory(user=person)
    browser = sign_in(Client(), person)
    seq = last_seq(org)
    response = admin.post(f"/api/v1/orgs/{org.slug}/members/{here.pk}/revoke-sessions")
    assert response.status_code == 200 and response.json() == {"revoked": 1}
    refused = browser.get(f"/api/v1/orgs/{org.slug}/members")
    assert refused.status_code == 401 and refused.json()["error"] == "session_revoked"
    assert browser.get(f"/api/v1/orgs/{elsewhere.org.slug}/members").status_code == 200
    assert UserSession.objects.filter(user=person).count() == 1
    [entry] = AuditEntry.objects.for_org(org).filter(seq__gt=seq, event_name="member.sessions_ended")
    assert entry.data == {"scope": "org", "sessions_revoked": 1}
    # Proving who they are again gives the session this org back.
    again = sign_in(browser, person)
    assert again.get(f"/api/v1/orgs/{org.slug}/members").status_code == 200


def test_sign_out_everywhere_ends_the_sessions_of_an_account_this_org_manages(org, admin):
    person = UserFactory(password=PASSWORD, scim_managed_by=org)
    here = MemberFactory(org=org, user=person)
    browser = sign_in(Client(), person)
    assert admin.post(f"/api/v1/orgs/{org.slug}/members/{here.pk}/revoke-sessions").json() == {"revoked": 1}
    assert not UserSession.objects.filter(user=person).exists()
    assert browser.get(f"/api/v1/orgs/{org.slug}/members").status_code in (401, 403)
    ended = audit_events(org, "member.sessions_ended").get()
    assert ended.data == {"scope": "account", "sessions_revoked": 1}


# --- lockout bounds -----------------------------------------------------------------------------------


@pytest.mark.parametrize("change", [{"lockout_threshold": 1}, {"lockout_threshold": 2},
                                    {"lockout_minutes": 61}, {"lockout_minutes": 1440}])
def test_the_lockout_policy_has_sane_bounds(org, admin, change):
    url = f"/api/v1/orgs/{org.slug}/security-policy"
    seq = last_seq(org)
    response = admin.patch(url, change, content_type="application/json")
    assert response.status_code == 400 and set(response.json()["fields"]) == set(change)
    assert not SecurityPolicy.objects.filter(org=org).exists()  # nothing saved
    assert events_since(org, seq) == []


# --- races ----------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_parallel_acceptances_of_one_link_have_exactly_one_success():
    if connection.vendor != "postgresql":
        pytest.skip("race cases run on PostgreSQL (SQLite serialises every writer)")
    org = OrgFactory()
    owner = MemberFactory(org=org, role="owner", user=UserFactory(password=PASSWORD))
    _invite(sign_in(Client(), owner.user), org, "racer@example.com")
    token = _link()
    results = in_parallel(6, lambda i: Client().post(f"/invitation/{token}/", {
        "decision": "accept", "new_password": NEW_PASSWORD, "new_password_again": NEW_PASSWORD}).status_code)
    assert results.count(302) == 1 and set(results) <= {302, 400}
    assert audit_events(org, "invitation.accepted").count() == 1
    racer = Membership.objects.for_org(org).get(user__email="racer@example.com")
    assert racer.status == MembershipStatus.ACTIVE


def test_an_invitation_the_directory_switched_off_cannot_be_accepted(org, admin):
    from tests.scim.conftest import scim_for, user_body

    idp = scim_for(org)
    person = MemberFactory(user=UserFactory(password=PASSWORD))  # an account of another org
    with TestCase.captureOnCommitCallbacks(execute=True):
        created = idp.post("/Users", user_body(person.user.email)).json()
    off = idp.patch(f"/Users/{created['id']}", [{"op": "replace", "value": {"active": False}}])
    assert off.status_code == 200
    membership = Membership.objects.for_org(org).get(user=person.user)
    assert (membership.status, membership.deactivated_by_directory) == ("invited", True)
    link = Client().post(f"/invitation/{_link()}/", {"decision": "accept"})
    banner = sign_in(Client(), person.user).post(f"/invitations/{membership.pk}/accept/")
    assert (link.status_code, banner.status_code) == (400, 302)
    membership.refresh_from_db()
    assert membership.status == "invited"
    assert audit_events(org, "invitation.rejected").get().data == {"reason": "directory_deactivated"}


# --- nothing of the account shows before acceptance, wherever the org looks --------------------------


def test_the_access_review_shows_a_pending_invitee_by_the_typed_address_only(org, admin):
    import csv
    import io

    person = MemberFactory(user=UserFactory(password=PASSWORD, display_name="Victim Realname"))
    person.user.last_login = timezone.now()
    person.user.save()
    _invite(admin, org, person.user.email)
    fresh = sign_in(Client(), _owner(org).user, mfa=True)
    response = fresh.get(f"/api/v1/orgs/{org.slug}/exports/access-review.csv")
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    [row] = [r for r in csv.DictReader(io.StringIO(body)) if r["email"] == person.user.email]
    assert (row["principal_id"], row["name"], row["mfa_enrolled"], row["last_login_at"]) == ("", "", "", "")
    assert row["status"] == "invited"


def test_searching_members_never_matches_a_pending_invitees_name(org, admin):
    person = MemberFactory(user=UserFactory(display_name="Victim Realname"))
    _invite(admin, org, person.user.email)
    api = admin.get(f"/api/v1/orgs/{org.slug}/members", {"q": "Realname"}).json()["results"]
    page = admin.get(f"/orgs/{org.slug}/members/", {"q": "Realname"}).content.decode()
    assert api == [] and person.user.email not in page
    by_address = admin.get(f"/api/v1/orgs/{org.slug}/members", {"q": person.user.email}).json()["results"]
    assert [m["email"] for m in by_address] == [person.user.email]


def test_the_org_managing_an_account_neither_sees_nor_answers_other_orgs_invitations(org, admin):
    from tests.scim.conftest import scim_for, user_body

    idp = scim_for()
    assert idp.post("/Users", user_body("ceo@victim.example", password=NEW_PASSWORD)).status_code == 201
    _invite(admin, org, "ceo@victim.example")
    pending = Membership.objects.for_org(org).get(user__email="ceo@victim.example")
    browser = sign_in(Client(), pending.user)  # as the managing org's admin could
    assert org.name.encode() not in browser.get(f"/orgs/{idp.org.slug}/members/").content
    declined = browser.post(f"/invitations/{pending.pk}/decline/")
    assert declined.status_code == 302
    pending.refresh_from_db()
    assert pending.status == "invited" and not audit_events(org, "invitation.declined").exists()


def test_an_invitation_never_outranks_the_person_who_sent_it(org, owner, admin):
    other_owner = MemberFactory(org=org, role="owner", user=UserFactory(password=PASSWORD))
    _invite(admin, org, "new-owner@example.com", role="owner")
    token = _link()
    Membership.objects.filter(pk=owner.pk).update(role="member")  # the sender is demoted meanwhile
    seq = last_seq(org)
    refused = Client().post(f"/invitation/{token}/", {"decision": "accept", "new_password": NEW_PASSWORD,
                                                      "new_password_again": NEW_PASSWORD})
    assert refused.status_code == 400
    pending = Membership.objects.for_org(org).get(user__email="new-owner@example.com")
    assert pending.status == "invited" and not pending.user.has_usable_password()
    assert events_since(org, seq) == ["invitation.rejected"]
    assert audit_events(org, "invitation.rejected").get().data == {"reason": "inviter_lost_power"}
    # Someone who can still grant it sends it again, and stands behind it from then on.
    with TestCase.captureOnCommitCallbacks(execute=True):
        resent = sign_in(Client(), other_owner.user).post(
            f"/api/v1/orgs/{org.slug}/members/{pending.pk}/resend-invitation")
    assert resent.status_code == 202
    accepted = Client().post(f"/invitation/{_link()}/", {"decision": "accept", "new_password": NEW_PASSWORD,
                                                         "new_password_again": NEW_PASSWORD})
    assert accepted.status_code == 302
    pending.refresh_from_db()
    assert (pending.status, pending.role) == ("active", "owner")
