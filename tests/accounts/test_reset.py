import hashlib
import json
import re
import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.test import Client, TestCase
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import PasswordResetToken, User, UserSession
from audit.models import AuditEntry
from tests.factories import PASSWORD, MemberFactory, UserFactory

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "lantern orbit ferry 7291 quietly"
LINK = re.compile(r"(https?://[^/\s]+)/password/reset/([A-Za-z0-9_-]+)/")


def _ask(client, email, ip="203.0.113.1", **extra):
    # Mail is queued once the request's transaction commits; the test's own transaction never does.
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post("/password/reset/", {"email": email}, REMOTE_ADDR=ip, **extra)


def _link_in(message) -> tuple[str, str]:
    origin, token = LINK.search(message.body).groups()
    return origin, token


def _token_for(client, user) -> str:
    assert _ask(client, user.email).status_code == 200
    return _link_in(mail.outbox[-1])[1]


def _complete(client, token, password=NEW_PASSWORD):
    """As a browser does: open the mailed link (it moves on to the form page), then send the form."""
    client.get(f"/password/reset/{token}/")
    data = {"new_password": password, "new_password_again": password}
    return client.post("/password/reset/new/", data)


def _events(name):
    return list(AuditEntry.objects.unscoped().filter(event_name=name).order_by("seq"))


def _last(name):
    return AuditEntry.objects.unscoped().filter(event_name=name).latest("ts")


def _login(client, user, password=PASSWORD):
    return client.post("/login/", {"email": user.email, "password": password})


def test_the_login_page_links_to_the_reset_page_and_a_malformed_address_is_refused(client):
    assert b'href="/password/reset/"' in client.get("/login/").content
    assert client.get("/password/reset/").status_code == 200
    response = _ask(client, "not an address")
    assert response.status_code == 400 and b"field-error" in response.content
    assert not mail.outbox and not _events("password.reset_requested")


def test_the_answer_is_identical_for_known_and_unknown_addresses_and_only_one_gets_mail(client):
    user = UserFactory(password=PASSWORD)
    known = _ask(client, user.email.upper())
    unknown = _ask(Client(), "nobody@example.com")
    assert known.status_code == unknown.status_code == 200
    assert known.content == unknown.content
    assert [m.to for m in mail.outbox] == [[user.email]]
    assert [(e.outcome, e.target_id, e.data) for e in _events("password.reset_requested")] == [
        ("success", str(user.pk), {"delivered": True, "reason": "sent"}),
        ("success", "", {"delivered": False, "reason": "unknown_account"})]


def test_an_invited_user_without_a_password_may_use_reset_but_an_inactive_one_gets_no_mail(client):
    invited = UserFactory()  # unusable password: set the first one through the link
    inactive = UserFactory(password=PASSWORD, is_active=False)
    _ask(client, invited.email)
    response = _ask(client, inactive.email)
    assert response.status_code == 200 and b"Check your email" in response.content
    assert [m.to for m in mail.outbox] == [[invited.email]]
    assert not PasswordResetToken.objects.filter(user=inactive).exists()
    assert _last("password.reset_requested").data == {"delivered": False, "reason": "unknown_account"}


def test_the_database_and_the_audit_log_hold_only_a_hash_of_the_token(client):
    user = UserFactory(password=PASSWORD)
    token = _token_for(client, user)
    stored = PasswordResetToken.objects.values().get(user=user)
    assert token not in json.dumps(stored, default=str)
    assert stored["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert stored["expires_at"] - stored["created_at"] == timedelta(minutes=30)
    assert not AuditEntry.objects.unscoped().filter(data__icontains=token).exists()


def test_a_forged_host_header_does_not_change_the_link(client, settings):
    settings.ALLOWED_HOSTS = ["*"]
    settings.USE_X_FORWARDED_HOST = True
    settings.IAM_CANONICAL_ORIGIN = "https://iam.example.com"
    user = UserFactory(password=PASSWORD)
    _ask(client, user.email, HTTP_HOST="evil.example", HTTP_X_FORWARDED_HOST="evil2.example")
    origin, _ = _link_in(mail.outbox[0])
    assert origin == "https://iam.example.com"
    assert "evil" not in mail.outbox[0].body


def test_reset_ends_every_session_notifies_and_logs_nobody_in(client, django_capture_on_commit_callbacks):
    member = MemberFactory(user=UserFactory(password=PASSWORD))
    user, members_url = member.user, f"/api/v1/orgs/{member.org.slug}/members"
    old = Client()
    _login(old, user)
    assert old.get(members_url).status_code == 200
    token = _token_for(client, user)
    link = client.get(f"/password/reset/{token}/")
    assert link.status_code == 302 and link["Location"] == "/password/reset/new/"
    assert link["Referrer-Policy"] == "no-referrer"
    page = client.get(link["Location"])
    assert page.status_code == 200 and page["Referrer-Policy"] == "same-origin"
    with django_capture_on_commit_callbacks(execute=True):
        response = _complete(client, token)
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert old.get(members_url).status_code == 401
    assert "_auth_user_id" not in client.session
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD) and not user.sessions.exists()
    assert mail.outbox[-1].to == [user.email] and "was changed" in mail.outbox[-1].subject
    assert _last("password.reset_completed").data == {"sessions_revoked": 1}
    assert _last("password.changed").data == {"sessions_revoked": 1, "reason": "reset"}


