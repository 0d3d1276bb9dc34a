"""Password reset by emailed link (SECURITY_CASES B12-B17).

Requesting: the answer never tells whether an address has an account. Unknown addresses pay the same
token generation, hashing and counter work as known ones; only a known, active account gets a mail,
at most `IAM_PASSWORD_RESET_ACCOUNT_LIMIT` per hour, and one client IP may ask at most
`IAM_PASSWORD_RESET_IP_LIMIT` times per window (over it: 429). Counters live in the cache; if it
cannot be reached, `ResetUnavailable` is raised and the page answers 503 (fail closed).

Completing: the link's secret is looked up by its SHA-256, consumed by one conditional UPDATE (so
parallel redemptions get exactly one success), and the new password goes through
`services.password_set`, which applies the strictest policy and ends every session. Nobody is logged
in by a reset: the next login still asks for the second factor (ASVS 6.4.3). Lockout counters are
left alone, so a reset is never a way round a lockout.
"""

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.departures import account_recovered
from accounts.models import PasswordResetToken, User, normalize_email
from accounts.policy import policy_for_org, sso_demanded, user_policy
from accounts.tasks import account_mail_send
from audit.actors import Actor
from audit.events import AuditEvent, Outcome
from audit.services import Target, audit_record, records_denials
from core.errors import Conflict, DenialAudit, Invalid, ServiceError
from core.secrets import link_secret, link_secret_hash

ACCOUNT_WINDOW_SECONDS = 3600


def ttl_seconds() -> int:
    return getattr(settings, "IAM_PASSWORD_RESET_TTL_SECONDS", 1800)


def account_limit() -> int:
    return getattr(settings, "IAM_PASSWORD_RESET_ACCOUNT_LIMIT", 3)


def ip_limit() -> tuple[int, int]:
    """(requests, window seconds) allowed per client IP, whatever addresses they name."""
    return (getattr(settings, "IAM_PASSWORD_RESET_IP_LIMIT", 10),
            getattr(settings, "IAM_PASSWORD_RESET_IP_WINDOW_SECONDS", 600))


class ResetUnavailable(Exception):
    """The rate-limit store is unreachable; refuse rather than send unlimited mails."""


class ResetRejected(ServiceError):
    """The link is unknown, used or expired. `code` is the audited reason."""

    status = 400


@dataclass(frozen=True)
class ResetRequestOutcome:
    status: str  # accepted | ip_throttled (accepted covers sent, suppressed and unknown alike)
    retry_after: int | None = None


token_hash = link_secret_hash


def _counter_key(scope: str, value: str) -> str:
    # Hashed so that no address or IP sits in the cache in clear.
    return f"pwreset:{scope}:{hashlib.sha256(value.encode()).hexdigest()[:32]}"


def _count(key: str, ttl: int) -> int:
    """Atomic per-window counter: create-if-absent, then increment (never read-modify-write)."""
    try:
        cache.add(key, 0, ttl)
        try:
            return cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, ttl)
            return 1
    except Exception as exc:  # any cache client error: connection refused, timeout, protocol
        raise ResetUnavailable(type(exc).__name__) from exc


# --- requesting a link ------------------------------------------------------------------------


def reset_request(*, email: str, ip: str | None) -> ResetRequestOutcome:
    """Send a reset link to `email` if it belongs to an active account and no limit is reached.

    The outcome is the same for known and unknown addresses unless the client IP is over its limit.
    May raise ResetUnavailable.
    """
    limit, window = ip_limit()
    if _count(_counter_key("ip", ip or "unknown"), window) > limit:
        audit_record(org=None, actor=Actor.anonymous(), event=AuditEvent.PASSWORD_RESET_REQUESTED,
                     outcome=Outcome.DENIED, data={"delivered": False, "reason": "ip_limit"})
        return ResetRequestOutcome("ip_throttled", window)
    email = normalize_email(email)
    # Counted for unknown addresses too: the same cache work on every path, and no oracle in it.
    within_limit = _count(_counter_key("acct", email), ACCOUNT_WINDOW_SECONDS) <= account_limit()
    raw, digest = link_secret()  # made on every path so timing does not tell who has an account
    user = User.objects.filter(email=email, is_active=True).first() if email else None
    _request_record(user, raw, digest, within_limit)
    return ResetRequestOutcome("accepted")


