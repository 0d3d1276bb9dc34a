"""Revocation state: kept in the database, read from the fast store (Redis in production) on every
verification.

Revoked `jti`s stay listed until the token would have expired. Revoking an agent, suspending it,
ending a run, a secret or a delegation writes one *cutoff* (a time) for it. An agent can be resumed,
so its cutoff kills the tokens issued at or before it; a run, a secret or a delegation never comes
back, so any cutoff of theirs kills every token carrying them, even one signed a moment after by a
request that had read it live. So whatever the number of tokens, revocation is one write and
verification one round trip (`get_many`). If the store cannot be reached, verification fails closed.

Every cutoff and revoked jti is a database row (`RevocationCutoff`, `RevokedToken`) written in the
transaction that causes it, as well as a store key. The store is a cache and may lose anything: all
of it (a flush, a restart without persistence) or one key (an eviction). So it never answers by
absence: each key a token needs holds a value, its cutoff or NO_CUTOFF ("known not revoked"), and a
missing key is read back from the database (at most two indexed queries, whatever the token) and
written back before any answer. No eviction policy, flush or lost key can bring a revoked token back;
lost keys only cost those queries. A new token's jti key is written as it is signed, and its agent's,
run's and secret's keys are shared with earlier tokens, so the steady path makes no query.
"""

import logging
import time
from datetime import UTC, datetime, timedelta

from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from agents.chain import agents_in
from agents.models import RevocationCutoff, RevokedToken

logger = logging.getLogger(__name__)

# Longer than any token may live (the policy caps lifetimes at one hour), plus clock skew: a cutoff
# older than this can only kill expired tokens.
CUTOFF_TTL = 3600 + 300
# Seconds past a token's `exp` during which its jti still matters (more than IAM_CLOCK_SKEW_SECONDS).
GRACE = 60
# The value of a key known to hold no revocation (cutoff kinds), and of a jti not revoked.
NO_CUTOFF = 0
# How long the store remembers a key that holds no revocation before asking the database again.
NEGATIVE_TTL = 300
CUTOFF_KINDS = ("agent", "run", "cred", "dlg")
FINAL_KINDS = ("run", "cred", "dlg")  # what they name never works again once cut off


class RevocationUnavailable(Exception):
    pass


def _key(kind: str, ident: str) -> str:
    return f"rv:{kind}:{ident}"


def _ident(key: str) -> str:
    return key.split(":", 2)[2]


def revocation_keys(claims: dict) -> dict[str, str]:
    """The store keys that can say this token is revoked, each with its kind: its own `jti` and
    those of its ancestors, every agent of its delegation chain, its run, delegation, and the client
    secrets it and its ancestors were issued under (agents.chain). At most a few dozen keys
    whatever the depth the policy allows, read in one round trip."""
    keys = {_key("jti", claims["jti"]): "jti"}
    for agent in agents_in(claims):
        keys[_key("agent", agent)] = "agent"
    for kind, claim in (("run", "run"), ("cred", "cred"), ("dlg", "dlg")):
        if claims.get(claim):
            keys[_key(kind, claims[claim])] = kind
    for link in claims.get("anc", ()):
        keys[_key("jti", link["jti"])] = "jti"
        if link.get("cred"):
            keys[_key("cred", link["cred"])] = "cred"
    return keys


def store_read(keys: dict[str, str], *, also=()) -> dict:
    """One round trip for the revocation `keys` (from `revocation_keys`) and any `also` keys the
    caller reads with them. Revocation keys the store lost are read back from the database first, so
    the result holds every one of them. Any store or database error is RevocationUnavailable:
    callers refuse, never accept unchecked."""
    try:
        found = cache.get_many([*keys, *also])
        missing = {key: kind for key, kind in keys.items() if key not in found}
        if missing:
            found.update(_read_back(missing))
    except Exception as exc:
        raise RevocationUnavailable(type(exc).__name__) from exc
    return found


def _read_back(missing: dict[str, str]) -> dict:
    """The database's answer for keys the store lost (one query per table), written back."""
    now = timezone.now()
    answers = {}  # key -> (value, ttl)
    jti_keys = [key for key, kind in missing.items() if kind == "jti"]
    if jti_keys:
        revoked = dict(RevokedToken.objects.unscoped().filter(  # a token id names its row, whatever the org
            jti__in=[_ident(key) for key in jti_keys]).values_list("jti", "expires_at"))
        for key in jti_keys:
            expires = revoked.get(_ident(key))
            answers[key] = (1, _seconds(expires - now) + GRACE) if expires else (NO_CUTOFF, NEGATIVE_TTL)
    cutoffs = {key: kind for key, kind in missing.items() if kind != "jti"}
    if cutoffs:
        wanted = Q()
        for key, kind in cutoffs.items():
            wanted |= Q(kind=kind, subject=_ident(key))
        rows = {(kind, subject): (cutoff_at, expires_at) for kind, subject, cutoff_at, expires_at
                in RevocationCutoff.objects.filter(wanted).values_list("kind", "subject", "cutoff_at",
                                                                       "expires_at")}
        for key, kind in cutoffs.items():
            cutoff_at, expires_at = rows.get((kind, _ident(key)), (None, now))
            live = _seconds(expires_at - now)
            answers[key] = (cutoff_at.timestamp(), live) if live > 0 else (NO_CUTOFF, NEGATIVE_TTL)
    for key, (value, ttl) in answers.items():
        _fill(key, value, ttl)
    return {key: value for key, (value, _ttl) in answers.items()}


