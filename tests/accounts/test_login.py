"""Password login and lockout (SECURITY_CASES A1-A11, Q93): response, no change, audit event."""

import re
import statistics
import time

import pytest
from django.db import connection
from django.test import Client, override_settings
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.passwords import IamArgon2Hasher
from audit.models import AuditEntry
from tests.factories import PASSWORD, MemberFactory, UserFactory
from tests.helpers import in_parallel

pytestmark = pytest.mark.django_db


def _login(client, email, password, **extra):
    return client.post("/login/", {"email": email, "password": password}, **extra)


def _platform(name):
    return AuditEntry.objects.unscoped().filter(org=None, event_name=name)


def _page(response, email):
    """The page without what legitimately differs: the CSRF token and the echoed email."""
    body = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", response.content.decode())
    return body.replace(email, "EMAIL")


@pytest.fixture
def user(db):
    return UserFactory(password=PASSWORD)


@pytest.fixture
def hash_calls(monkeypatch):
    """Counts Argon2 work (verify and hash) without changing it."""
    calls = []
    verify, encode = IamArgon2Hasher.verify, IamArgon2Hasher.encode

    def counting_verify(self, password, encoded):
        calls.append("verify")
        return verify(self, password, encoded)

    def counting_encode(self, password, salt):
        calls.append("encode")
        return encode(self, password, salt)

    monkeypatch.setattr(IamArgon2Hasher, "verify", counting_verify)
    monkeypatch.setattr(IamArgon2Hasher, "encode", counting_encode)
    return calls


def test_threshold_wrong_passwords_lock_the_account_even_for_the_right_one(client, user):
    for _ in range(5):
        assert _login(client, user.email, "wrong password").status_code == 401
    response = _login(client, user.email, PASSWORD)
    assert response.status_code == 401
    assert "Email or password is incorrect." in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert _platform("login.locked").count() == 1
    assert _platform("login.failure").latest("seq").data == {"reason": "locked", "method": "password"}


def test_unknown_and_known_users_get_the_same_answer_at_the_same_cost(client, user, hash_calls):
    known = _login(client, user.email, "wrong password")
    unknown = _login(Client(), "nobody@example.com", "wrong password")
    assert (known.status_code, unknown.status_code) == (401, 401)
    assert _page(known, user.email) == _page(unknown, "nobody@example.com")
    assert hash_calls == ["verify", "encode"]  # one Argon2 operation each
    # Alternating samples, compared by their medians: other work on the machine slows both alike
    # instead of whichever happened to run during a burst. Three stay under the lockout threshold.
    timings = {"known": [], "unknown": []}
    for i in range(3):
        for label, email in (("known", user.email), ("unknown", f"nobody{i}@example.com")):
            started = time.perf_counter()
            _login(Client(), email, "another wrong one")
            timings[label].append(time.perf_counter() - started)
    assert abs(statistics.median(timings["known"]) - statistics.median(timings["unknown"])) < 0.05


@override_settings(IAM_LOGIN_IP_LIMIT=5)
def test_forwarded_for_from_an_untrusted_peer_does_not_escape_the_ip_counter(client):
    # Each guess names another address in X-Forwarded-For and another account, so only the per-IP
    # counter can stop it, and only if the header from an untrusted peer is ignored.
    users = [UserFactory(password=PASSWORD) for _ in range(5)]
    for i, user in enumerate(users):
        _login(Client(), user.email, "wrong", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}")
    response = _login(client, "sprayed@example.com", "wrong", HTTP_X_FORWARDED_FOR="203.0.113.1")
    assert response.status_code == 429
    assert {e.ip for e in _platform("login.failure")} == {"127.0.0.1"}