@transaction.atomic
def _request_record(user: User | None, raw: str, digest: str, within_limit: bool) -> None:
    """The link (when one is due), its audit entry and its mail, in one transaction: the mail is
    queued only once the link it carries is committed."""
    sso_only = user is not None and user_policy(user).sso_only
    delivered = user is not None and within_limit and not sso_only
    if delivered:
        _token_store(user, digest)
    # Over the account limit is a denial (with the account as target); an unknown address is not.
    # The actor is anonymous: anyone can name an address, so the account holder did not act.
    outcome = Outcome.DENIED if user is not None and not within_limit else Outcome.SUCCESS
    reason = "sent" if delivered else ("account_limit" if user is not None else "unknown_account")
    if sso_only and within_limit:
        reason = "sso_required"  # no link: the person is told to sign in through their IdP
    audit_record(org=None, actor=Actor.anonymous(),
                 event=AuditEvent.PASSWORD_RESET_REQUESTED, outcome=outcome,
                 target=Target.of(user) if user else None, data={"delivered": delivered, "reason": reason})
    if delivered:
        _mail_link(user, raw)
    elif sso_only and within_limit:
        _mail_sso_required(user)


def _mail_sso_required(user: User) -> None:
    body = (
        "Someone asked to reset the password of your Agent IAM account. Your organization signs "
        "you in through its identity provider (single sign-on), so there is no password to reset: "
        "enter your email alone on the sign-in page and continue with single sign-on.\n\n"
        "If you did not ask for this, ignore this mail.\n"
    )
    subject = "Sign in to Agent IAM with single sign-on"
    transaction.on_commit(lambda: account_mail_send.delay(user.email, subject, body))


@transaction.atomic
def _token_store(user: User, digest: str) -> PasswordResetToken:
    """A new link supersedes every unused older one (they expire now, by timestamp)."""
    now = timezone.now()
    user.password_reset_tokens.filter(used_at__isnull=True, expires_at__gt=now).update(expires_at=now)
    user.password_reset_tokens.filter(expires_at__lt=now - timedelta(days=1)).delete()  # housekeeping
    return PasswordResetToken.objects.create(user=user, token_hash=digest, created_at=now,
                                             expires_at=now + timedelta(seconds=ttl_seconds()))


def reset_link(raw: str) -> str:
    # From configuration only: a forged Host or X-Forwarded-Host must never steer the link elsewhere.
    path = reverse("accounts:password-reset-link", kwargs={"token": raw})
    return settings.IAM_CANONICAL_ORIGIN.rstrip("/") + path


def _mail_link(user: User, raw: str) -> None:
    minutes = ttl_seconds() // 60
    body = (
        "Someone (hopefully you) asked to reset the password of your Agent IAM account.\n\n"
        f"Choose a new password here within {minutes} minutes:\n{reset_link(raw)}\n\n"
        "The link works once. If you did not ask for this, ignore this mail: your password stays as "
        "it is.\n"
    )
    # Queued once the link is committed: a rolled-back request mails nothing (outside a transaction
    # on_commit runs at once).
    subject = "Reset your Agent IAM password"
    transaction.on_commit(lambda: account_mail_send.delay(user.email, subject, body))


# --- using a link -----------------------------------------------------------------------------


SSO_NO_PASSWORD = ("Your organization signs you in through single sign-on: there is no password to "
                   "reset. Enter your email alone on the sign-in page.")


