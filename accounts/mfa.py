"""Second factors: checking a code (TOTP or a recovery code) for a user.

django-otp's devices do the cryptography; `TOTPDevice.verify_token` refuses a code whose time step
was already used (replay), and `RecoveryCodeDevice` deletes a recovery code once used. django-otp's own
throttling slows guessing per device; every failure here also counts against the account's lockout
counter (accounts.lockout), so guessing codes cannot outlast the login lockout.
"""

from django_otp import device_classes, devices_for_user
from django_otp.oath import hotp
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
        if device.verify_token(code):
            audit_record(org=None, actor=Actor.for_user(user), event=AuditEvent.MFA_SUCCEEDED,
                         data={"method": method_name(device)})
            return method_name(device)
        if isinstance(device, TOTPDevice) and _is_replay(device, code):
            audit_record(org=None, actor=Actor.for_user(user), event=AuditEvent.MFA_REPLAY,
                         outcome=Outcome.DENIED, data={"method": "totp"})
    lockout.register_failure(user.email, policy.lockout_threshold, policy.lockout_minutes)
    _failure(user, "bad_code")
    return None


def _is_replay(device: TOTPDevice, code: str) -> bool:
    """The code is right for the time step the device last accepted: someone is reusing it."""
    if device.last_t < 0 or not code.isdigit():
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