@override_settings(IAM_LOGIN_IP_LIMIT=20)
def test_spraying_one_password_over_many_accounts_is_throttled_per_ip(client):
    users = [UserFactory(password=PASSWORD) for _ in range(20)]
    statuses = [_login(Client(), u.email, "Winter2026!").status_code for u in users]
    assert statuses == [401] * 20
    response = _login(client, "sprayed-next@example.com", "Winter2026!")
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert _platform("login.throttled").latest("seq").data["scope"] == "ip"
    # The accounts themselves are not locked: from another address the right password works.
    other_ip = Client(REMOTE_ADDR="192.0.2.55")
    assert _login(other_ip, users[0].email, PASSWORD).status_code == 302


def test_a_right_password_with_failed_second_factor_does_not_reset_the_counter(client, user):
    TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    for _ in range(2):
        assert _login(Client(), user.email, PASSWORD).status_code == 302  # to the MFA step
    mfa = Client()
    assert _login(mfa, user.email, PASSWORD)["Location"].startswith("/login/mfa/")
    for _ in range(2):
        assert mfa.post("/login/mfa/", {"code": "000000"}).status_code == 401
    # 3 password steps + 2 bad codes = threshold: now even the right password is refused.
    assert _login(client, user.email, PASSWORD).status_code == 401
    assert _platform("login.locked").exists()


def test_a_64_character_password_works_and_a_huge_one_is_refused_before_hashing(hash_calls):
    long_password = "correct horse battery staple " * 2 + "abcdef"
    assert len(long_password) == 64
    user = UserFactory(password=long_password)
    hash_calls.clear()
    assert _login(Client(), user.email, long_password).status_code == 302
    hash_calls.clear()
    started = time.perf_counter()
    response = _login(Client(), user.email, "x" * 1_000_000)
    assert response.status_code == 400
    assert time.perf_counter() - started < 1.0
    assert hash_calls == []
    assert _platform("login.failure").latest("seq").data["reason"] == "password_too_long"


@pytest.mark.parametrize("email,password", [("a\x00@example.com", "x"), ("a@example.com", "pa\x00ss")])
def test_nul_bytes_are_refused_with_400(client, email, password):
    response = _login(client, email, password)
    assert response.status_code == 400
    assert "_auth_user_id" not in client.session


