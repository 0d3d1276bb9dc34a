"""Tampering with stored audit entries is detected by the verifier, which names the first bad entry.

The ORM refuses to change entries, and on PostgreSQL so does a trigger, so these tests tamper the
way an attacker with superuser database access would: raw SQL, with the trigger disabled inside the
test's transaction (which rolls the ALTER TABLE back with everything else).
"""

import pytest
from django.db import connection, transaction
from django.db.utils import Error as DatabaseError

from audit.actors import Actor
from audit.events import AuditEvent
from audit.models import AuditEntry
from audit.selectors import audit_verify_org
from audit.services import audit_record

pytestmark = pytest.mark.django_db

ENTRIES = 6


def _chain(org, n=ENTRIES) -> list[AuditEntry]:
    for i in range(n):
        audit_record(org=org, actor=Actor.system(), event=AuditEvent.ORG_UPDATED,
                     data={"fields": [f"field-{i}"]})
    return list(AuditEntry.objects.for_org(org).order_by("seq"))


def _raw(sql: str, params=()) -> None:
    """Run SQL as an attacker would: past the ORM, and on PostgreSQL past the trigger too."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Django's foreign keys are deferred; ALTER TABLE refuses while their checks are pending.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE audit_auditentry DISABLE TRIGGER audit_entry_immutable")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        cursor.execute(sql, params)


def test_an_untouched_chain_verifies(org):
    _chain(org)

    verdict = audit_verify_org(org=org)

    assert verdict.ok
    assert verdict.checked == ENTRIES


def test_altered_data_names_the_altered_entry(org):
    entries = _chain(org)
    victim = entries[2]
    _raw("UPDATE audit_auditentry SET data = %s WHERE id = %s", ['{"fields": ["forged"]}', victim.id])

    verdict = audit_verify_org(org=org)

    assert not verdict.ok
    assert (verdict.first_bad_id, verdict.first_bad_seq) == (victim.id, victim.seq)
    assert "altered" in verdict.reason
    assert verdict.checked == victim.seq - 1


def test_deleted_middle_entry_names_the_next_entry(org):
    entries = _chain(org)
    deleted, following = entries[2], entries[3]
    _raw("DELETE FROM audit_auditentry WHERE id = %s", [deleted.id])

    verdict = audit_verify_org(org=org)

    assert not verdict.ok
    assert (verdict.first_bad_id, verdict.first_bad_seq) == (following.id, following.seq)
    assert "missing" in verdict.reason


def test_deleted_last_entry_is_reported_against_the_chain_head(org):
    entries = _chain(org)
    _raw("DELETE FROM audit_auditentry WHERE id = %s", [entries[-1].id])

    verdict = audit_verify_org(org=org)

    assert not verdict.ok
    assert verdict.first_bad_id is None
    assert verdict.first_bad_seq == ENTRIES
    assert f"chain head records seq {ENTRIES}" in verdict.reason
    assert verdict.checked == ENTRIES - 1


def test_swapped_seq_values_are_detected_at_the_first_swapped_seq(org):
    entries = _chain(org)
    first, second = entries[1], entries[4]
    # (chain, seq) is unique and checked per row, so the swap goes through a free seq.
    _raw("UPDATE audit_auditentry SET seq = -1 WHERE id = %s", [first.id])
    _raw("UPDATE audit_auditentry SET seq = %s WHERE id = %s", [first.seq, second.id])
    _raw("UPDATE audit_auditentry SET seq = %s WHERE id = %s", [second.seq, first.id])

    verdict = audit_verify_org(org=org)

    assert not verdict.ok
    assert (verdict.first_bad_id, verdict.first_bad_seq) == (second.id, first.seq)
    assert "reordered" in verdict.reason


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the immutability trigger is PostgreSQL's")
@pytest.mark.parametrize(
    "sql", ["UPDATE audit_auditentry SET outcome = 'x'", "DELETE FROM audit_auditentry"]
)
def test_trigger_rejects_raw_update_and_delete(org, sql):
    entries = _chain(org, 2)

    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)

    stored = list(AuditEntry.objects.for_org(org).order_by("seq"))
    assert [(e.id, e.outcome, e.hash) for e in stored] == [(e.id, e.outcome, e.hash) for e in entries]
    assert audit_verify_org(org=org).ok
