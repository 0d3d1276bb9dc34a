"""The human login pipeline: password step, optional second-factor step, completion.

A password that verifies for a user with a second factor does not log anyone in: the session only
holds a short-lived *pending* marker, so `request.user` stays anonymous and every API, admin page
and token endpoint refuses it. Only `complete_login` calls Django's `login()` (which issues a new
session key), clears the lockout counters and records the session.

Every outcome is audited with a reason code; no email, password or code goes into the record.
"""

import hashlib
import time
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import login
from django.utils import timezone
from django_otp import devices_for_user

from accounts import lockout, mfa
from accounts.models import User, normalize_email
from accounts.passwords import PASSWORD_MAX_LENGTH
from accounts.person_audit import person_record
from accounts.policy import (
    AUTH_TIME_KEY,
    LAST_SEEN_KEY,
    MFA_TIME_KEY,
    SSO_ORGS_KEY,
    password_expired,
    user_policy,
)
from accounts.services import login_record_failure, login_record_success
from accounts.sessions import KEY_CREATED, KEY_IP, KEY_USER_AGENT
from audit.actors import Actor
from audit.events import AuditEvent, Outcome
from audit.services import audit_record

PENDING_KEY = "iam_pending_login"


@dataclass(frozen=True)
class LoginOutcome:
    status: str  # complete | mfa | refused
    reason: str = ""
    http_status: int = 200
    retry_after: int | None = None
    user: User | None = None
    password_change_due: bool = False


def _refused(reason: str, http_status: int = 401, retry_after: int | None = None) -> LoginOutcome:
    return LoginOutcome("refused", reason, http_status, retry_after)


def _well_formed(email: str, password: str) -> str:
    if not email or not password:
        return "missing_fields"
    if len(password) > PASSWORD_MAX_LENGTH:
        return "password_too_long"
    if len(email) > 254:
        return "email_too_long"
    # NUL, or U+FFFD from bytes that were not valid UTF-8, never belongs in a credential.
    if any(bad in email or bad in password for bad in ("\x00", "\ufffd")):
        return "invalid_characters"
    return ""


def password_login(request, *, email: str, password: str) -> LoginOutcome:
    """Check a password under the lockout and throttle rules. May raise lockout.LoginUnavailable."""
    problem = _well_formed(email, password)
    if problem:
        login_record_failure(reason=problem)
        return _refused(problem, 400)
    ip = request.audit_context.ip
    refusal = lockout.check_ip(ip)
    if refusal:
        _record_throttle("ip", refusal.retry_after)
        return _refused(refusal.reason, 429, refusal.retry_after)
    user = User.objects.filter(email=normalize_email(email)).first()
    policy = user_policy(user)
    refusal = lockout.reserve_attempt(email, policy.lockout_threshold, policy.lockout_minutes)
    if refusal:
        login_record_failure(reason=refusal.reason, user=user)
        if refusal.newly_locked:
            _record_lock(user, refusal)
        if refusal.reason == "backoff":
            return _refused("backoff", 429, refusal.retry_after)
        return _refused("locked")
    reason = _verify(user, password)
    if reason:
        lockout.register_ip_failure(ip)
        locked = lockout.register_failure(email, policy.lockout_threshold, policy.lockout_minutes)
        _record_failure(user, reason, locked)
        return _refused(reason)
    if policy.sso_only:
        # The right password, but every org this person acts in signs them in through its IdP.
        person_record(user=user, actor=Actor.for_user(user), event=AuditEvent.SSO_PASSWORD_REFUSED,
                      outcome=Outcome.DENIED, data={"reason": "sso_required"})
        return _refused("sso_required", 403)
    if mfa.has_second_factor(user):
        pending_start(request, user, method="password")
        return LoginOutcome("mfa", user=user)
    complete_login(request, user, method="password")
    return LoginOutcome("complete", user=user, password_change_due=password_expired(user, policy))


def _verify(user: User | None, password: str) -> str:
    """A reason code, or "" when the password is right for an active user. Constant cost: an
    unknown email still pays one Argon2 hash, so timing does not tell who has an account."""
    if user is None:
        User().set_password(password)
        return "bad_credentials"
    if not user.check_password(password):  # also rehashes when our Argon2 parameters changed
        return "bad_credentials"
    if not user.is_active:
        return "inactive"
    return ""


