"""Admin actions on a member's sign-in (B17, D28) and housekeeping that only cleans up."""

from datetime import timedelta

import pytest
from argon2 import PasswordHasher, low_level
from django.core import mail
from django.db import transaction
from django.test import Client, TestCase
from django.utils import timezone

from accounts.models import PasswordResetToken, UserSession
from accounts.reset import reset_link_send
from accounts.tasks import auth_records_cleanup
from audit.actors import Actor
from audit.models import AuditEntry
from tests.factories import PASSWORD, MemberFactory, UserFactory, sign_in
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db


def test_an_admin_sends_a_reset_link_without_ever_seeing_it(org, owner):
    member = MemberFactory(org=org, user=UserFactory(password=PASSWORD))
    with TestCase.captureOnCommitCallbacks(execute=True):  # mail is queued on commit
        response = sign_in(Client(), owner.user).post(
            f"/api/v1/orgs/{org.slug}/members/{member.pk}/send-password-reset")
    assert response.status_code == 202 and response.content == b""
    assert [m.to for m in mail.outbox] == [[member.user.email]]
    assert "/password/reset/" in mail.outbox[0].body
    token = PasswordResetToken.objects.get(user=member.user)
    assert token.token_hash not in mail.outbox[0].body  # only the hash is stored
    entry = AuditEntry.objects.for_org(org).latest("seq")
    assert (entry.event_name, entry.actor_id, entry.data) == (
        "password.reset_requested", str(owner.user.pk), {"delivered": True, "reason": "admin"})


def test_a_viewer_cannot_send_a_reset_link(org):
    viewer = MemberFactory(org=org, role="viewer")
    target = MemberFactory(org=org)
    response = sign_in(Client(), viewer.user).post(
        f"/api/v1/orgs/{org.slug}/members/{target.pk}/send-password-reset")
    assert response.status_code == 403
    assert mail.outbox == [] and not PasswordResetToken.objects.exists()


def test_the_member_page_buttons_sign_out_everywhere(org, owner):
    member = MemberFactory(org=org, user=UserFactory(password=PASSWORD))
    victim = Client()
    assert victim.post("/login/", {"email": member.user.email, "password": PASSWORD}).status_code == 302
    admin = sign_in(Client(), owner.user)
    url = f"/orgs/{org.slug}/members/{member.pk}/security/"
    # First the question, which says what ends; nothing ends until it is answered.
    asked = admin.post(url, {"action": "revoke_sessions"})
    assert asked.status_code == 200
    consequences = asked.content.decode()
    assert f"Sign {member.user.email} out everywhere?" in consequences
    assert f"Their 1 session can no longer act in {org.name}" in consequences
    assert victim.get(f"/api/v1/orgs/{org.slug}/members").status_code == 200
    assert not audit_events(org, "member.sessions_ended").exists()
    response = admin.post(url, {"action": "revoke_sessions", "confirm": "yes"})
    assert response.status_code == 302
    assert victim.get(f"/api/v1/orgs/{org.slug}/members").status_code == 401


def test_login_rehashes_a_password_stored_with_older_parameters(owner):
    # A hash made under older, cheaper Argon2id settings, as an earlier release would have stored.
    older = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1, type=low_level.Type.ID)
    owner.user.password = "argon2" + older.hash(PASSWORD)
    owner.user.save()
    response = Client().post("/login/", {"email": owner.user.email, "password": PASSWORD})
    assert response.status_code == 302
    owner.user.refresh_from_db()
    assert "m=19456,t=2,p=1" in owner.user.password


def test_cleanup_deletes_only_what_has_already_expired(owner):
    now = timezone.now()
    UserSession.objects.create(session_key="a" * 32, session_data="", expire_date=now - timedelta(1))
    UserSession.objects.create(session_key="b" * 32, session_data="", expire_date=now + timedelta(1))
    PasswordResetToken.objects.create(user=owner.user, token_hash="1" * 64, expires_at=now - timedelta(2))
    PasswordResetToken.objects.create(user=owner.user, token_hash="2" * 64, expires_at=now + timedelta(1))
    assert auth_records_cleanup.apply().get() == {"sessions": 1, "reset_links": 1}
    assert list(UserSession.objects.values_list("session_key", flat=True)) == ["b" * 32]


def test_a_reset_link_is_mailed_only_once_its_transaction_commits(org, owner):
    member = MemberFactory(org=org, user=UserFactory(password=PASSWORD))
    with TestCase.captureOnCommitCallbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            reset_link_send(membership=member, actor=Actor.for_user(owner.user))
            raise RuntimeError("the request fails after the link was made")
    assert not mail.outbox and not PasswordResetToken.objects.filter(user=member.user).exists()
    with TestCase.captureOnCommitCallbacks(execute=True):
        reset_link_send(membership=member, actor=Actor.for_user(owner.user))
    assert [m.to for m in mail.outbox] == [[member.user.email]]


def test_signing_out_an_account_this_org_manages_says_its_sessions_end_everywhere(org, owner):
    member = MemberFactory(org=org, user=UserFactory(password=PASSWORD, scim_managed_by=org))
    for _ in range(2):
        assert Client().post("/login/", {"email": member.user.email, "password": PASSWORD}).status_code == 302
    asked = sign_in(Client(), owner.user).post(f"/orgs/{org.slug}/members/{member.pk}/security/",
                                               {"action": "revoke_sessions"})
    assert "so their 2 sessions end at once, in every organization" in asked.content.decode()
    assert UserSession.objects.filter(user=member.user).count() == 2