def test_login_after_a_reset_still_asks_for_the_second_factor(client):
    user = UserFactory(password=PASSWORD)
    TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    assert _complete(client, _token_for(client, user)).status_code == 302
    response = _login(Client(), user, NEW_PASSWORD)
    assert response.status_code == 302 and response["Location"].startswith("/login/mfa/")


def test_a_token_used_twice_is_rejected(client):
    user = UserFactory(password=PASSWORD)
    token = _token_for(client, user)
    assert _complete(client, token).status_code == 302
    second = _complete(client, token, "another fine passphrase 5512")
    assert second.status_code == 400 and b"expired or has already been used" in second.content
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert _last("password.reset_rejected").data == {"reason": "used"}
    assert len(_events("password.reset_completed")) == 1


def test_a_token_past_its_ttl_is_rejected_and_left_unused(client):
    user = UserFactory(password=PASSWORD)
    token = _token_for(client, user)
    PasswordResetToken.objects.filter(user=user).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get(f"/password/reset/{token}/").status_code == 400
    assert _last("password.reset_rejected").data == {"reason": "expired"}
    response = _complete(client, token)
    assert response.status_code == 400
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    assert PasswordResetToken.objects.get(user=user).used_at is None
    assert len(_events("password.reset_rejected")) == 2


def test_an_unknown_token_is_rejected(client):
    response = client.get("/password/reset/not-a-real-token/")
    assert response.status_code == 400 and b"expired or has already been used" in response.content
    assert _last("password.reset_rejected").data == {"reason": "unknown"}
    assert _last("password.reset_rejected").actor_type == "anonymous"


def test_a_newer_link_supersedes_the_older_one(client):
    user = UserFactory(password=PASSWORD)
    first, second = _token_for(client, user), _token_for(client, user)
    assert _complete(client, first).status_code == 400
    assert _last("password.reset_rejected").data == {"reason": "expired"}
    assert _complete(client, second).status_code == 302


def test_a_refused_password_shows_why_and_does_not_consume_the_link(client):
    user = UserFactory(password=PASSWORD)
    token = _token_for(client, user)
    response = _complete(client, token, "password")
    assert response.status_code == 400 and b"field-error" in response.content
    assert PasswordResetToken.objects.get(user=user).used_at is None
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    assert _last("password.rejected").outcome == "denied"
    assert not _events("password.reset_completed")
    assert _complete(client, token).status_code == 302


def test_twenty_requests_for_one_account_send_at_most_three_mails(client):
    user = UserFactory(password=PASSWORD)
    # From many addresses, so only the per-account limit is in play: the answer never changes.
    responses = [_ask(client, user.email, ip=f"198.51.100.{i}") for i in range(20)]
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    assert len(mail.outbox) == 3
    assert PasswordResetToken.objects.filter(user=user).count() == 3
    denied = [e for e in _events("password.reset_requested") if e.outcome == "denied"]
    assert len(denied) == 17 and {e.data["delivered"] for e in denied} == {False}
    assert {e.data["reason"] for e in denied} == {"account_limit"}