def _record_failure(user, reason: str, locked) -> None:
    login_record_failure(reason=reason, user=user)
    if locked is not None and locked.newly_locked:
        _record_lock(user, locked)


def _record_lock(user, refusal) -> None:
    actor = Actor.for_user(user) if user else Actor.anonymous()
    until = timezone.now().timestamp() + refusal.retry_after
    person_record(user=user, actor=actor, event=AuditEvent.LOGIN_LOCKED, outcome=Outcome.DENIED,
                  data={"reason": "threshold", "locked_until": int(until)}, queued=True)


def _record_throttle(scope: str, retry_after: int) -> None:
    audit_record(org=None, actor=Actor.anonymous(), event=AuditEvent.LOGIN_THROTTLED,
                 outcome=Outcome.DENIED, data={"scope": scope, "retry_after": retry_after})


# --- the pending (password verified, second factor due) state -------------------------------


def pending_start(request, user: User, *, method: str, sso_org=None) -> None:
    """`sso_org`: the org whose IdP proved the first step (an SSO login asked for our factor)."""
    request.session.cycle_key()
    request.session[PENDING_KEY] = {"user": str(user.pk), "at": time.time(), "method": method,
                                    "sso_org": str(sso_org) if sso_org else None}
    audit_record(org=None, actor=Actor.for_user(user), event=AuditEvent.MFA_CHALLENGE,
                 data={"methods": mfa_methods(user)})


def pending_user(request) -> User | None:
    """The user whose password step passed in this session, while the second factor is due."""
    pending = request.session.get(PENDING_KEY)
    if not pending or time.time() - pending["at"] > settings.IAM_MFA_PENDING_SECONDS:
        return None
    return User.objects.filter(pk=pending["user"], is_active=True).first()


def pending_method(request) -> str:
    """How the first step of the pending login was proved ("password", or "sso" for an IdP)."""
    return (request.session.get(PENDING_KEY) or {}).get("method", "password")


def mfa_methods(user: User) -> list[str]:
    return sorted({type(d).__name__ for d in devices_for_user(user, confirmed=True)})


# --- completion -----------------------------------------------------------------------------


def complete_login(request, user: User, *, method: str, mfa_method: str | None = None, sso_org=None) -> None:
    """Log the user in: new session key, session metadata, counters cleared, audited.

    `sso_org`: the org whose IdP signed the person in. The session keeps the orgs whose IdP signed
    this person in (a second org's SSO adds to it; any other login starts it afresh), for orgs that
    require SSO (`accounts.policy.org_session_denial`)."""
    pending = request.session.pop(PENDING_KEY, None) or {}
    if pending.get("user") == str(user.pk) and pending.get("sso_org"):
        sso_org = pending["sso_org"]
    same_person = request.user.is_authenticated and request.user.pk == user.pk
    sso_orgs = list(request.session.get(SSO_ORGS_KEY) or []) if same_person and sso_org else []
    if sso_org and str(sso_org) not in sso_orgs:
        sso_orgs.append(str(sso_org))
    login(request, user, backend="accounts.backends.EmailBackend")
    now = timezone.now()
    context = request.audit_context
    request.session[KEY_CREATED] = now.isoformat()
    request.session[KEY_IP] = context.ip
    request.session[KEY_USER_AGENT] = context.user_agent[:512]
    request.session[AUTH_TIME_KEY] = now.timestamp()
    request.session[LAST_SEEN_KEY] = now.timestamp()
    request.session[MFA_TIME_KEY] = now.timestamp() if mfa_method else None
    request.session[SSO_ORGS_KEY] = sso_orgs
    lockout.clear(user.email)
    login_record_success(user=user, method=method if not mfa_method else f"{method}+{mfa_method}")
    # login() already stored the session under its new key; the middleware saves the rest.
    audit_record(org=None, actor=Actor.for_user(user), event=AuditEvent.SESSION_CREATED,
                 data={"session": session_label(request.session.session_key)})
    for hook in LOGIN_COMPLETED:
        hook(request, user, method)


