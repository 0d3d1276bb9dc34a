"""What someone who can write the database, but holds none of the server's keys, can do to a chain.

They go past the ORM with raw SQL, and on PostgreSQL past the immutability trigger too (disabled
inside the test's transaction, which rolls the ALTER TABLE back with everything else).
"""

import hashlib

from django.db import connection

from audit.chain import canonical_json, entry_document
from audit.models import AuditEntry, chain_key


def raw(sql: str, params=()) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Django's foreign keys are deferred; ALTER TABLE refuses while their checks are pending.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE audit_auditentry DISABLE TRIGGER audit_entry_immutable")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        cursor.execute(sql, params)


def sha256_of(entry) -> str:
    """The contract's hash, which anyone can compute: SHA-256 of the published canonical form. The
    MAC over it needs the audit key."""
    return hashlib.sha256(canonical_json(entry_document(entry)).encode("ascii")).hexdigest()


def rechain(org, *, legacy: bool = False) -> None:
    """Renumber the org's entries 1..n, recompute prev_hash and the contract's SHA-256 hash from the
    first gap on, and move the head to match: a chain anyone checking the hashes alone accepts. The
    MACs cannot be recomputed without the key, so each entry keeps its own. `legacy` recomputes every
    entry, marked as written before the chain was keyed (hash_kid "" and mac "")."""
    entries = list(AuditEntry.objects.for_org(org).order_by("seq"))
    prev = "0" * 64
    for seq, entry in enumerate(entries, start=1):
        if legacy or (seq, prev) != (entry.seq, entry.prev_hash):  # the untouched start stays as it was
            entry.seq, entry.prev_hash = seq, prev
            entry.hash_kid, entry.mac = ("", "") if legacy else (entry.hash_kid, entry.mac)
            entry.hash = sha256_of(entry)
        # A placeholder first: (chain, prev_hash) is unique and the old values are still there.
        raw("UPDATE audit_auditentry SET prev_hash = %s, seq = %s WHERE id = %s",
            [f"x{entry.id}", -entry.id, entry.id])
        prev = entry.hash
    for entry in entries:
        fields = "seq = %s, prev_hash = %s, hash = %s" + (", hash_kid = '', mac = ''" if legacy else "")
        raw(f"UPDATE audit_auditentry SET {fields} WHERE id = %s",  # noqa: S608
            [entry.seq, entry.prev_hash, entry.hash, entry.id])
    raw("UPDATE audit_auditchain SET last_seq = %s, last_hash = %s WHERE chain = %s",
        [len(entries), prev, chain_key(org)])


def delete(*entries) -> None:
    for entry in entries:
        raw("DELETE FROM audit_auditentry WHERE id = %s", [entry.id])


def truncate_to(org, seq: int, *, erase_mark: bool = True) -> None:
    """Delete every entry after `seq` and move the head back: the chain left is genuine. Someone who
    knows the system also deletes the chain's verification mark, which would give the cut away."""
    kept = AuditEntry.objects.for_org(org).get(seq=seq)
    raw("DELETE FROM audit_auditentry WHERE chain = %s AND seq > %s", [chain_key(org), seq])
    raw("UPDATE audit_auditchain SET last_seq = %s, last_hash = %s WHERE chain = %s",
        [seq, kept.hash, chain_key(org)])
    if erase_mark:
        raw("DELETE FROM audit_auditverifiedmark WHERE chain = %s", [chain_key(org)])