def test_one_client_ip_is_throttled_with_retry_after(client):
    users = UserFactory.create_batch(12, password=None)
    responses = [_ask(client, u.email) for u in users]
    assert [r.status_code for r in responses] == [200] * 10 + [429] * 2
    assert int(responses[-1]["Retry-After"]) > 0
    assert len(mail.outbox) == 10
    assert not PasswordResetToken.objects.filter(user__in=users[10:]).exists()
    assert _last("password.reset_requested").outcome == "denied"


class _BrokenCache:
    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise ConnectionError("cache down")

        return fail


def test_an_unreachable_cache_fails_closed(client, monkeypatch):
    monkeypatch.setattr("accounts.reset.cache", _BrokenCache())
    user = UserFactory(password=PASSWORD)
    response = _ask(client, user.email)
    assert response.status_code == 503
    assert not mail.outbox and not PasswordResetToken.objects.exists()
    assert _last("login.unavailable").data == {"reason": "reset_store_unreachable"}


@pytest.mark.django_db(transaction=True)
def test_parallel_redemption_of_one_token_succeeds_exactly_once():
    if connection.vendor == "sqlite":
        pytest.skip("SQLite's shared in-memory test database serialises writers with table locks that "
                    "error instead of waiting; the race is exercised on PostgreSQL")
    user = User.objects.create_user("racer@example.com", PASSWORD)
    token = _token_for(Client(), user)
    barrier, statuses = threading.Barrier(10), []

    def redeem(i):
        try:
            barrier.wait()
            statuses.append(_complete(Client(), token, f"{NEW_PASSWORD} {i}").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=redeem, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [302] + [400] * 9
    assert len(_events("password.reset_completed")) == 1
    assert len(_events("password.reset_rejected")) == 9
    assert user.password_history.count() == 1


def test_the_link_leaves_its_address_at_once_and_the_session_keeps_only_its_hash(client):
    user = UserFactory(password=PASSWORD)
    token = _token_for(client, user)
    link = client.get(f"/password/reset/{token}/")
    assert link.status_code == 302 and link["Location"] == "/password/reset/new/"
    assert "no-store" in link["Cache-Control"]
    stored = dict(client.session.items())  # what the session row holds, decoded
    assert UserSession.objects.filter(session_key=client.session.session_key).exists()
    assert token not in json.dumps(stored)
    assert stored["iam_reset_link"] == hashlib.sha256(token.encode()).hexdigest()
    # The address that holds the secret takes no form: the browser's form posts to the page.
    posted = client.post(f"/password/reset/{token}/", {"new_password": NEW_PASSWORD,
                                                       "new_password_again": NEW_PASSWORD})
    assert posted.status_code == 405
    user.refresh_from_db()
    assert user.check_password(PASSWORD) and PasswordResetToken.objects.get(user=user).used_at is None


def test_the_form_page_without_an_opened_link_changes_nothing(client):
    user = UserFactory(password=PASSWORD)
    _token_for(client, user)  # a link exists, but this browser never opened it
    for response in (client.get("/password/reset/new/"),
                     client.post("/password/reset/new/", {"new_password": NEW_PASSWORD,
                                                          "new_password_again": NEW_PASSWORD})):
        assert response.status_code == 400 and b"expired or has already been used" in response.content
    user.refresh_from_db()
    assert user.check_password(PASSWORD) and PasswordResetToken.objects.get(user=user).used_at is None
    assert not _events("password.reset_completed") and not _events("password.reset_rejected")


def test_the_csrf_check_accepts_the_form_pages_own_origin_and_refuses_null(settings):
    settings.IAM_CANONICAL_ORIGIN = "http://testserver"
    user = UserFactory(password=PASSWORD)
    token = _token_for(Client(), user)
    client = Client(enforce_csrf_checks=True)
    client.get(f"/password/reset/{token}/")
    page = client.get("/password/reset/new/")
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    data = {"new_password": NEW_PASSWORD, "new_password_again": NEW_PASSWORD, "csrfmiddlewaretoken": csrf}
    # What a browser sends from a no-referrer page: refused, and nothing changes.
    assert client.post("/password/reset/new/", data, HTTP_ORIGIN="null").status_code == 403
    assert PasswordResetToken.objects.get(user=user).used_at is None
    # What it sends from a same-origin page.
    assert client.post("/password/reset/new/", data, HTTP_ORIGIN="http://testserver").status_code == 302
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
