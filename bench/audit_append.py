"""Audit append throughput: `audit_record` against a naive row-locked ORM read-modify-write.

On PostgreSQL `audit_record` is one round trip to the `audit_append` stored function (two when
another writer moved the head since this process last appended); the peer locks the chain head with
SELECT ... FOR UPDATE, hashes and MACs the entry in Python as audit_record does (audit.chain.entry_seal,
so its chain verifies like ours), inserts it and updates the head: four round trips
inside a transaction. On SQLite `audit_record` itself takes the ORM path, so both
sides are the same kind of append and the ratio should sit near 1.
"""

from django.db import connection, transaction
from django.utils import timezone

from audit.actors import Actor
from audit.chain import entry_seal
from audit.events import AuditEvent
from audit.models import AuditChain, AuditEntry, chain_key
from audit.selectors import audit_verify_org
from audit.services import audit_record
from bench.harness import format_table, report, run_threads, throwaway_database
from core.models import Organization

EVENT = AuditEvent.ORG_UPDATED
THREAD_COUNTS = (1, 8)
ROUNDS = 2  # alternate peer and ours, keep each side's best round: damps noise from other load
APPENDS = {"postgresql": 4000, "sqlite": 2000}  # per concurrency level, split over the threads


def ours(org, i: int) -> None:
    audit_record(org=org, actor=Actor.system("bench"), event=EVENT, data={"fields": [f"f{i}"]})


def naive(org, i: int) -> None:
    """The textbook append: lock the head row, read it, hash and MAC, insert, write the head back."""
    with transaction.atomic():
        head = AuditChain.objects.select_for_update().get(pk=chain_key(org))
        entry = AuditEntry(
            org_id=org.pk, chain=chain_key(org), seq=head.last_seq + 1, prev_hash=head.last_hash,
            ts=timezone.now(), actor_type="system", actor_display="bench", event_code=EVENT.code,
            event_name=EVENT.label, outcome="success", data={"fields": [f"f{i}"]},
        )
        entry_seal(entry)
        entry.save()
        head.last_seq, head.last_hash = entry.seq, entry.hash
        head.save(update_fields=["last_seq", "last_hash"])


def _rate(append, org, threads: int, total: int) -> float:
    per_thread = total // threads

    def work(t):
        for i in range(per_thread):
            append(org, t * per_thread + i)

    return per_thread * threads / run_threads(threads, work)


def _new_org(slug: str) -> Organization:
    org = Organization.objects.create(slug=slug, name=slug)
    AuditChain.objects.create(chain=chain_key(org))
    return org


def main() -> str:
    with throwaway_database("audit"):
        total = APPENDS[connection.vendor]
        ours_org, naive_org = _new_org("bench-ours"), _new_org("bench-naive")
        for append, org in ((ours, ours_org), (naive, naive_org)):  # warm up both paths
            _rate(append, org, 1, 50)
        rows = []
        for threads in THREAD_COUNTS:
            peer_rate = our_rate = 0.0
            for _ in range(ROUNDS):
                peer_rate = max(peer_rate, _rate(naive, naive_org, threads, total // ROUNDS))
                our_rate = max(our_rate, _rate(ours, ours_org, threads, total // ROUNDS))
            rows.append([threads, f"{our_rate:,.0f}", f"{peer_rate:,.0f}", f"{our_rate / peer_rate:.2f}x"])
        verified = audit_verify_org(org=ours_org).ok and audit_verify_org(org=naive_org).ok
        kind = (
            "ours = one round trip to the audit_append() stored function; "
            "peer = SELECT FOR UPDATE + INSERT + UPDATE in a transaction"
            if connection.vendor == "postgresql"
            else "on SQLite audit_record takes the ORM path itself: both sides are the same kind of append"
        )
        table = format_table(["writers", "ours appends/s", "peer appends/s", "ours/peer"], rows)
        notes = [
            f"{total} appends per side per row, split over the writers (each thread its own connection);"
            f" best of {ROUNDS} alternating rounds.",
            kind,
            f"both chains verify after the run: {'yes' if verified else 'NO'}",
        ]
        return report("audit", "audit append", table, notes)
