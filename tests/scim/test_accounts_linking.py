"""Accounts are global; an IdP asserts addresses nobody verified. What one org's SCIM may do to an
account that exists, or that another org later adds."""

import re
import threading

import pytest
from django.core import mail
from django.db import connection
from django.test import Client, TestCase

from accounts.models import Membership, MembershipStatus, User
from rbac.guard import access_for_user
from rbac.policies import member_add, policy_update
from scim.models import ScimUser
from tests.factories import PASSWORD, MemberFactory, UserFactory, sign_in
from tests.helpers import audit_events as _events
from tests.helpers import events_since as _events_since
from tests.helpers import last_seq as _last_seq
from tests.scim.conftest import BASE, scim_for, user_body

STRONG = "another long passphrase 7 for SCIM"


def _login(email: str, password: str):
    return Client().post("/login/", {"email": email, "password": password})


@pytest.mark.django_db
def test_scim_cannot_set_the_password_of_an_account_it_did_not_create(scim):
    owner = scim.owner.user
    owner.set_password(PASSWORD)
    owner.save()
    created = scim.post("/Users", user_body(owner.email, password=STRONG))
    assert created.status_code == 201  # linked to the existing membership...
    owner.refresh_from_db()
    assert owner.check_password(PASSWORD) and not owner.check_password(STRONG)  # ...but not its password
    assert _events(scim.org, "password.rejected").get().data == {"reasons": ["not_managed_here"]}
    patched = scim.patch(f"/Users/{created.json()['id']}", [{"op": "replace", "path": "password",
                                                            "value": STRONG}])
    assert patched.status_code == 400 and patched.json()["scimType"] == "mutability"
    owner.refresh_from_db()
    assert owner.check_password(PASSWORD)


@pytest.mark.django_db
def test_no_password_oracle_on_an_account_managed_elsewhere(scim):
    victim = MemberFactory()  # someone in another org, with a known password
    victim.user.set_password(PASSWORD)
    victim.user.save()
    created = scim.post("/Users", user_body(victim.user.email)).json()
    answers = [scim.patch(f"/Users/{created['id']}", [{"op": "replace", "path": "password", "value": guess}])
               for guess in (PASSWORD, "wrong guess 1234567890")]
    assert [a.status_code for a in answers] == [400, 400]
    assert answers[0].json() == answers[1].json()
    assert not _events(scim.org, "password.rejected").exists()


@pytest.mark.django_db
def test_an_account_another_org_created_is_released_only_when_the_person_accepts(client):
    org_a, org_b = scim_for(), scim_for()
    response = org_a.post("/Users", user_body("ceo@victim-b.example", password=STRONG))
    assert response.status_code == 201
    user = User.objects.get(email="ceo@victim-b.example")
    assert user.scim_managed_by_id == org_a.org.pk and user.check_password(STRONG)
    browser = sign_in(Client(), user)
    assert browser.get(f"/orgs/{org_a.org.slug}/members/").status_code == 200

    owner_b = access_for_user(user=org_b.owner.user, org_slug=org_b.org.slug)
    with TestCase.captureOnCommitCallbacks(execute=True):
        membership = member_add(access=owner_b, email="ceo@victim-b.example")
    assert membership.status == MembershipStatus.INVITED
    user.refresh_from_db()  # adding the address changes nothing about the account
    assert user.scim_managed_by_id == org_a.org.pk and user.check_password(STRONG)

    token = re.search(r"/invitation/([A-Za-z0-9_-]+)/", mail.outbox[-1].body).group(1)
    accepted = Client().post(f"/invitation/{token}/", {"decision": "accept", "new_password": PASSWORD,
                                                       "new_password_again": PASSWORD})
    assert accepted.status_code == 302
    user.refresh_from_db()
    assert user.scim_managed_by_id is None and user.check_password(PASSWORD)
    assert _login("ceo@victim-b.example", STRONG).status_code != 302
    assert browser.get(f"/orgs/{org_a.org.slug}/members/").status_code == 302  # sessions ended
    entry = _events(org_b.org, "member.account_released").get()
    assert entry.data == {"email": "ceo@victim-b.example", "password_cleared": True, "sessions_revoked": 1}
    # And org A can no longer set it either.
    patched = org_a.patch(f"/Users/{response.json()['id']}", [{"op": "replace", "path": "password",
                                                              "value": STRONG}])
    assert patched.status_code == 400


@pytest.mark.django_db
def test_another_orgs_scim_linking_an_existing_account_invites_the_person():
    org_a, org_b = scim_for(), scim_for()
    org_a.post("/Users", user_body("shared@example.com", password=STRONG))
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert org_b.post("/Users", user_body("shared@example.com")).status_code == 201
    user = User.objects.get(email="shared@example.com")
    assert user.scim_managed_by_id == org_a.org.pk and user.check_password(STRONG)  # untouched
    membership = Membership.objects.for_org(org_b.org).get(user=user)
    assert membership.status == MembershipStatus.INVITED
    assert access_for_user(user=user, org_slug=org_b.org.slug) is None
    assert _events(org_b.org, "invitation.sent").count() == 1
    assert mail.outbox[-1].to == ["shared@example.com"]


