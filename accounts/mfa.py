"""Second factors: checking a code (TOTP or a recovery code) for a user.

django-otp computes the codes, but a TOTP code is checked here (`totp_check`), not by
`TOTPDevice.verify_token`: that method compares against the `last_t` it loaded and then saves the
whole row, so parallel requests carrying one code all pass (and a failure's save can even write an
older `last_t` back). `RecoveryCodeDevice` deletes a recovery code once used, by primary key.
django-otp's own throttling slows guessing per device; every failure here also counts against the
account's lockout counter (accounts.lockout), so guessing codes cannot outlast the login lockout.
"""

import time

from django.conf import settings
from django.db.models import F
from django.utils import timezone
from django_otp import device_classes, devices_for_user
from django_otp.oath import TOTP, hotp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import lockout
from accounts.models import RecoveryCodeDevice, WebAuthnCredential
from accounts.policy import user_policy
from audit.actors import Actor
from audit.events import AuditEvent, Outcome
from audit.services import audit_record

CODE_MAX_LENGTH = 64


def method_name(device) -> str:
    if isinstance(device, TOTPDevice):
        return "totp"
    if isinstance(device, RecoveryCodeDevice):
        return "recovery_code"
    if isinstance(device, WebAuthnCredential):
        return "webauthn"
    return type(device).__name__.lower()


def verify_code(user, code: str, *, purpose: str = "login") -> str | None:
    """The method that accepted `code` ("totp" or "recovery_code"), or None. Counts towards lockout."""
    # Recovery codes are shown in lower case; people retype them with spaces, dashes or capitals.
    code = (code or "").strip().replace(" ", "").replace("-", "").lower()
    if not code or len(code) > CODE_MAX_LENGTH:
        return None
    policy = user_policy(user)
    refusal = lockout.reserve_attempt(user.email, policy.lockout_threshold, policy.lockout_minutes)
    if refusal:
        _failure(user, "locked" if refusal.reason == "locked" else refusal.reason)
        return None
    for device in devices_for_user(user, confirmed=True):
        if not hasattr(device, "verify_token"):
            continue
        result = totp_check(device, code) if isinstance(device, TOTPDevice) else (
            ACCEPTED if device.verify_token(code) else REFUSED)
        if result == ACCEPTED:
            audit_record(org=None, actor=Actor.for_user(user), event=AuditEvent.MFA_SUCCEEDED,
                         data={"method": method_name(device)})
            return method_name(device)
        if result == REPLAY:
            audit_record(org=None, actor=Actor.for_user(user), event=AuditEvent.MFA_REPLAY,
                         outcome=Outcome.DENIED, data={"method": "totp"})
    lockout.register_failure(user.email, policy.lockout_threshold, policy.lockout_minutes)
    _failure(user, "bad_code")
    return None


ACCEPTED, REPLAY, REFUSED = "accepted", "replay", "refused"


def totp_check(device: TOTPDevice, code: str) -> str:
    """ACCEPTED, REPLAY (right code, but its time step is already used) or REFUSED.

    Exactly one request may use a time step, on every database: the step is claimed by one
    conditional UPDATE (`... SET last_t = t WHERE pk = ... AND last_t < t`), and only the request
    whose UPDATE changed the row succeeds. No row lock is held while the code is computed, and no
    path saves the whole row, so a stale copy of the device can never move `last_t` back."""
    allowed, _ = device.verify_is_allowed()  # django-otp's per-device back-off
    if not allowed or not (code.isascii() and code.isdigit()):
        return REFUSED
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
    if totp.verify(int(code), device.tolerance, device.last_t + 1):
        step, now = totp.t(), timezone.now()
        claim = {"last_t": step, "last_used_at": now, "throttling_failure_count": 0,
                 "throttling_failure_timestamp": None}
        if getattr(settings, "OTP_TOTP_SYNC", True):
            claim["drift"] = totp.drift
        if TOTPDevice.objects.filter(pk=device.pk, last_t__lt=step).update(**claim) == 1:
            for name, value in claim.items():
                setattr(device, name, value)
            return ACCEPTED
        result = REPLAY  # another request took this time step (or a later one) first
    else:
        result = REPLAY if _is_replay(device, code) else REFUSED
    TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_count=F("throttling_failure_count") + 1,
                                                   throttling_failure_timestamp=timezone.now())
    return result


def _is_replay(device: TOTPDevice, code: str) -> bool:
    """The code is right for the time step the device last accepted: someone is reusing it."""
    if device.last_t < 0:
        return False
    return hotp(device.bin_key, device.last_t, digits=device.digits) == int(code)


def _failure(user, reason: str) -> None:
    audit_record(org=None, actor=Actor.for_user(user), event=AuditEvent.MFA_FAILED,
                 outcome=Outcome.FAILURE, data={"method": "code", "reason": reason})


def has_second_factor(user) -> bool:
    """One query (a UNION over every device table) rather than one per kind of device: this runs
    on every password login."""
    kinds = [model.objects.filter(user=user, confirmed=True).values("user_id") for model in device_classes()]
    return kinds[0].union(*kinds[1:]).exists()
