"""The canonical form of an audit entry and its hash.

`hash = sha256(canonical JSON of the entry, prev_hash included)`. Canonical JSON is sorted keys, no
whitespace, ASCII only (non-ASCII as \\uXXXX), so every implementation, including the PostgreSQL
append function, produces the same bytes. `prev_hash` and `seq` are adjacent in key order, which lets
the database fill in just those two while holding the chain lock: the rest is built here.
"""

import hashlib
import json
from datetime import UTC, datetime


def canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def format_ts(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_document(entry, *, org_id=None) -> dict:
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


def hash_frame(document: dict) -> tuple[str, str]:
    """Split the canonical JSON around `prev_hash` and `seq`, which only the chain head knows."""
    left = canonical_json({k: v for k, v in document.items() if k < "prev_hash"})
    right = canonical_json({k: v for k, v in document.items() if k > "seq"})
    return left[:-1] + ',"prev_hash":"', "," + right[1:]


def hash_from_frame(prefix: str, prev_hash: str, seq: int, suffix: str) -> str:
    material = f'{prefix}{prev_hash}","seq":{seq}{suffix}'
    return hashlib.sha256(material.encode("ascii")).hexdigest()


def entry_hash(entry) -> str:
    return hashlib.sha256(canonical_json(entry_document(entry)).encode("ascii")).hexdigest()
