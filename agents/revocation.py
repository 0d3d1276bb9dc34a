"""Revocation state in the fast store (Redis in production), checked on every verification.

Revoked `jti`s stay listed until the token would have expired. Revoking an agent, ending a run or
ending a secret writes one *cutoff* (a time) for that agent, run or credential: every token issued
at or before it is dead. So whatever the number of tokens, revocation is one write and verification
one round trip (`get_many`). If the store cannot be reached, verification fails closed.

The store is a cache, and a cache can lose its data (a restart without persistence, an eviction).
A marker key says the store holds the complete revocation state; when it is missing, the state is
rebuilt from the database (revoked agents, suspended agents, ended runs and secrets, revoked token
ids) before any answer is given, so lost data never brings a revoked token back.
"""

import time
from datetime import UTC, datetime, timedelta

from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone

from agents.models import Agent, AgentSecret, AgentStatus, RevokedToken, Run

# Longer than any token may live (the policy caps lifetimes at one hour), plus clock skew.
CUTOFF_TTL = 3600 + 300


class RevocationUnavailable(Exception):
    pass


READY_KEY = "rv:ready"


def revocation_keys(claims: dict) -> dict[str, str]:
    """The store keys that can say this token is revoked (plus the completeness marker)."""
    keys = {"ready": READY_KEY, "jti": f"rv:jti:{claims['jti']}", "agent": f"rv:agent:{claims['sub']}"}
    if claims.get("run"):
        keys["run"] = f"rv:run:{claims['run']}"
    if claims.get("cred"):
        keys["cred"] = f"rv:cred:{claims['cred']}"
    return keys


def store_read(keys: list[str]) -> dict:
    """One round trip for `keys`, which must include READY_KEY; rebuilds a store that lost its
    state first. Any store error is RevocationUnavailable: callers refuse, never accept unchecked."""
    try:
        found = cache.get_many(keys)
        if READY_KEY not in found:
            store_rebuild()
            found = cache.get_many(keys)
    except RevocationUnavailable:
        raise
    except Exception as exc:
        raise RevocationUnavailable(type(exc).__name__) from exc
    return found


def reason_in(claims: dict, keys: dict[str, str], found: dict) -> str | None:
    """Why this token is revoked according to what `store_read` found for `keys`, or None."""
    if keys["jti"] in found:
        return "token_revoked"
    issued = claims["iat"]
    for kind in ("agent", "run", "cred"):
        cutoff = found.get(keys.get(kind, ""))
        if cutoff is not None and issued <= cutoff:
            return f"{kind}_revoked"
    return None


def revoked_reason(claims: dict) -> str | None:
    """Why this (signature-verified) token is revoked, or None. One store round trip."""
    keys = revocation_keys(claims)
    return reason_in(claims, keys, store_read(list(keys.values())))


def _write(operation):
    try:
        operation()
    except Exception as exc:
        raise RevocationUnavailable(type(exc).__name__) from exc


def revoke_jti(jti: str, expires_at: float, *, org) -> None:
    RevokedToken.objects.for_org(org).get_or_create(
        jti=jti, defaults={"org_id": org.pk, "expires_at": datetime.fromtimestamp(expires_at, tz=UTC)})
    ttl = max(1, int(expires_at - time.time()) + 60)
    _write(lambda: cache.set(f"rv:jti:{jti}", 1, ttl))


def cut_off(kind: str, ident: str) -> None:
    """Kill every token issued so far under one agent (`agent:<id>`), run or credential."""
    _write(lambda: cache.set(f"rv:{kind}:{ident}", time.time(), CUTOFF_TTL))


def store_rebuild() -> None:
    """Write every revocation that may still matter (the last CUTOFF_TTL seconds) from the database
    into the store, then mark it complete. Cutoffs are set to now: tokens issued before a lost cutoff
    die, and so, harmlessly, do any issued since (none can be for a revoked agent or ended run).
    """
    recent = timezone.now() - timedelta(seconds=CUTOFF_TTL)
    now = time.time()
    entries = {}
    for pk in Agent.objects.unscoped().filter(  # a system job over every org
            Q(status=AgentStatus.SUSPENDED) | Q(revoked_at__gte=recent)).values_list("pk", flat=True):
        entries[f"rv:agent:agent:{pk}"] = now
    for pk in Run.objects.unscoped().filter(ended_at__gte=recent).values_list("pk", flat=True):
        entries[f"rv:run:{pk}"] = now
    ended = AgentSecret.objects.unscoped().filter(
        Q(revoked_at__gte=recent) | Q(expires_at__range=(recent, timezone.now())))
    for pk in ended.values_list("pk", flat=True):
        entries[f"rv:cred:{pk}"] = now
    try:
        cache.set_many(entries, CUTOFF_TTL)
        live = RevokedToken.objects.unscoped().filter(expires_at__gt=timezone.now())
        for jti, expires_at in live.values_list("jti", "expires_at"):
            cache.set(f"rv:jti:{jti}", 1, max(1, int(expires_at.timestamp() - now) + 60))
        cache.set(READY_KEY, 1, None)
    except Exception as exc:
        raise RevocationUnavailable(type(exc).__name__) from exc
