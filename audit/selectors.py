from dataclasses import dataclass

from audit.chain import entry_hash
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

    def as_dict(self) -> dict:
        return {
            "chain": self.chain,
            "ok": self.ok,
            "checked": self.checked,
            "first_bad": None
            if self.ok
            else {"id": self.first_bad_id, "seq": self.first_bad_seq, "reason": self.reason},
        }


def _verify_entries(chain: str, entries, head: AuditChain | None) -> ChainVerdict:
    expected_seq, expected_prev, checked = 1, GENESIS_HASH, 0
    for entry in entries:
        reason = ""
        if entry.seq != expected_seq:
            reason = f"expected seq {expected_seq}, found {entry.seq}: entries missing or reordered"
        elif entry.prev_hash != expected_prev:
            reason = "prev_hash does not match the previous entry: entries deleted or reordered"
        elif entry_hash(entry) != entry.hash:
            reason = "hash does not match the entry's content: the entry was altered"
        if reason:
            return ChainVerdict(chain, False, checked, entry.id, entry.seq, reason)
        checked += 1
        expected_seq, expected_prev = entry.seq + 1, entry.hash
    last_seq = expected_seq - 1
    if head is not None and (head.last_seq != last_seq or head.last_hash != expected_prev):
        return ChainVerdict(
            chain, False, checked, None, last_seq + 1,
            f"the chain head records seq {head.last_seq}; entries after seq {last_seq} are missing",
        )
    return ChainVerdict(chain, True, checked)


def audit_verify_chain(*, chain: str) -> ChainVerdict:
    """Walk one chain in order and name the first entry that breaks it.

    The head is read first and only entries up to it are walked, so appends that land while the
    walk runs are neither missed as a break nor counted.
    """
    head = AuditChain.objects.filter(pk=chain).first()
    entries = AuditEntry.objects.unscoped().filter(chain=chain).order_by("seq")
    if head is not None:
        entries = entries.filter(seq__lte=head.last_seq)
    return _verify_entries(chain, entries.iterator(2000), head)


def audit_verify_org(*, org) -> ChainVerdict:
    return audit_verify_chain(chain=chain_key(org))


def audit_chains() -> list[str]:
    return list(AuditChain.objects.order_by("chain").values_list("chain", flat=True))
