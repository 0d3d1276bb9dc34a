"""Passkeys (WebAuthn) as a second factor: registration and assertion ceremonies via py_webauthn.

Security invariants:
- The challenge lives in this session only, names the user and the ceremony, expires after
  CHALLENGE_SECONDS, and is popped *before* anything is verified: one challenge answers at most one
  response, right or wrong, and a response made for another session's challenge matches nothing here.
- RP ID and origin come from settings, never from the request's Host header.
- Login assertions need user verification (PIN or biometric), so a stolen authenticator alone is not
  enough; a sign counter that does not move forward (when either side is non-zero) is refused as a
  possible clone.
- Login failures count against the account lockout exactly like wrong codes (accounts.mfa).
"""

import secrets
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from accounts import lockout
from accounts.models import WebAuthnCredential
from accounts.person_audit import person_record
from accounts.policy import user_policy
from audit.actors import Actor
from audit.events import AuditEvent, Outcome
from audit.services import audit_record

CHALLENGE_KEY = "iam_webauthn_challenge"
CHALLENGE_SECONDS = 120
TIMEOUT_MS = 60_000
RP_NAME = "Agent IAM"
REGISTER, LOGIN = "register", "login"

# py_webauthn raises one exception type per ceremony; its message is the only discriminator. The
# audit reason codes are pinned by tests, so a wording change upstream shows up there.
_REASONS = (
    ("challenge", "challenge"),
    ("origin", "origin"),
    ("RP ID", "rp_id"),
    ("sign count", "sign_count"),
    ("User verification", "user_verification"),
    ("not present", "user_presence"),
    ("signature", "signature"),
)


# DOMException names navigator.credentials.get() rejects with; anything else is recorded as "other".
CLIENT_ERRORS = frozenset({"NotAllowedError", "AbortError", "InvalidStateError", "SecurityError",
                           "NotSupportedError", "UnknownError", "ConstraintError"})


class PasskeyRejected(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RelyingParty:
    id: str
    origin: str


def relying_party() -> RelyingParty:
    origin = settings.IAM_WEBAUTHN_ORIGIN
    rp_id = settings.IAM_WEBAUTHN_RP_ID
    return RelyingParty(rp_id, origin)


def _reason(exc: Exception) -> str:
    text = str(exc)
    return next((code for needle, code in _REASONS if needle in text), "invalid")


# --- challenges ---------------------------------------------------------------------------------


def _challenge_issue(session, user, ceremony: str) -> bytes:
    challenge = secrets.token_bytes(32)
    session[CHALLENGE_KEY] = {"challenge": bytes_to_base64url(challenge), "user": str(user.pk),
                              "ceremony": ceremony, "at": time.time()}
    return challenge


def _challenge_take(session, user, ceremony: str) -> bytes | None:
    stored = session.pop(CHALLENGE_KEY, None)  # single use: gone whatever happens next
    if not stored or stored.get("user") != str(user.pk) or stored.get("ceremony") != ceremony:
        return None
    if time.time() - stored.get("at", 0) > CHALLENGE_SECONDS:
        return None
    return base64url_to_bytes(stored["challenge"])


def _descriptors(user) -> list[PublicKeyCredentialDescriptor]:
    known = {t.value for t in AuthenticatorTransport}
    return [PublicKeyCredentialDescriptor(
                id=base64url_to_bytes(c.credential_id),
                transports=[AuthenticatorTransport(t) for t in c.transports if t in known] or None)
            for c in WebAuthnCredential.objects.filter(user=user, confirmed=True)]


def has_passkey(user) -> bool:
    return WebAuthnCredential.objects.filter(user=user, confirmed=True).exists()


# --- registration -------------------------------------------------------------------------------


def registration_options(*, session, user) -> str:
    """PublicKeyCredentialCreationOptions as JSON, with a fresh challenge kept in the session."""
    options = generate_registration_options(
        rp_id=relying_party().id, rp_name=RP_NAME, user_name=user.email, user_id=user.pk.bytes,
        user_display_name=user.name, challenge=_challenge_issue(session, user, REGISTER), timeout=TIMEOUT_MS,
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.REQUIRED),
        exclude_credentials=_descriptors(user),
    )
    return options_to_json(options)


