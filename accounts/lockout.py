"""Brute-force defence for human logins, kept in the cache (Redis in production).

Per account (keyed by a hash of the normalised email, so unknown addresses behave exactly like known
ones): every verification attempt is counted with an atomic increment *before* the password is
checked, so 50 parallel guesses at threshold 5 get at most 5 verifications. Failures impose an
exponential back-off, and reaching the threshold locks the account for the policy's duration. A
successful password does not clear the count; only a completed login (MFA included) does.

Per client IP: failed attempts across all accounts are counted in a window, so one address cannot
spray a password over many accounts. The IP comes from trusted proxies only (audit.context).

If the cache cannot be reached, every function raises `LoginUnavailable`: login fails closed.
"""

import hashlib
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from accounts.models import normalize_email


class LoginUnavailable(Exception):
    """The lockout store is unreachable; refuse rather than allow unlimited attempts."""


@dataclass(frozen=True)
class Refusal:
    reason: str  # locked | backoff | ip_throttled
    retry_after: int
    newly_locked: bool = False  # this very call locked the account (audit it once)


def _account_key(email: str) -> str:
    digest = hashlib.sha256(normalize_email(email).encode()).hexdigest()[:32]
    return f"login:acct:{digest}"


def _ip_key(ip: str | None) -> str:
    return f"login:ip:{ip or 'unknown'}"


def _guard(operation):
    try:
        return operation()
    except Exception as exc:  # any cache client error: connection refused, timeout, protocol
        raise LoginUnavailable(str(type(exc).__name__)) from exc


def _incr(key: str, ttl: int) -> int:
    cache.add(key, 0, ttl)  # atomic create-if-absent, then atomic increment
    try:
        return cache.incr(key)
    except ValueError:  # the key expired between add and incr
        cache.add(key, 1, ttl)
        return 1


def _remaining(until_key: str) -> int:
    until = cache.get(until_key)
    return max(0, int(until - time.time()) + 1) if until else 0


def check_ip(ip: str | None) -> Refusal | None:
    def run():
        count = cache.get(_ip_key(ip), 0)
        if count >= settings.IAM_LOGIN_IP_LIMIT:
            return Refusal("ip_throttled", settings.IAM_LOGIN_IP_WINDOW_SECONDS)
        return None

    return _guard(run)


def register_ip_failure(ip: str | None) -> None:
    _guard(lambda: _incr(_ip_key(ip), settings.IAM_LOGIN_IP_WINDOW_SECONDS))


def reserve_attempt(email: str, threshold: int, lockout_minutes: int) -> Refusal | None:
    """Count one verification attempt. A Refusal means: do not verify anything."""
    key = _account_key(email)

    def run():
        locked = _remaining(f"{key}:locked")
        if locked:
            return Refusal("locked", locked)
        backoff = _remaining(f"{key}:backoff")
        if backoff:
            return Refusal("backoff", backoff)
        attempts = _incr(f"{key}:attempts", lockout_minutes * 60)
        if attempts > threshold:
            return Refusal("locked", lockout_minutes * 60, newly_locked=_lock(key, lockout_minutes))
        return None

    return _guard(run)


def register_failure(email: str, threshold: int, lockout_minutes: int) -> Refusal | None:
    """After a failed verification: back off exponentially, lock at the threshold."""
    key = _account_key(email)

    def run():
        failures = _incr(f"{key}:failures", lockout_minutes * 60)
        if failures >= threshold:
            return Refusal("locked", lockout_minutes * 60, newly_locked=_lock(key, lockout_minutes))
        # The first failure is free (typos happen); then 1 s, 2 s, 4 s ... before the next try.
        delay = settings.IAM_LOGIN_BACKOFF_BASE_SECONDS * 2 ** (failures - 2) if failures >= 2 else 0
        if delay > 0:
            cache.set(f"{key}:backoff", time.time() + delay, int(delay) + 1)
        return None

    return _guard(run)


def _lock(key: str, minutes: int) -> bool:
    """Lock the account; True only for the call that actually locked it."""
    if cache.add(f"{key}:locked", time.time() + minutes * 60, minutes * 60):
        cache.delete(f"{key}:backoff")
        return True
    return False


def is_locked(email: str) -> int:
    return _guard(lambda: _remaining(f"{_account_key(email)}:locked"))


def clear(email: str) -> None:
    """A completed login (password and, where due, MFA) wipes the account's counters."""
    key = _account_key(email)
    _guard(lambda: cache.delete_many([f"{key}:attempts", f"{key}:failures", f"{key}:backoff"]))
