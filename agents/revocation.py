"""Revocation state in the fast store (Redis in production), checked on every verification.

Revoked `jti`s stay listed until the token would have expired. Revoking an agent, ending a run or
ending a secret writes one *cutoff* (a time) for that agent, run or credential: every token issued
at or before it is dead. So whatever the number of tokens, revocation is one write and verification
one round trip (`get_many`). If the store cannot be reached, verification fails closed.
"""

import time

from django.core.cache import cache

# Longer than any token may live (the policy caps lifetimes at one hour), plus clock skew.
CUTOFF_TTL = 3600 + 300


class RevocationUnavailable(Exception):
    pass


def _keys(claims: dict) -> dict[str, str]:
    keys = {"jti": f"rv:jti:{claims['jti']}", "agent": f"rv:agent:{claims['sub']}"}
    if claims.get("run"):
        keys["run"] = f"rv:run:{claims['run']}"
    if claims.get("cred"):
        keys["cred"] = f"rv:cred:{claims['cred']}"
    return keys


def revoked_reason(claims: dict) -> str | None:
    """Why this (signature-verified) token is revoked, or None. One store round trip."""
    keys = _keys(claims)
    try:
        found = cache.get_many(list(keys.values()))
    except Exception as exc:  # any store error: refuse, never accept unchecked
        raise RevocationUnavailable(type(exc).__name__) from exc
    if keys["jti"] in found:
        return "token_revoked"
    issued = claims["iat"]
    for kind in ("agent", "run", "cred"):
        cutoff = found.get(keys.get(kind, ""))
        if cutoff is not None and issued <= cutoff:
            return f"{kind}_revoked"
    return None


def _write(operation):
    try:
        operation()
    except Exception as exc:
        raise RevocationUnavailable(type(exc).__name__) from exc


def revoke_jti(jti: str, expires_at: float) -> None:
    ttl = max(1, int(expires_at - time.time()) + 60)
    _write(lambda: cache.set(f"rv:jti:{jti}", 1, ttl))


def cut_off(kind: str, ident: str) -> None:
    """Kill every token issued so far under one agent (`agent:<id>`), run or credential."""
    _write(lambda: cache.set(f"rv:{kind}:{ident}", time.time(), CUTOFF_TTL))
