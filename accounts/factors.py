"""A person's second factors: enrolling an authenticator app (TOTP), recovery codes, removing.

Checking a code at login lives in accounts.mfa and passkey ceremonies in accounts.passkeys; this
module holds the writes. Every write is audited with the method and the device id only: a TOTP key
or a recovery code never reaches an audit record or a log line.

"Primary" factors are the ones a person can keep using (TOTP, passkeys). Recovery codes back them
up: they are offered once a primary factor exists, and they go when the last primary factor goes.
"""

import secrets
from dataclasses import dataclass
from typing import Literal

from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.mfa import ACCEPTED, method_name, totp_check
from accounts.models import RecoveryCode, RecoveryCodeDevice, WebAuthnCredential
from accounts.person_audit import person_record
from accounts.policy import policy_for_org
from accounts.selectors import orgs_for_user
from audit.actors import Actor
from audit.events import AuditEvent
from audit.services import audit_record, records_denials
from core.errors import Conflict, DenialAudit, Invalid
from core.secrets import secret_hash

RECOVERY_CODE_COUNT = 10
TOTP_NAME = "Authenticator app"
RECOVERY_NAME = "Recovery codes"
FactorKind = Literal["totp", "passkey", "recovery"]
MODELS = {"totp": TOTPDevice, "passkey": WebAuthnCredential, "recovery": RecoveryCodeDevice}
# No 0/o, 1/l/i: codes are read off paper and typed by hand.
CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


@dataclass(frozen=True)
class Factors:
    totp: list
    passkeys: list
    recovery: RecoveryCodeDevice | None
    recovery_remaining: int

    @property
    def primary(self) -> list:
        return [*self.totp, *self.passkeys]


def factors_for_user(user) -> Factors:
    """The confirmed factors of a user, for the security page and the removal rule."""
    recovery = RecoveryCodeDevice.objects.filter(user=user, confirmed=True).first()
    return Factors(
        totp=list(TOTPDevice.objects.filter(user=user, confirmed=True).order_by("id")),
        passkeys=list(WebAuthnCredential.objects.filter(user=user, confirmed=True).order_by("created_at")),
        recovery=recovery,
        recovery_remaining=recovery.remaining if recovery else 0,
    )


def mfa_mandating_orgs(user) -> list:
    """The orgs the user acts in whose policy requires a second factor."""
    return [org for org in orgs_for_user(user) if policy_for_org(org).mfa_required]


# --- TOTP --------------------------------------------------------------------------------------


def totp_device_pending(*, user, device_id: int | None) -> TOTPDevice:
    """The unconfirmed device this enrollment is showing, or a fresh one (older drafts dropped).

    The key is random (django-otp's default_key, 20 bytes from os.urandom); it is shown to the
    person once per draft and never logged."""
    drafts = TOTPDevice.objects.filter(user=user, confirmed=False)
    device = drafts.filter(pk=device_id).first() if device_id else None
    if device is None:
        drafts.delete()
        device = TOTPDevice.objects.create(user=user, name=TOTP_NAME, confirmed=False)
    return device


@transaction.atomic
def totp_device_confirm(*, user, device_id: int, code: str) -> TOTPDevice | None:
    """Confirm the draft device with a current code from the app; None when the code is wrong.

    The code is checked like a login code (accounts.mfa.totp_check): its time step is claimed by one
    conditional UPDATE, so it cannot be used again, neither by a parallel confirmation nor at the
    next login. The row lock only keeps two confirmations with different codes from both enrolling."""
    device = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=False, pk=device_id).first()
    code = (code or "").strip().replace(" ", "")
    if device is None or totp_check(device, code) != ACCEPTED:
        return None
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    person_record(user=user, event=AuditEvent.MFA_ENROLLED, data={"method": "totp", "device": device.pk})
    return device


# --- recovery codes ----------------------------------------------------------------------------


@records_denials
@transaction.atomic
def recovery_codes_generate(*, user) -> list[str]:
    """Replace the user's recovery codes with 10 new single-use ones, returned once for display."""
    if not factors_for_user(user).primary:
        raise Invalid("Set up an authenticator app or a passkey before recovery codes.",
                      code="no_primary_factor")
    RecoveryCodeDevice.objects.filter(user=user).delete()
    device = RecoveryCodeDevice.objects.create(user=user, name=RECOVERY_NAME, confirmed=True)
    codes = []
    while len(codes) < RECOVERY_CODE_COUNT:
        raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(10))  # ~49 bits each
        if raw not in codes:
            codes.append(raw)
    RecoveryCode.objects.bulk_create(
        RecoveryCode(device=device, code_hash=digest, hash_kid=kid)
        for digest, kid in (secret_hash(raw) for raw in codes)
    )
    codes = [f"{raw[:5]}-{raw[5:]}" for raw in codes]
    audit_record(org=None, actor=Actor.for_user(user), event=AuditEvent.RECOVERY_CODES_GENERATED,
                 data={"count": len(codes)})
    return codes


# --- removal -----------------------------------------------------------------------------------


def factor_for_user(*, user, kind: FactorKind, pk: int):
    """One of the user's own confirmed factors, or None (another person's id looks unknown)."""
    model = MODELS.get(kind)
    return model.objects.filter(user=user, pk=pk, confirmed=True).first() if model else None


@records_denials
@transaction.atomic
def factor_remove(*, user, device) -> None:
    """Remove a factor. Leaving no TOTP or passkey while an org mandates MFA is refused (409)."""
    remaining = [d for d in factors_for_user(user).primary if d != device]
    mandating = mfa_mandating_orgs(user) if not remaining else []
    if mandating:
        names = ", ".join(org.name for org in mandating)
        raise Conflict(
            f"{names} requires two-step verification, so you cannot remove your last authenticator "
            "app or passkey. Add another one first.",
            code="mfa_required",
            audit=DenialAudit(org=None, actor=Actor.for_user(user), event=AuditEvent.MFA_REMOVED,
                              data={"method": method_name(device), "device": device.pk}),
        )
    removed = [device]
    if not remaining:
        # Recovery codes back up a factor; with none left they would be a lone, printed secret.
        removed += [d for d in RecoveryCodeDevice.objects.filter(user=user) if d != device]
    for item in removed:
        person_record(user=user, event=AuditEvent.MFA_REMOVED,
                      data={"method": method_name(item), "device": item.pk})
        item.delete()