def registration_verify(*, session, user, credential, name: str) -> WebAuthnCredential:
    """Verify the attestation and store the credential. Raises PasskeyRejected (audited)."""
    challenge = _challenge_take(session, user, REGISTER)
    try:
        if challenge is None:
            raise PasskeyRejected("challenge")
        parsed = _parse(parse_registration_credential_json, credential)
        rp = relying_party()
        try:
            verified = verify_registration_response(
                credential=parsed, expected_challenge=challenge, expected_rp_id=rp.id,
                expected_origin=rp.origin, require_user_verification=True)
        except WebAuthnException as exc:
            raise PasskeyRejected(_reason(exc))
        credential_id = bytes_to_base64url(verified.credential_id)
        if WebAuthnCredential.objects.filter(credential_id=credential_id).exists():
            raise PasskeyRejected("duplicate")
    except PasskeyRejected as exc:
        _audit_failure(user, f"enroll_{exc.reason}")
        raise
    transports = [t.value for t in parsed.response.transports or []]
    return _credential_create(user, credential_id, verified, transports, name)


@transaction.atomic
def _credential_create(user, credential_id, verified, transports, name) -> WebAuthnCredential:
    device = WebAuthnCredential.objects.create(
        user=user, name=(name or "").strip()[:64] or "Passkey", confirmed=True, credential_id=credential_id,
        public_key=verified.credential_public_key, sign_count=verified.sign_count, transports=transports,
        aaguid=str(verified.aaguid or ""))
    person_record(user=user, event=AuditEvent.MFA_ENROLLED, data={"method": "webauthn", "device": device.pk})
    return device


# --- assertion (the second factor at login) -----------------------------------------------------


def authentication_options(*, session, user) -> str:
    options = generate_authentication_options(
        rp_id=relying_party().id, challenge=_challenge_issue(session, user, LOGIN), timeout=TIMEOUT_MS,
        allow_credentials=_descriptors(user), user_verification=UserVerificationRequirement.REQUIRED)
    return options_to_json(options)


def authentication_verify(*, session, user, credential) -> WebAuthnCredential:
    """Verify an assertion for `user`. Raises PasskeyRejected (audited, counted towards lockout)
    or lockout.LoginUnavailable when the lockout store is down."""
    challenge = _challenge_take(session, user, LOGIN)
    policy = user_policy(user)
    refusal = lockout.reserve_attempt(user.email, policy.lockout_threshold, policy.lockout_minutes)
    if refusal:
        _audit_failure(user, refusal.reason)
        raise PasskeyRejected(refusal.reason)
    try:
        if challenge is None:
            raise PasskeyRejected("challenge")
        parsed = _parse(parse_authentication_credential_json, credential)
        stored = WebAuthnCredential.objects.filter(user=user, confirmed=True, credential_id=parsed.id).first()
        if stored is None:
            raise PasskeyRejected("unknown_credential")
        rp = relying_party()
        try:
            verified = verify_authentication_response(
                credential=parsed, expected_challenge=challenge, expected_rp_id=rp.id,
                expected_origin=rp.origin, credential_public_key=bytes(stored.public_key),
                credential_current_sign_count=stored.sign_count, require_user_verification=True)
        except WebAuthnException as exc:
            raise PasskeyRejected(_reason(exc))
        return _assertion_accept(user, stored.pk, verified.new_sign_count)
    except PasskeyRejected as exc:
        lockout.register_failure(user.email, policy.lockout_threshold, policy.lockout_minutes)
        _audit_failure(user, exc.reason)
        raise


def authentication_abandoned(*, session, user, error: str) -> bool:
    """The browser reports that the authenticator refused or the person cancelled (e.g. user
    verification failed on the device, which never reaches us as an assertion). The challenge is
    spent and the refusal audited. It does not count towards the lockout: nothing was verified,
    and four cancelled prompts must not lock a person out. Only an outstanding challenge is
    recorded, so one options request buys at most one audit entry."""
    if _challenge_take(session, user, LOGIN) is None:
        return False
    name = error if error in CLIENT_ERRORS else "other"
    _audit_failure(user, f"client_{name}")
    return True


@transaction.atomic
def _assertion_accept(user, pk: int, new_sign_count: int) -> WebAuthnCredential:
    # Re-read under a row lock: two assertions racing with the same counter cannot both pass.
    device = WebAuthnCredential.objects.select_for_update().get(pk=pk)
    if (device.sign_count or new_sign_count) and new_sign_count <= device.sign_count:
        raise PasskeyRejected("sign_count")
    device.sign_count = new_sign_count
    device.last_used_at = timezone.now()
    device.save(update_fields=["sign_count", "last_used_at"])
    audit_record(org=None, actor=Actor.for_user(user), event=AuditEvent.MFA_SUCCEEDED,
                 data={"method": "webauthn"})
    return device


def _parse(parser, credential):
    try:
        return parser(credential)
    except (WebAuthnException, ValueError, TypeError, KeyError, AttributeError):
        raise PasskeyRejected("malformed")


def _audit_failure(user, reason: str) -> None:
    audit_record(org=None, actor=Actor.for_user(user), event=AuditEvent.MFA_FAILED,
                 outcome=Outcome.FAILURE, data={"method": "webauthn", "reason": reason})
