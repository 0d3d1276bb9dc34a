"""Events about a person's own account belong in the log of every org the person acts in, as well
as on the platform chain: their admins and auditors see who signs in, fails to, re-authenticates,
enrols a factor or loses a session. An org that only invited them sees nothing."""

import pytest
from django.test import Client, TestCase

from audit.models import AuditEntry
from tests.factories import PASSWORD, MemberFactory, OrgFactory, UserFactory, sign_in

pytestmark = pytest.mark.django_db


def _names(org):
    return list(AuditEntry.objects.for_org(org).order_by("seq").values_list("event_name", flat=True))


@pytest.fixture
def person():
    user = UserFactory(password=PASSWORD)
    first, second, inviting = OrgFactory(), OrgFactory(), OrgFactory()
    for org in (first, second):
        MemberFactory(org=org, user=user)
    MemberFactory(org=inviting, user=user, status="invited")
    return user, first, second, inviting


def test_sign_ins_and_failed_sign_ins_are_in_every_org_the_person_acts_in(person):
    user, first, second, inviting = person
    # The orgs' copies of a failed sign-in are queued after the request commits (timing must not
    # tell how many orgs an account is in); the test's own transaction never commits.
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert Client().post("/login/", {"email": user.email, "password": "wrong"}).status_code == 401
    assert Client().post("/login/", {"email": user.email, "password": PASSWORD}).status_code == 302
    for org in (first, second):
        assert _names(org) == ["login.failure", "login.success"]
        failure = AuditEntry.objects.for_org(org).get(event_name="login.failure")
        assert (failure.actor_type, failure.target_id, failure.outcome) == ("anonymous", str(user.pk),
                                                                            "failure")
        assert failure.data == {"reason": "bad_credentials", "method": "password"}
        assert failure.ip == "127.0.0.1"  # the request's context travels with the queued copy
    assert _names(inviting) == []
    platform = AuditEntry.objects.unscoped().filter(org__isnull=True)
    assert list(platform.order_by("seq").values_list("event_name", flat=True)) == [
        "login.failure", "login.success", "session.created"]


def test_an_unknown_address_is_the_platforms_alone(person):
    _, first, second, _ = person
    Client().post("/login/", {"email": "nobody@example.com", "password": "wrong"})
    assert _names(first) == _names(second) == []
    assert AuditEntry.objects.unscoped().filter(org__isnull=True, event_name="login.failure").exists()


def test_reauth_factor_enrolment_and_session_revocation_reach_the_orgs_too(person):
    from django_otp.oath import TOTP
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from accounts.factors import totp_device_confirm

    user, first, _, inviting = person
    client = sign_in(Client(), user, auth_age=3600)
    assert client.post("/reauth/", {"password": PASSWORD}).status_code == 302
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=False)
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    assert totp_device_confirm(user=user, device_id=device.pk, code=str(totp.token()).zfill(6)) is not None
    other = sign_in(Client(), user)
    from accounts.services import sessions_revoke
    sessions_revoke(user=user, reason="test")
    assert other.get(f"/api/v1/orgs/{first.slug}/members").status_code in (401, 403)
    assert _names(first) == ["reauth.success", "mfa.enrolled", "session.revoked"]
    assert _names(inviting) == []
