"""The canonical form of an audit entry, its hash and its MAC.

`hash = SHA-256(canonical JSON of the entry, prev_hash included)`, as the public contract fixes it:
anyone holding the entries (the admin API's JSON is enough) recomputes every hash and follows the
`prev_hash` links. Canonical JSON is sorted keys, no whitespace, ASCII only (non-ASCII as \\uXXXX),
so every implementation produces the same bytes.

A hash chain anyone can recompute is also one anyone can rewrite: whoever can write the database
could delete an entry and recompute every hash after it. So each entry also carries
`mac = HMAC-SHA256(audit key, hash)`, hex, under the IAM_AUDIT_KEYS key it names by `hash_kid`
(audit/keys.py). The MAC is over the 64 hex characters of `hash` alone: the hash already commits to
the whole document, `prev_hash` included, so each MAC covers every entry before it too, and a rewrite
without the key fails at its first recomputed entry. The MAC is the server's own check (the verifier,
checkpoints); it is not part of the contract's entry and the API does not show it.

Entries written before the chain was keyed carry `hash_kid` "" and `mac` "". They are accepted only
as a chain's prefix that a keyed entry follows (audit/verification.py): that entry's MAC covers
their last hash, so they cannot change without it failing either.
"""

import hashlib
import json
from datetime import UTC, datetime

from audit import keys

LEGACY_KID = ""  # no MAC: written before the chain was keyed


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


def entry_hash(entry) -> str:
    """The contract's hash of `entry`: SHA-256 of its canonical JSON, hex."""
    return hashlib.sha256(canonical_json(entry_document(entry)).encode("ascii")).hexdigest()


def hash_mac(kid: str, entry_hash_hex: str) -> str | None:
    """The MAC an entry with this hash must carry under `kid`; None when the ring no longer holds
    `kid`, so nothing it keyed can be checked. The material is the 64 hex characters alone, which the
    verification marks' material (audit/verification.py, under the same key) never equals."""
    return keys.mac(kid, entry_hash_hex.encode())


def entry_seal(entry) -> None:
    """Hash the entry (its seq and prev_hash set) and MAC it under the current audit key."""
    entry.hash = entry_hash(entry)
    entry.hash_kid = keys.current_kid()
    entry.mac = hash_mac(entry.hash_kid, entry.hash)
