"""Verifying a chain: the whole walk, and the cheap one that API calls and pages make.

Each entry must have the seq after its predecessor's, link to its hash by `prev_hash`, carry the
SHA-256 of its own canonical JSON (the contract's hash, audit/chain.py) and, when keyed, the MAC of
that hash under the key it names. Unkeyed entries (from before keying) count only below a keyed one.

The whole walk recomputes every hash and MAC from seq 1: `audit_verify`, the hourly task and
checkpoints of a chain never verified before use it. Repeating it for every API call on a chain of
millions would be the most expensive read in the product, so each chain keeps a mark
(`AuditVerifiedMark`): the seq and hash it last verified through, and a cursor, MAC'd under an audit
key so that nobody without it can move the mark past entries they changed. An incremental
verification then checks

- every entry appended since the mark, linked back to the marked entry, which must still carry the
  marked hash;
- the next `IAM_AUDIT_VERIFY_RECHECK` entries below the mark, from the cursor, round robin: every
  older entry is checked again every (length / that) calls, and a chain no longer than that is
  checked whole on every call;
- that the chain still reaches the mark (a head below it means a deleted tail) and that the mark's
  MAC holds (a mark that fails it was written by someone without the key).

Each costs a constant number of queries, however long the chain. What the cheap walk has not yet
reached again, the hourly whole walk does.
"""

import hmac
from collections import namedtuple
from dataclasses import dataclass

from django.conf import settings

from audit import keys
from audit.chain import LEGACY_KID, canonical_json, entry_hash, hash_mac
from audit.models import GENESIS_HASH, AuditChain, AuditEntry, AuditVerifiedMark


@dataclass(frozen=True)
class ChainVerdict:
    chain: str
    ok: bool
    checked: int
    first_bad_id: int | None = None
    first_bad_seq: int | None = None
    reason: str = ""
    # The head the chain verified through (when ok: what a checkpoint of it attests).
    head_seq: int = 0
    head_hash: str = GENESIS_HASH

    def as_dict(self) -> dict:
        return {
            "chain": self.chain,
            "ok": self.ok,
            "checked": self.checked,
            "head_seq": self.head_seq if self.ok else None,
            "first_bad": None
            if self.ok
            else {"id": self.first_bad_id, "seq": self.first_bad_seq, "reason": self.reason},
        }


@dataclass(frozen=True)
class Mark:
    seq: int
    hash: str
    recheck_seq: int


# The columns the hash covers, read as tuples: building model instances would cost more than hashing.
_FIELDS = ("id", "org_id", "seq", "ts", "actor_type", "actor_id", "actor_display", "event_code", "event_name",
           "outcome", "ip", "user_agent", "correlation_id", "target_type", "target_id", "data", "prev_hash",
           "hash", "hash_kid", "mac")
_Row = namedtuple("_Row", _FIELDS)


def _rows(chain: str, first: int, last: int):
    entries = AuditEntry.objects.unscoped().filter(chain=chain, seq__gte=first, seq__lte=last).order_by("seq")
    return (_Row._make(row) for row in entries.values_list(*_FIELDS).iterator(2000))


def _entry_fault(entry, expected_seq: int, expected_prev: str | None, prev_kid: str | None) -> str:
    """Why `entry` cannot follow its predecessor (hash `expected_prev`, key `prev_kid`), or "".
    None for either means the predecessor is outside this walk (checked by the walk that held it)."""
    if entry.seq != expected_seq:
        return f"expected seq {expected_seq}, found {entry.seq}: entries missing or reordered"
    if expected_prev is not None and entry.prev_hash != expected_prev:
        return "prev_hash does not match the previous entry: entries deleted or reordered"
    if entry.hash != entry_hash(entry):
        return "hash does not match the entry's content: the entry was altered"
    if entry.hash_kid == LEGACY_KID:
        if entry.mac:
            return "an unkeyed entry carries a MAC: its key id was removed"
        if prev_kid not in (None, LEGACY_KID):
            return "an unkeyed entry after keyed ones: the chain was rewritten without the audit key"
        return ""
    expected = hash_mac(entry.hash_kid, entry.hash)
    if expected is None:
        return f"keyed under key {entry.hash_kid!r}, which IAM_AUDIT_KEYS no longer holds"
    # Bytes: compare_digest refuses a str beyond ASCII, which whoever wrote the row may have put there.
    if not hmac.compare_digest(expected.encode(), entry.mac.encode()):
        return (f"mac does not match the entry's hash under key {entry.hash_kid!r}: the chain was rewritten "
                "without the audit key (this entry or one before it changed, the hashes recomputed)")
    return ""


@dataclass
class _Walk:
    checked: int = 0
    seq: int = 0  # the last entry walked
    hash: str = GENESIS_HASH
    kid: str | None = None
    first_unkeyed: object = None
    fault: ChainVerdict | None = None


def _walk(chain: str, entries, *, seq: int = 1, prev: str | None = GENESIS_HASH, prev_kid: str | None = None,
          anchor: Mark | None = None) -> _Walk:
    """Check `entries` in order from `seq`; stop at the first fault. `anchor`: that seq must still
    carry that hash (the entry a mark was verified through)."""
    walk = _Walk(seq=seq - 1, hash=prev, kid=prev_kid)
    for entry in entries:
        reason = _entry_fault(entry, walk.seq + 1, walk.hash, walk.kid)
        if not reason and anchor is not None and entry.seq == anchor.seq and entry.hash != anchor.hash:
            reason = f"not the entry the chain was verified through at seq {anchor.seq}: the chain was " \
                "rewritten"
        if reason:
            walk.fault = ChainVerdict(chain, False, walk.checked, entry.id, entry.seq, reason)
            return walk
        if entry.hash_kid == LEGACY_KID and walk.first_unkeyed is None:
            walk.first_unkeyed = entry
        walk.checked += 1
        walk.seq, walk.hash, walk.kid = entry.seq, entry.hash, entry.hash_kid
    return walk


