import hmac
from collections import namedtuple
from dataclasses import dataclass

from audit.chain import LEGACY_KID, entry_hash
from audit.events import AuditEvent
from audit.models import GENESIS_HASH, AuditChain, AuditEntry, chain_key


def audit_entries_for_org(*, org, **filters):
    """Newest first; see `audit_filter` for the filters."""
    return audit_filter(AuditEntry.objects.for_org(org).order_by("-seq"), **filters)


def audit_filter(qs, *, actor=None, event=None, since=None, until=None):
    """`actor` is "type:id" or an id; `event` is a code or a name; `since` inclusive, `until` not."""
    if actor:
        actor_type, _, actor_id = actor.rpartition(":")
        qs = qs.filter(actor_id=actor_id)
        if actor_type:
            qs = qs.filter(actor_type=actor_type)
    if event:
        qs = qs.filter(event_code=_event_code(event))
    if since:
        qs = qs.filter(ts__gte=since)
    if until:
        qs = qs.filter(ts__lt=until)
    return qs


def _event_code(event: str) -> int:
    if str(event).isdigit():
        return int(event)
    try:
        return AuditEvent.from_label(event).code
    except KeyError:
        return -1  # an unknown event name matches nothing


@dataclass(frozen=True)
class ChainVerdict:
    chain: str
    ok: bool
    checked: int
    first_bad_id: int | None = None
    first_bad_seq: int | None = None
    reason: str = ""
    # The head the walk went up to (when ok, what a checkpoint of this chain attests).
    head_seq: int = 0
    head_hash: str = GENESIS_HASH

    def as_dict(self) -> dict:
        return {
            "chain": self.chain,
            "ok": self.ok,
            "checked": self.checked,
            "first_bad": None
            if self.ok
            else {"id": self.first_bad_id, "seq": self.first_bad_seq, "reason": self.reason},
        }


# The columns the hash covers, read as tuples: building model instances would cost more than hashing.
_FIELDS = ("id", "org_id", "seq", "ts", "actor_type", "actor_id", "actor_display", "event_code", "event_name",
           "outcome", "ip", "user_agent", "correlation_id", "target_type", "target_id", "data", "prev_hash",
           "hash", "hash_kid")
_Row = namedtuple("_Row", _FIELDS)


def _entry_fault(entry, expected_seq: int, expected_prev: str, prev_kid: str | None) -> str:
    """Why `entry` cannot follow its predecessor (hash `expected_prev`, key `prev_kid`), or ""."""
    if entry.seq != expected_seq:
        return f"expected seq {expected_seq}, found {entry.seq}: entries missing or reordered"
    if entry.prev_hash != expected_prev:
        return "prev_hash does not match the previous entry: entries deleted or reordered"
    if entry.hash_kid == LEGACY_KID and prev_kid not in (None, LEGACY_KID):
        return "an unkeyed entry after keyed ones: the chain was rewritten without the audit key"
    expected = entry_hash(entry)
    if expected is None:
        return f"keyed under key {entry.hash_kid!r}, which IAM_AUDIT_KEYS no longer holds"
    if not hmac.compare_digest(expected, entry.hash):
        return "hash does not match the entry's content: the entry was altered"
    return ""


def _verify_entries(chain: str, entries, head: AuditChain | None) -> ChainVerdict:
    expected_seq, expected_prev, prev_kid, checked = 1, GENESIS_HASH, None, 0
    first_unkeyed = None
    for entry in entries:
        reason = _entry_fault(entry, expected_seq, expected_prev, prev_kid)
        if reason:
            return ChainVerdict(chain, False, checked, entry.id, entry.seq, reason)
        if entry.hash_kid == LEGACY_KID and first_unkeyed is None:
            first_unkeyed = entry
        checked += 1
        expected_seq, expected_prev, prev_kid = entry.seq + 1, entry.hash, entry.hash_kid
    last_seq = expected_seq - 1
    if head is not None and (head.last_seq != last_seq or head.last_hash != expected_prev):
        return ChainVerdict(
            chain, False, checked, None, last_seq + 1,
            f"the chain head records seq {head.last_seq}; entries after seq {last_seq} are missing",
        )
    if prev_kid == LEGACY_KID:
        # Unkeyed entries count only below a keyed one, whose HMAC covers them: these are the whole
        # chain, which anyone could have recomputed.
        return ChainVerdict(chain, False, checked, first_unkeyed.id, first_unkeyed.seq,
                            "the chain ends in unkeyed entries: rewritten without the audit key, or never "
                            "sealed (migration audit/0005)")
    return ChainVerdict(chain, True, checked, head_seq=last_seq, head_hash=expected_prev)


def audit_verify_chain(*, chain: str) -> ChainVerdict:
    """Walk one chain in order and name the first entry that breaks it.

    The head is read first and only entries up to it are walked, so appends that land while the
    walk runs are neither missed as a break nor counted.
    """
    head = AuditChain.objects.filter(pk=chain).first()
    entries = AuditEntry.objects.unscoped().filter(chain=chain).order_by("seq")
    if head is not None:
        entries = entries.filter(seq__lte=head.last_seq)
    rows = (_Row._make(row) for row in entries.values_list(*_FIELDS).iterator(2000))
    return _verify_entries(chain, rows, head)


def audit_verify_org(*, org) -> ChainVerdict:
    return audit_verify_chain(chain=chain_key(org))


def audit_chains() -> list[str]:
    return list(AuditChain.objects.order_by("chain").values_list("chain", flat=True))