def test_invalid_utf8_is_refused_without_a_traceback(client, user):
    body = b"email=" + user.email.encode() + b"&password=%FF%FE"
    response = client.post("/login/", body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert b"Traceback" not in response.content


def test_an_inactive_users_right_password_gets_the_generic_answer(client, user):
    user.is_active = False
    user.save()
    response = _login(client, user.email, PASSWORD)
    assert response.status_code == 401
    assert "Email or password is incorrect." in response.content.decode()
    assert _platform("login.failure").latest("seq").data["reason"] == "inactive"


def test_login_without_csrf_or_from_a_foreign_origin_is_refused(user):
    strict = Client(enforce_csrf_checks=True)
    assert _login(strict, user.email, PASSWORD).status_code == 403
    strict.get("/login/")
    token = strict.cookies["csrftoken"].value
    foreign = strict.post("/login/", {"email": user.email, "password": PASSWORD,
                                      "csrfmiddlewaretoken": token},
                          HTTP_ORIGIN="https://evil.example", HTTP_HOST="127.0.0.1:8000")
    assert foreign.status_code == 403
    assert "_auth_user_id" not in strict.session


@override_settings(CACHES={"default": {
    "BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:1/0",
    "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2}}})
def test_an_unreachable_lockout_store_fails_closed(client, user):
    response = _login(client, user.email, PASSWORD)
    assert response.status_code == 503
    assert "_auth_user_id" not in client.session
    assert _platform("login.unavailable").exists()


@pytest.mark.django_db(transaction=True)
def test_fifty_parallel_wrong_passwords_verify_at_most_the_threshold(hash_calls):
    if connection.vendor != "postgresql":
        pytest.skip("race cases run on PostgreSQL (SQLite serialises every writer)")
    user = UserFactory(password=PASSWORD)
    MemberFactory(user=user)  # default policy: threshold 5
    statuses = in_parallel(50, lambda i: _login(Client(), user.email, "wrong password").status_code)
    assert len(statuses) == 50
    assert hash_calls.count("verify") <= 5
    assert _login(Client(), user.email, PASSWORD).status_code == 401  # locked


def test_backoff_makes_quick_retries_wait(client, user, settings):
    settings.IAM_LOGIN_BACKOFF_BASE_SECONDS = 1
    assert _login(client, user.email, "wrong").status_code == 401
    assert _login(client, user.email, "wrong").status_code == 401  # first failure: no wait
    response = _login(client, user.email, PASSWORD)
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    time.sleep(2.1)
    assert _login(client, user.email, PASSWORD).status_code == 302


def test_a_completed_login_clears_the_counter(client, user):
    for _ in range(4):
        _login(Client(), user.email, "wrong")
    assert _login(client, user.email, PASSWORD).status_code == 302
    for _ in range(4):
        _login(Client(), user.email, "wrong")
    assert _login(Client(), user.email, PASSWORD).status_code == 302


# --- the current password on /account/password/ is a login password too ---------------------------

CHANGE = {"new_password": "a fresh and long passphrase 7"}


def _signed_in(user) -> Client:
    client = Client()
    assert _login(client, user.email, PASSWORD).status_code == 302
    return client


def _change(client, current):
    return client.post("/account/password/", {"current_password": current, **CHANGE})


def _reauth_failures():
    return list(_platform("reauth.failure").order_by("seq").values_list("data", flat=True))


def test_wrong_current_passwords_lock_the_account_and_the_page_says_wait(user):
    client = _signed_in(user)
    before = user.password
    assert [_change(client, "wrong").status_code for _ in range(4)] == [400] * 4
    locking = _change(client, "wrong")
    assert locking.status_code == 429 and int(locking["Retry-After"]) > 0
    assert "Too many attempts" in locking.content.decode()
    right = _change(client, PASSWORD)  # even the right one, while locked
    assert right.status_code == 429 and int(right["Retry-After"]) > 0
    user.refresh_from_db()
    assert user.password == before and not _platform("password.changed").exists()
    assert _reauth_failures() == [{"method": "password", "reason": "mismatch"}] * 4 + [
        {"method": "password", "reason": "locked"}] * 2
    assert _platform("login.locked").get().data["reason"] == "threshold"
    # It is the account's lockout: signing in elsewhere is refused too.
    assert _login(Client(), user.email, PASSWORD).status_code == 401


def test_wrong_current_passwords_and_wrong_logins_share_one_counter(user):
    client = _signed_in(user)
    for _ in range(3):
        assert _login(Client(), user.email, "wrong").status_code == 401
    assert _change(client, "wrong").status_code == 400
    assert _change(client, "wrong").status_code == 429
    assert _platform("login.locked").count() == 1
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_quick_retries_of_the_current_password_back_off(user, settings):
    settings.IAM_LOGIN_BACKOFF_BASE_SECONDS = 1
    client = _signed_in(user)
    assert _change(client, "wrong").status_code == 400
    assert _change(client, "wrong").status_code == 400  # the first failure is free; now wait 1 s
    response = _change(client, PASSWORD)
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1
    assert _reauth_failures()[-1] == {"method": "password", "reason": "backoff"}
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    time.sleep(2.1)
    assert _change(client, PASSWORD).status_code == 302


def test_a_right_current_password_clears_the_counter(user):
    client = _signed_in(user)
    for _ in range(4):
        assert _change(client, "wrong").status_code == 400
    assert _change(client, PASSWORD).status_code == 302
    for _ in range(4):
        assert _login(Client(), user.email, "wrong").status_code == 401
    assert _login(Client(), user.email, CHANGE["new_password"]).status_code == 302


@override_settings(CACHES={"default": {
    "BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:1/0",
    "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2}}})
def test_the_password_page_fails_closed_without_the_lockout_store(user):
    client = Client()
    client.force_login(user)
    before = user.password
    response = _change(client, PASSWORD)
    assert response.status_code == 503
    user.refresh_from_db()
    assert user.password == before and not _platform("password.changed").exists()