def _from(chain: str, first: int, last: int, **kwargs) -> _Walk:
    """Walk entries `first`..`last` where `first`'s own link backwards is another walk's to check
    (its hash is still recomputed: it is read again, not trusted)."""
    if first <= 1:
        return _walk(chain, _rows(chain, 1, last), **kwargs)
    return _walk(chain, _rows(chain, first, last), seq=first, prev=None, prev_kid=None, **kwargs)


def _head_fault(chain: str, walk: _Walk, head: AuditChain | None) -> ChainVerdict | None:
    if head is not None and (head.last_seq != walk.seq or head.last_hash != walk.hash):
        return ChainVerdict(chain, False, walk.checked, None, walk.seq + 1,
                            f"the chain head records seq {head.last_seq}; entries after seq {walk.seq} are "
                            "missing")
    return None


def _mark_material(chain: str, mark: Mark) -> bytes:
    return b"audit verified mark\n" + canonical_json([chain, mark.seq, mark.hash, mark.recheck_seq]).encode()


def mark_read(chain: str) -> tuple[Mark | None, str]:
    """The chain's mark and "", or None and why it cannot be trusted ("" when there is none, or its key
    has left the ring: the next verification starts from seq 1)."""
    row = AuditVerifiedMark.objects.filter(pk=chain).first()
    if row is None:
        return None, ""
    mark = Mark(row.seq, row.hash, row.recheck_seq)
    expected = keys.mac(row.kid, _mark_material(chain, mark))
    if expected is None:
        return None, ""
    if not hmac.compare_digest(expected.encode(), row.mac.encode()):
        return None, ("the verification mark was altered: someone without the audit key wrote to the audit "
                      "tables")
    return mark, ""


def mark_fields(chain: str, mark: Mark) -> dict:
    kid = keys.current_kid()
    return {"seq": mark.seq, "hash": mark.hash, "recheck_seq": mark.recheck_seq, "kid": kid,
            "mac": keys.mac(kid, _mark_material(chain, mark))}


def _mark_fault(chain: str, mark: Mark | None, mark_error: str, head) -> ChainVerdict | None:
    if mark_error:
        return ChainVerdict(chain, False, 0, reason=mark_error)
    head_seq = head.last_seq if head is not None else 0
    if mark is not None and head_seq < mark.seq:
        return ChainVerdict(chain, False, 0, None, head_seq + 1,
                            f"the chain was verified through seq {mark.seq} but now ends at seq {head_seq}: "
                            "its newest entries were deleted (truncated)")
    return None


def _finish(chain: str, walk: _Walk, head: AuditChain | None, checked: int) -> ChainVerdict:
    fault = walk.fault or _head_fault(chain, walk, head)
    if fault:
        return fault
    if walk.kid == LEGACY_KID:
        # Unkeyed entries count only below a keyed one, whose MAC covers them: these end the chain,
        # so anyone could have recomputed them.
        unkeyed = walk.first_unkeyed
        return ChainVerdict(chain, False, walk.checked, unkeyed.id, unkeyed.seq,
                            "the chain ends in unkeyed entries: rewritten without the audit key, or never "
                            "sealed (migration audit/0005)")
    return ChainVerdict(chain, True, checked, head_seq=walk.seq, head_hash=walk.hash)


def chain_verify_full(chain: str) -> ChainVerdict:
    """Walk one chain from seq 1 and name the first entry that breaks it.

    The head is read first and only entries up to it are walked, so appends that land while the
    walk runs are neither missed as a break nor counted.
    """
    head = AuditChain.objects.filter(pk=chain).first()
    fault = _mark_fault(chain, *mark_read(chain), head)
    if fault:
        return fault
    walk = _walk(chain, _rows(chain, 1, head.last_seq if head else 2**62))
    return _finish(chain, walk, head, walk.checked)


def chain_verify_incremental(chain: str) -> tuple[ChainVerdict, Mark | None]:
    """Verify what has changed since the chain's mark, plus the next stretch of older entries (see the
    module's docstring). Returns the verdict and the mark to keep (None: keep none)."""
    head = AuditChain.objects.filter(pk=chain).first()
    mark, mark_error = mark_read(chain)
    fault = _mark_fault(chain, mark, mark_error, head)
    if fault:
        return fault, None
    if mark is None or head is None:
        verdict = chain_verify_full(chain)
        return verdict, Mark(verdict.head_seq, verdict.head_hash, 1) if verdict.ok else None
    # The stretch re-read below the mark starts one entry early, so that its first link is checked
    # too: over a round every entry and every link has been checked again.
    start = min(mark.recheck_seq, mark.seq)
    end = start + settings.IAM_AUDIT_VERIFY_RECHECK - 1
    if end >= mark.seq:  # the stretch reaches the mark: one walk up to the head, and the cursor wraps
        walk = _from(chain, start - 1, head.last_seq, anchor=mark)
        recheck, checked = 1, walk.checked
    else:
        older = _from(chain, start - 1, end)
        if older.fault:
            return older.fault, None
        walk = _from(chain, mark.seq, head.last_seq, anchor=mark)
        recheck, checked = end + 1, older.checked + walk.checked
    verdict = _finish(chain, walk, head, checked)
    return verdict, Mark(verdict.head_seq, verdict.head_hash, recheck) if verdict.ok else None