def _rejected(reason: str, user: User | None) -> ResetRejected:
    actor = Actor.for_user(user) if user else Actor.anonymous()
    return ResetRejected(
        SSO_NO_PASSWORD if reason == "sso_required" else "This link has expired or has already been used.",
        code=reason,
        audit=DenialAudit(org=None, actor=actor, event=AuditEvent.PASSWORD_RESET_REJECTED,
                          target=Target.of(user) if user else None, data={"reason": reason}),
    )


def _find(digest: str) -> PasswordResetToken:
    token = (PasswordResetToken.objects.select_related("user").filter(token_hash=digest).first()
             if digest else None)
    if token is None:
        raise _rejected("unknown", None)
    if token.used_at is not None:
        raise _rejected("used", token.user)
    if token.expires_at <= timezone.now() or not token.user.is_active:
        raise _rejected("expired", token.user)
    return token


@records_denials
def reset_token_check(*, digest: str) -> User:
    """The user a link is good for, or ResetRejected (audited) when it is not. Links are named by
    their `token_hash` here, so the page may keep one in its session without keeping the secret."""
    token = _find(digest)
    if user_policy(token.user).sso_only:  # a link mailed before the org required SSO
        raise _rejected("sso_required", token.user)
    return token.user


@records_denials
@transaction.atomic
def reset_complete(*, digest: str, new_password: str) -> int:
    """Set the password the link with this `token_hash` allows; returns the number of sessions ended.

    A password the policy refuses raises Invalid and rolls everything back, the link's consumption
    included, so the user can try another password with the same link.
    """
    token = _find(digest)
    if user_policy(token.user).sso_only:  # a link mailed before the org required SSO
        raise _rejected("sso_required", token.user)
    now = timezone.now()
    # One conditional UPDATE is the whole race: under concurrent redemption the database lets
    # exactly one transaction change the row; the rest see used_at set and update nothing.
    consumed = PasswordResetToken.objects.filter(
        pk=token.pk, used_at__isnull=True, expires_at__gt=now
    ).update(used_at=now)
    if consumed != 1:
        raise _rejected("used", token.user)
    user = token.user
    revoked = services.password_set(user=user, new_password=new_password, reason="reset")
    account_recovered(user=user, actor=Actor.for_user(user))  # delegations to agents end too
    audit_record(org=None, actor=Actor.for_user(user), event=AuditEvent.PASSWORD_RESET_COMPLETED,
                 target=Target.of(user), data={"sessions_revoked": revoked})
    # Sent once the change is committed, so no mail announces a change that was rolled back.
    transaction.on_commit(lambda: _mail_changed(user))
    return revoked


def _mail_changed(user: User) -> None:
    body = (
        "The password of your Agent IAM account was just changed with a reset link, and every "
        "session signed in to your account was ended, as was every agent's permission to act for "
        "you.\n\n"
        "If this was not you, contact your organization's administrator at once.\n"
    )
    account_mail_send.delay(user.email, "Your Agent IAM password was changed", body)


@records_denials
@transaction.atomic
def reset_link_send(*, membership, actor) -> None:
    """Mail a member a reset link at an admin's request. The admin never sees the link or the new
    password (ASVS 6.4.6): it goes to the member's own address, exactly like a self-service request.
    Who may ask is rbac.policies' decision."""
    user = membership.user
    if not user.is_active:
        raise Invalid("This account is deactivated.", code="inactive")
    if sso_demanded(policy_for_org(membership.org), membership.role):
        raise Conflict("This organization signs its members in through single sign-on: there is no "
                       "password to reset.", code="sso_required",
                       audit=DenialAudit(org=membership.org, actor=actor,
                                         event=AuditEvent.PASSWORD_RESET_REJECTED,
                                         target=Target.of(membership), data={"reason": "sso_required"}))
    raw, digest = link_secret()
    _token_store(user, digest)
    audit_record(org=membership.org, actor=actor, event=AuditEvent.PASSWORD_RESET_REQUESTED,
                 target=Target.of(membership), data={"delivered": True, "reason": "admin"})
    _mail_link(user, raw)