# Home-realm discovery: the SSO app adds (email -> its org's sign-in URL or None) and (org slug ->
# that org's sign-in URL or None) in ready(); accounts knows nothing of connections or domains.
HOME_REALM: list = []
ORG_SIGN_IN: list = []
# (request, next_url) -> where the signed-in person re-authenticates at their IdP, or None.
REAUTH_AT_IDP: list = []


def reauth_at_idp(request, next_url: str) -> str | None:
    return next((url for find in REAUTH_AT_IDP if (url := find(request, next_url))), None)


def home_realm(email: str) -> str | None:
    if not email or len(email) > 254 or "\x00" in email:
        return None
    return next((url for find in HOME_REALM if (url := find(email))), None)


def org_sign_in(org_slug: str) -> str | None:
    return next((url for find in ORG_SIGN_IN if (url := find(org_slug))), None)


# Called after every completed login with (request, user, method): apps above accounts that must know
# which session a login created (single sign-on's back-channel logout) add theirs in ready().
LOGIN_COMPLETED: list = []


def session_label(session_key: str | None) -> str:
    """A short, non-secret name for a session in audit records (never the key itself)."""
    return hashlib.sha256((session_key or "").encode()).hexdigest()[:12]



@dataclass(frozen=True)
class Recheck:
    ok: bool
    reason: str = ""  # mismatch | locked | backoff
    retry_after: int | None = None


def password_recheck(user: User, password: str) -> Recheck:
    """Check a signed-in person's password again (re-authentication, the password change page)
    under the login's lockout rules: the attempt is reserved before Argon2 runs, a wrong password
    counts towards the account's lockout and back-off, and the lock it may cause is audited. A
    session is no way round the lockout. May raise lockout.LoginUnavailable."""
    policy = user_policy(user)
    refusal = lockout.reserve_attempt(user.email, policy.lockout_threshold, policy.lockout_minutes)
    if refusal is None:
        if len(password) <= PASSWORD_MAX_LENGTH and user.check_password(password):
            return Recheck(True)
        refusal = lockout.register_failure(user.email, policy.lockout_threshold, policy.lockout_minutes)
        if refusal is None:
            return Recheck(False, "mismatch")
    if refusal.newly_locked:
        _record_lock(user, refusal)
    # A wrong password that reaches the threshold locks the account; the answer is then the lock's.
    return Recheck(False, refusal.reason, refusal.retry_after)


def password_change_due(user) -> bool:
    return user.is_authenticated and password_expired(user)


def reauthenticate(request, *, password: str = "", code: str = "") -> str | None:
    """Prove the password or a second factor again inside a session. Returns the method or None.

    Failures count against the account's lockout like login failures. Success issues a new
    session key (so a key observed before the sensitive step is worthless after it)."""
    user = request.user
    method = None
    if password:
        method = "password" if password_recheck(user, password).ok else None
    elif code:
        method = mfa.verify_code(user, code, purpose="reauth")
    if method is None:
        person_record(user=user, event=AuditEvent.REAUTH_FAILED, outcome=Outcome.FAILURE,
                      data={"method": "password" if password else "code", "reason": "mismatch"})
        return None
    request.session.cycle_key()
    now = time.time()
    request.session[AUTH_TIME_KEY] = now
    if method != "password":
        request.session[MFA_TIME_KEY] = now
    lockout.clear(user.email)
    person_record(user=user, event=AuditEvent.REAUTH_SUCCEEDED, data={"method": method})
    return method


def reauth_by_idp(request, *, mfa: bool, sso_org) -> None:
    """The signed-in person proved themselves again at the org's IdP (single sign-on checked who):
    the same fresh proof as `reauthenticate`, with a new session key."""
    user = request.user
    request.session.cycle_key()
    now = time.time()
    request.session[AUTH_TIME_KEY] = now
    if mfa:
        request.session[MFA_TIME_KEY] = now
    orgs = list(request.session.get(SSO_ORGS_KEY) or [])
    if str(sso_org) not in orgs:
        orgs.append(str(sso_org))
    request.session[SSO_ORGS_KEY] = orgs
    person_record(user=user, event=AuditEvent.REAUTH_SUCCEEDED, data={"method": "sso"})
