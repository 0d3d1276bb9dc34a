"""Second factors: TOTP and recovery codes at login, enrollment and removal (SECURITY_CASES C18-C22).
Passkeys (C24) are in test_passkeys.py."""

import re
import time

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import lockout, mfa
from accounts.login_flow import AUTH_TIME_KEY
from accounts.models import RecoveryCode, RecoveryCodeDevice, SecurityPolicy, WebAuthnCredential
from audit.models import AuditEntry
from core.secrets import secret_hash
from tests.factories import PASSWORD, MemberFactory, OrgFactory, UserFactory
from tests.helpers import in_parallel

pytestmark = pytest.mark.django_db


def events(name):
    return AuditEntry.objects.for_org(None).filter(event_name=name)


def current_code(device: TOTPDevice) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


def totp_device(user) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)


def password_step(user, client=None) -> Client:
    client = client or Client()
    response = client.post("/login/", {"email": user.email, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == reverse("accounts:mfa-verify")
    return client


def signed_in(user, *, fresh=True) -> Client:
    client = Client()
    client.force_login(user)
    session = client.session
    session[AUTH_TIME_KEY] = time.time() - (0 if fresh else 3600)
    session.save()
    return client


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


@pytest.fixture
def member(db):
    return MemberFactory(org=OrgFactory(), role="owner", user=UserFactory(password=PASSWORD))


@pytest.fixture
def user(member):
    return member.user


# --- the code step at login --------------------------------------------------------------------


def test_a_correct_totp_code_completes_the_login(user):
    device = totp_device(user)
    client = password_step(user)
    response = client.post("/login/mfa/", {"code": current_code(device)})
    assert response.status_code == 302 and logged_in(client)
    assert events("mfa.success").get().data == {"method": "totp"}
    assert events("login.success").get().data == {"method": "password+totp"}


def test_c18_the_same_totp_code_twice_is_refused_the_second_time(user):
    device = totp_device(user)
    code = current_code(device)
    first = password_step(user)
    assert first.post("/login/mfa/", {"code": code}).status_code == 302
    second = password_step(user)
    response = second.post("/login/mfa/", {"code": code})
    assert response.status_code == 401
    assert "That code is not valid" in response.content.decode()
    assert not logged_in(second)
    assert events("mfa.replay").get().data == {"method": "totp"}
    assert events("mfa.failure").get().data == {"method": "code", "reason": "bad_code"}


def test_c19_ten_wrong_codes_lock_the_account_and_the_password_step_does_not_reset_it(user):
    device = totp_device(user)
    client = password_step(user)
    for _ in range(10):
        assert client.post("/login/mfa/", {"code": "000000"}).status_code == 401
    assert lockout.is_locked(user.email) > 0
    # The password again: refused while locked, and it does not clear the counters.
    again = Client()
    assert again.post("/login/", {"email": user.email, "password": PASSWORD}).status_code == 401
    response = client.post("/login/mfa/", {"code": current_code(device)})
    assert response.status_code == 401 and not logged_in(client)
    assert TOTPDevice.objects.get(pk=device.pk).last_t == device.last_t  # the code was never checked
    # Threshold 5 counts verifications: the password was one, so four codes were checked.
    reasons = list(events("mfa.failure").order_by("seq").values_list("data__reason", flat=True))
    assert reasons == ["bad_code"] * 4 + ["locked"] * 7


def test_c20_a_pending_session_reaches_neither_the_api_nor_the_pages(user, member):
    totp_device(user)
    client = password_step(user)
    org = member.org.slug
    api = client.get(f"/api/v1/orgs/{org}/members/")
    assert api.status_code == 401
    page = client.get(f"/orgs/{org}/members/")
    assert page.status_code == 302 and page["Location"].startswith(reverse("accounts:login"))
    assert not logged_in(client)
    assert not events("login.success").exists()


def test_a_recovery_code_works_once(user):
    totp_device(user)
    recovery = RecoveryCodeDevice.objects.create(user=user, name="Recovery codes")
    digest, kid = secret_hash("abcd23456x")
    RecoveryCode.objects.create(device=recovery, code_hash=digest, hash_kid=kid)
    client = password_step(user)
    assert client.post("/login/mfa/", {"code": "ABCD2-3456X"}).status_code == 302
    again = password_step(user)
    assert again.post("/login/mfa/", {"code": "abcd23456x"}).status_code == 401
    assert not logged_in(again)
    assert [e.data for e in events("mfa.success")] == [{"method": "recovery_code"}]


# --- enrolling an authenticator app ------------------------------------------------------------


def test_totp_enrollment_shows_a_qr_code_and_confirms_with_a_current_code(user):
    client = signed_in(user)
    page = client.get("/account/mfa/totp/")
    body = page.content.decode()
    assert page.status_code == 200 and "<svg" in body and "<img" not in body
    assert "no-store" in page["Cache-Control"]
    device = TOTPDevice.objects.get(user=user)
    assert not device.confirmed
    response = client.post("/account/mfa/totp/?next=/orgs/x/members/", {"code": current_code(device)})
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:mfa-recovery-codes") + "?next=%2Forgs%2Fx%2Fmembers%2F"
    device.refresh_from_db()
    assert device.confirmed
    entry = events("mfa.enrolled").get()
    assert entry.data == {"method": "totp", "device": device.pk}
    assert device.key not in str(list(AuditEntry.objects.values_list("data", flat=True)))


def test_totp_enrollment_refuses_a_wrong_code(user):
    client = signed_in(user)
    client.get("/account/mfa/totp/")
    response = client.post("/account/mfa/totp/", {"code": "000000"})
    assert response.status_code == 400
    assert not TOTPDevice.objects.filter(user=user, confirmed=True).exists()
    assert not events("mfa.enrolled").exists()


def test_c21_enrolling_with_a_stale_proof_goes_to_reauth_and_creates_nothing(user):
    client = signed_in(user, fresh=False)
    for response in (client.get("/account/mfa/totp/"), client.post("/account/mfa/totp/", {"code": "1"})):
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("accounts:reauth") + "?next=")
    assert not TOTPDevice.objects.filter(user=user).exists()
    options = client.post("/account/mfa/passkey/options/")
    assert options.status_code == 403 and options.json()["error"] == "reauth_required"
    verify = client.post("/account/mfa/passkey/verify/", {"credential": {}}, content_type="application/json")
    assert verify.status_code == 403 and verify.json()["error"] == "reauth_required"
    assert not WebAuthnCredential.objects.exists()
    actions = sorted(events("reauth.required").values_list("data__action", flat=True))
    assert actions == ["mfa.enroll_totp"] * 2 + ["mfa.enroll_webauthn"] * 2


# --- recovery codes ----------------------------------------------------------------------------


def test_recovery_codes_are_shown_once_and_replace_the_previous_set(user):
    totp_device(user)
    client = signed_in(user)
    first = client.post("/account/mfa/recovery-codes/")
    assert first.status_code == 200 and "no-store" in first["Cache-Control"]
    old = set(RecoveryCode.objects.values_list("code_hash", flat=True))
    second = client.post("/account/mfa/recovery-codes/", {"confirm": "yes"})
    new = set(RecoveryCode.objects.values_list("code_hash", flat=True))
    assert len(old) == len(new) == 10 and not old & new
    shown = re.findall(r"<li>([a-z2-9]{5}-[a-z2-9]{5})</li>", second.content.decode())
    assert {secret_hash(code.replace("-", ""))[0] for code in shown} == new  # only hashes are stored
    assert RecoveryCodeDevice.objects.filter(user=user).count() == 1
    assert [e.data for e in events("mfa.recovery_codes_generated")] == [{"count": 10}] * 2
    assert "no-store" in client.get("/account/mfa/recovery-codes/")["Cache-Control"]


def test_recovery_codes_need_a_first_factor_and_a_fresh_proof(user):
    assert signed_in(user).post("/account/mfa/recovery-codes/").status_code == 400
    totp_device(user)
    stale = signed_in(user, fresh=False).post("/account/mfa/recovery-codes/")
    assert stale.status_code == 302 and stale["Location"].startswith(reverse("accounts:reauth"))
    assert not RecoveryCode.objects.exists()
    assert not events("mfa.recovery_codes_generated").exists()


# --- the Security page and removal -------------------------------------------------------------


def test_security_page_lists_factors(user):
    totp_device(user)
    WebAuthnCredential.objects.create(user=user, name="Work laptop", credential_id="abc", public_key=b"k")
    body = signed_in(user).get(reverse("accounts:mfa-setup")).content.decode()
    assert "Remove authenticator app" in body and "Work laptop" in body and "Add a passkey" in body


CONFIRMED = {"confirm": "yes"}  # what the confirmation page's button sends


def remove_url(kind, device):
    return reverse("accounts:mfa-remove", kwargs={"kind": kind, "pk": device.pk})


def test_c22_the_last_factor_stays_while_an_org_mandates_mfa(user, member):
    SecurityPolicy.objects.create(org=member.org, mfa_required=True)
    device = totp_device(user)
    response = signed_in(user).post(remove_url("totp", device), CONFIRMED)
    assert response.status_code == 409
    assert "requires two-step verification" in response.content.decode()
    assert TOTPDevice.objects.filter(pk=device.pk).exists()
    entry = events("mfa.removed").get()
    assert entry.outcome == "denied" and entry.data == {"method": "totp", "device": device.pk}


def test_c22_removal_needs_a_fresh_proof(user):
    device = totp_device(user)
    response = signed_in(user, fresh=False).post(remove_url("totp", device), CONFIRMED)
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:reauth"))
    assert TOTPDevice.objects.filter(pk=device.pk).exists()
    assert not events("mfa.removed").exists()
    assert events("reauth.required").get().data == {"action": "mfa.remove"}


def test_c22_a_factor_can_go_when_another_remains_or_no_org_mandates_mfa(user, member):
    SecurityPolicy.objects.create(org=member.org, mfa_required=True)
    device = totp_device(user)
    passkey = WebAuthnCredential.objects.create(user=user, name="Key", credential_id="abc", public_key=b"k")
    client = signed_in(user)
    assert client.post(remove_url("totp", device), CONFIRMED).status_code == 302
    assert not TOTPDevice.objects.filter(pk=device.pk).exists()
    assert client.post(remove_url("passkey", passkey), CONFIRMED).status_code == 409
    SecurityPolicy.objects.filter(org=member.org).update(mfa_required=False)
    RecoveryCodeDevice.objects.create(user=user, name="Recovery codes")
    assert client.post(remove_url("passkey", passkey), CONFIRMED).status_code == 302
    assert not WebAuthnCredential.objects.exists() and not RecoveryCodeDevice.objects.exists()
    removed = [(e.outcome, e.data["method"]) for e in events("mfa.removed").order_by("seq")]
    assert removed == [("success", "totp"), ("denied", "webauthn"), ("success", "webauthn"),
                       ("success", "recovery_code")]


def test_another_persons_factor_is_not_found(user):
    other = totp_device(UserFactory())
    assert signed_in(user).post(remove_url("totp", other), CONFIRMED).status_code == 404
    assert TOTPDevice.objects.filter(pk=other.pk).exists()


# --- one time step, one use (C18 under concurrency) --------------------------------------------


def roomy_lockout(member):
    # Twelve password steps and twelve codes stay under the threshold: only the replay rule may refuse.
    SecurityPolicy.objects.create(org=member.org, lockout_threshold=100)


def postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("race cases run on PostgreSQL (SQLite serialises every writer)")


@pytest.mark.django_db(transaction=True)
def test_c18_twelve_parallel_logins_with_one_code_complete_exactly_one(member):
    postgresql_only()
    user = member.user
    roomy_lockout(member)
    device = totp_device(user)
    clients = [password_step(user) for _ in range(12)]
    code = current_code(device)
    statuses = in_parallel(12, lambda i: clients[i].post("/login/mfa/", {"code": code}).status_code)
    assert sorted(statuses) == [302] + [401] * 11
    assert sum(logged_in(c) for c in clients) == 1
    assert events("login.success").count() == events("mfa.success").count() == 1
    # Each loser is refused as a replay, or by django-otp's back-off once a replay was counted.
    assert events("mfa.failure").count() == 11 and events("mfa.replay").exists()
    device.refresh_from_db()
    assert device.last_t >= 0


@pytest.mark.django_db(transaction=True)
def test_c18_twelve_parallel_reauthentications_with_one_code_pass_exactly_one(member):
    postgresql_only()
    user = member.user
    roomy_lockout(member)
    device = totp_device(user)
    clients = [signed_in(user, fresh=False) for _ in range(12)]
    stamps = [c.session[AUTH_TIME_KEY] for c in clients]
    code = current_code(device)
    statuses = in_parallel(12, lambda i: clients[i].post("/reauth/", {"code": code}).status_code)
    assert sorted(statuses) == [302] + [401] * 11
    assert sum(c.session[AUTH_TIME_KEY] != s for c, s in zip(clients, stamps, strict=True)) == 1
    assert events("reauth.success").count() == 1 and events("reauth.failure").count() == 11
    assert events("mfa.failure").count() == 11 and events("mfa.replay").exists()


@pytest.mark.django_db(transaction=True)
def test_c18_parallel_confirmations_of_one_enrollment_enroll_once(member):
    postgresql_only()
    user = member.user
    roomy_lockout(member)
    first = signed_in(user)
    assert first.get("/account/mfa/totp/").status_code == 200
    draft = TOTPDevice.objects.get(user=user)
    clients = [first] + [Client() for _ in range(11)]
    for client in clients[1:]:
        client.cookies["sessionid"] = first.cookies["sessionid"].value  # the same browser, twelve tabs
    code = current_code(draft)
    responses = in_parallel(12, lambda i: clients[i].post("/account/mfa/totp/", {"code": code}))
    codes_page = reverse("accounts:mfa-recovery-codes")
    enrolled = [r for r in responses if r.get("Location", "").startswith(codes_page)]
    assert len(enrolled) == 1
    assert TOTPDevice.objects.filter(user=user, confirmed=True).count() == 1
    assert events("mfa.enrolled").count() == 1
    # The step used to confirm is spent: it does not also sign anyone in.
    client = password_step(user)
    assert client.post("/login/mfa/", {"code": code}).status_code == 401 and not logged_in(client)


def test_c18_a_copy_of_the_device_loaded_before_the_code_was_used_cannot_use_it(user, monkeypatch):
    # The interleaving of two parallel requests, made deterministic: the second one read the device
    # before the first one's code was accepted. This runs on SQLite too.
    device = totp_device(user)
    stale = TOTPDevice.objects.get(pk=device.pk)
    code = current_code(device)
    assert mfa.verify_code(user, code) == "totp"
    step = TOTPDevice.objects.get(pk=device.pk).last_t
    monkeypatch.setattr(mfa, "devices_for_user", lambda user, confirmed: [stale])
    assert mfa.verify_code(user, code) is None
    assert events("mfa.replay").get().data == {"method": "totp"}
    # A wrong code through the stale copy counts against the device but never writes its old
    # last_t back (which would make the used code valid again).
    assert mfa.verify_code(user, "000000" if code != "000000" else "111111") is None
    fresh = TOTPDevice.objects.get(pk=device.pk)
    assert fresh.last_t == step and fresh.throttling_failure_count == 2
    monkeypatch.undo()
    TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_count=0)  # past the back-off
    assert mfa.verify_code(user, code) is None
    assert events("mfa.success").count() == 1


