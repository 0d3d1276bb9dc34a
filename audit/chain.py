"""The canonical form of an audit entry and its hash.

`hash = HMAC-SHA256(audit key, canonical JSON of the entry, prev_hash included)`, the key being the
one of IAM_AUDIT_KEYS that the entry names by `hash_kid` (audit/keys.py). Canonical JSON is sorted
keys, no whitespace, ASCII only (non-ASCII as \\uXXXX), so every implementation produces the same
bytes. An outsider can compute the canonical form but not the HMAC, so a chain rewritten without
the key (an entry deleted, the rest renumbered and re-linked) no longer verifies.

Entries written before the chain was keyed carry `hash_kid` "" and the plain SHA-256 of the same
bytes. They are accepted only as a chain's prefix that a keyed entry follows (audit/selectors.py):
that entry's HMAC covers their last hash, so they cannot change without it failing either.
"""

import hashlib
import json
from datetime import UTC, datetime

from audit import keys

LEGACY_KID = ""  # plain SHA-256, before the chain was keyed


def canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def format_ts(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_document(entry) -> dict:
    """The hashed body of an entry: the contract's fields except `id` and `hash`."""
    return {
        "actor": {"type": entry.actor_type, "id": entry.actor_id, "display": entry.actor_display},
        "correlation_id": entry.correlation_id,
        "data": entry.data,
        "event": {"code": entry.event_code, "name": entry.event_name},
        "ip": entry.ip,
        "org": str(entry.org_id) if entry.org_id else None,
        "outcome": entry.outcome,
        "prev_hash": entry.prev_hash,
        "seq": entry.seq,
        "target": {"type": entry.target_type, "id": entry.target_id},
        "ts": format_ts(entry.ts),
        "user_agent": entry.user_agent,
    }


def entry_hash(entry, kid: str | None = None) -> str | None:
    """The hash `entry` must carry under `kid` (by default its own `hash_kid`); None when that kid
    is no longer in the ring, so nothing it keyed can be checked."""
    kid = entry.hash_kid if kid is None else kid
    material = canonical_json(entry_document(entry)).encode("ascii")
    if kid == LEGACY_KID:
        return hashlib.sha256(material).hexdigest()
    return keys.mac(kid, material)


def entry_seal(entry) -> None:
    """Key the entry (its seq and prev_hash set) under the current audit key."""
    entry.hash_kid = keys.current_kid()
    entry.hash = entry_hash(entry)