@pytest.mark.django_db
def test_this_orgs_password_policy_applies_to_a_password_sent_on_create(scim):
    owner = access_for_user(user=scim.owner.user, org_slug=scim.org.slug)
    policy_update(access=owner, password_min_length=24)
    created = scim.post("/Users", user_body("short@example.com", password="twelve chars"))
    assert created.status_code == 201
    user = ScimUser.objects.for_org(scim.org).get(pk=created.json()["id"]).membership.user
    assert not user.has_usable_password()  # the org's own account: a member, who signs in by reset or SSO
    assert Membership.objects.for_org(scim.org).get(user=user).status == MembershipStatus.ACTIVE
    assert _events(scim.org, "password.rejected").exists()
    created = scim.post("/Users", user_body("long@example.com", password="a" * 4 + STRONG))
    user = ScimUser.objects.for_org(scim.org).get(pk=created.json()["id"]).membership.user
    assert user.has_usable_password()
    assert Membership.objects.for_org(scim.org).get(user=user).status == MembershipStatus.ACTIVE


@pytest.mark.django_db
def test_the_last_owner_cannot_be_deprovisioned_over_scim(scim):
    linked = scim.post("/Users", user_body(scim.owner.user.email)).json()
    for response in (scim.patch(f"/Users/{linked['id']}", [{"op": "replace", "value": {"active": False}}]),
                     scim.delete(f"/Users/{linked['id']}")):
        assert response.status_code == 409, response.content
        assert response.json()["scimType"] == "mutability"
    scim.owner.refresh_from_db()
    assert scim.owner.status == MembershipStatus.ACTIVE and scim.owner.role == "owner"
    assert ScimUser.objects.for_org(scim.org).get(pk=linked["id"]).active is True
    assert _events(scim.org, "access.last_owner_protected").count() == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_of_one_person_never_fail_with_a_500():
    if connection.vendor != "postgresql":
        pytest.skip("race cases run on PostgreSQL (SQLite serialises every writer)")
    scim = scim_for()
    barrier, statuses = threading.Barrier(4), []

    def create(i):
        try:
            barrier.wait()
            response = Client().post(f"{BASE}/Users", user_body("race@example.com", userName=f"race-{i}"),
                                     content_type="application/scim+json",
                                     HTTP_AUTHORIZATION=f"Bearer {scim.token}")
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201, 409, 409, 409]
    assert ScimUser.objects.for_org(scim.org).count() == 1


@pytest.mark.django_db
def test_an_admin_cannot_bring_back_someone_the_directory_deactivated(scim):
    created = scim.post("/Users", user_body("gone@example.com", active=False)).json()
    membership = Membership.objects.for_org(scim.org).get(scim__pk=created["id"])
    assert membership.status == MembershipStatus.DEPROVISIONED
    admin = sign_in(Client(), scim.owner.user)
    response = admin.patch(f"/api/v1/orgs/{scim.org.slug}/members/{membership.pk}", {"status": "active"},
                           content_type="application/json")
    assert response.status_code == 400 and "status" in response.json()["fields"]
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.DEPROVISIONED
    scim.patch(f"/Users/{created['id']}", [{"op": "replace", "path": "active", "value": True}])
    membership.refresh_from_db()
    assert membership.status in (MembershipStatus.ACTIVE, MembershipStatus.INVITED)


@pytest.mark.django_db
def test_once_the_idp_deletes_someone_only_the_directory_brings_them_back(scim):
    created = scim.post("/Users", user_body("left@example.com")).json()
    membership = Membership.objects.for_org(scim.org).get(scim__pk=created["id"])
    assert scim.delete(f"/Users/{created['id']}").status_code == 204
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.DEPROVISIONED and membership.deactivated_by_directory
    admin = sign_in(Client(), scim.owner.user)
    seq = _last_seq(scim.org)
    response = admin.patch(f"/api/v1/orgs/{scim.org.slug}/members/{membership.pk}", {"status": "active"},
                           content_type="application/json")
    assert response.status_code == 400 and response.json()["error"] == "directory_deactivated"
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.DEPROVISIONED
    assert _events_since(scim.org, seq) == []
    # Removing them stays the admins' call; provisioning them again is the directory's.
    again = scim.post("/Users", user_body("left@example.com"))
    assert again.status_code == 201
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.ACTIVE and not membership.deactivated_by_directory


@pytest.mark.django_db
def test_linking_an_existing_account_inactive_leaves_its_sessions_and_account_alone():
    from accounts.models import UserSession

    org_b = scim_for()
    person = UserFactory(password=PASSWORD)  # an account that acts in no org (yet), signed in
    sign_in(Client(), person)
    with TestCase.captureOnCommitCallbacks(execute=True):
        linked = org_b.post("/Users", user_body(person.email, active=False))
    assert linked.status_code == 201
    person.refresh_from_db()
    assert person.is_active and UserSession.objects.filter(user=person).count() == 1
    membership = Membership.objects.for_org(org_b.org).get(user=person)
    assert (membership.status, membership.deactivated_by_directory) == ("invited", True)
    assert not _events(org_b.org, "member.deprovisioned").exists()
    assert org_b.delete(f"/Users/{linked.json()['id']}").status_code == 204
    person.refresh_from_db()
    assert person.is_active and UserSession.objects.filter(user=person).count() == 1


@pytest.mark.django_db
def test_linking_does_not_switch_back_on_an_account_switched_off_elsewhere():
    org_a, org_b = scim_for(), scim_for()
    off = UserFactory(is_active=False)
    MemberFactory(org=org_a.org, user=off, status="deprovisioned")
    assert org_b.post("/Users", user_body(off.email)).status_code == 201
    off.refresh_from_db()
    assert not off.is_active