def _seconds(delta: timedelta) -> int:
    return int(delta.total_seconds())


def _fill(key: str, value, ttl: int) -> None:
    # Only if still absent: a revocation written meanwhile must not be replaced by an older answer.
    # The database's answer stands even if the store refuses it, so a failed fill only costs a query.
    try:
        cache.add(key, value, max(1, ttl))
    except Exception:
        logger.warning("could not write a revocation key back", exc_info=True)


def reason_in(claims: dict, keys: dict[str, str], found: dict) -> str | None:
    """Why this token is revoked according to what `store_read` found for `keys`, or None."""
    if any(key not in found for key in keys):
        return "revocation_unknown"  # store_read answers every key; never accept one unchecked
    own = _key("jti", claims["jti"])
    if found[own]:
        return "token_revoked"
    issued = claims["iat"]
    for key, kind in keys.items():
        value = found[key]
        if not value or key == own:
            continue
        if kind == "jti":
            return "ancestor_revoked"
        # A run, a secret or a delegation never comes back once ended: any cutoff kills every token
        # under it, including one a request signed after reading it live just before the cutoff
        # committed. An agent can be resumed, so its cutoff is a time. A run stopped gracefully has
        # a cutoff in the future (its deadline): its tokens live until then.
        if kind == "run" and value > time.time():
            continue
        if kind in FINAL_KINDS or issued <= value:
            return f"{kind}_revoked"
    return None


def revoked_reason(claims: dict) -> str | None:
    """Why this (signature-verified) token is revoked, or None. One store round trip."""
    keys = revocation_keys(claims)
    return reason_in(claims, keys, store_read(keys))


def token_issued(claims: dict) -> None:
    """Write a new token's jti key ("not revoked") as it is signed, so its first verification finds
    every key it needs. Best effort: a key that was not written is read back at verification."""
    try:
        cache.add(_key("jti", claims["jti"]), NO_CUTOFF, max(1, claims["exp"] - int(time.time())) + GRACE)
    except Exception:
        logger.warning("could not write a new token's revocation key", exc_info=True)


def _write(operation):
    try:
        operation()
    except Exception as exc:
        raise RevocationUnavailable(type(exc).__name__) from exc


def revoke_jti(jti: str, expires_at: float, *, org) -> None:
    """List one token id as revoked until the token expires: its row in the caller's transaction,
    and its store key now and again once that transaction commits (see `_after_commit`)."""
    RevokedToken.objects.for_org(org).get_or_create(
        jti=jti, defaults={"org_id": org.pk, "expires_at": datetime.fromtimestamp(expires_at, tz=UTC)})
    key = _key("jti", jti)
    _write(lambda: cache.set(key, 1, max(1, int(expires_at - time.time()) + GRACE)))
    transaction.on_commit(lambda: _after_commit(key, 1, expires_at + GRACE))


def cut_off(kind: str, ident: str, *, at: datetime | None = None) -> None:
    """Kill every token issued so far under one agent (`agent:<id>`), run or credential: the latest
    cutoff's row in the caller's transaction, and its store key now and again once that commits.
    A run's cutoff may be `at` a deadline ahead (a graceful stop): its tokens die then."""
    at = at or timezone.now()
    row = RevocationCutoff(kind=kind, subject=ident, cutoff_at=at,
                           expires_at=at + timedelta(seconds=CUTOFF_TTL))
    RevocationCutoff.objects.bulk_create(  # one upsert: the row keeps the latest cutoff
        [row], update_conflicts=True, unique_fields=["kind", "subject"],
        update_fields=["cutoff_at", "expires_at"])
    key, cutoff = _key(kind, ident), at.timestamp()
    _write(lambda: cache.set(key, cutoff, CUTOFF_TTL))
    transaction.on_commit(lambda: _after_commit(key, cutoff, cutoff + CUTOFF_TTL))


def _after_commit(key: str, value: float, until: float) -> None:
    """Write a committed revocation to the store again. If the store lost the first write before the
    commit, a verifier may have read the database then (no row yet) and written "no revocation"."""
    try:
        current = cache.get(key)
        # A cutoff still ahead (a graceful stop read back meanwhile) gives way to an earlier one.
        if not current or current < value or current > time.time():
            cache.set(key, value, max(1, int(until - time.time())))
    except Exception:
        logger.error("could not rewrite %s after its commit; the row stands", key, exc_info=True)


def revocations_prune(*, now=None) -> int:
    """Delete the cutoffs and revoked token ids that can no longer matter (every token they could
    kill has expired). Verification never depends on this running: a stale row kills only expired
    tokens. Returns how many rows went."""
    now = now or timezone.now()
    cutoffs, _ = RevocationCutoff.objects.filter(expires_at__lte=now).delete()
    tokens, _ = RevokedToken.objects.unscoped().filter(  # a system job over every org
        expires_at__lte=now - timedelta(seconds=GRACE)).delete()
    return cutoffs + tokens