def test_c18_the_same_code_twice_at_reauthentication_is_refused_the_second_time(user):
    device = totp_device(user)
    code = current_code(device)
    first, second = signed_in(user, fresh=False), signed_in(user, fresh=False)
    assert first.post("/reauth/", {"code": code}).status_code == 302
    before = second.session[AUTH_TIME_KEY]
    response = second.post("/reauth/", {"code": code})
    assert response.status_code == 401 and second.session[AUTH_TIME_KEY] == before
    assert events("mfa.replay").get().data == {"method": "totp"}
    assert events("reauth.failure").get().data == {"method": "code", "reason": "mismatch"}


def test_c18_the_code_that_confirmed_an_enrollment_does_not_sign_in(user):
    client = signed_in(user)
    client.get("/account/mfa/totp/")
    draft = TOTPDevice.objects.get(user=user)
    code = current_code(draft)
    assert client.post("/account/mfa/totp/", {"code": code}).status_code == 302
    again = password_step(user)
    response = again.post("/login/mfa/", {"code": code})
    assert response.status_code == 401 and not logged_in(again)
    assert events("mfa.replay").get().data == {"method": "totp"}
    assert not events("login.success").exists()


@pytest.mark.parametrize("code", ["１２３４５６", "²²²²²²", "12 34 56x"])
def test_non_ascii_digits_are_refused_without_an_error(user, code):
    totp_device(user)
    client = password_step(user)
    assert client.post("/login/mfa/", {"code": code}).status_code == 401
    assert events("mfa.failure").get().data == {"method": "code", "reason": "bad_code"}
