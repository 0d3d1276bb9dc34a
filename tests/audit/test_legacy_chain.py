"""Chains written before entries were keyed: their unkeyed entries (the contract's SHA-256, no MAC)
stay as they were and verify once a keyed `audit.chain_keyed` entry seals them (migration
audit/0005); rewriting them still fails, even with every SHA-256 after them recomputed."""

import json
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from audit.actors import Actor
from audit.events import AuditEvent
from audit.legacy import legacy_chains_seal
from audit.models import GENESIS_HASH, AuditChain, AuditEntry, chain_key
from audit.selectors import audit_verify_org
from audit.services import audit_record
from tests.audit.attacks import delete, raw, sha256_of

pytestmark = pytest.mark.django_db

LEGACY = 4


def _legacy_chain(org, n=LEGACY) -> list[AuditEntry]:
    """Entries as the previous release wrote them: plain SHA-256, no key id."""
    prev = GENESIS_HASH
    for seq in range(1, n + 1):
        entry = AuditEntry(org_id=org.pk, chain=chain_key(org), seq=seq, prev_hash=prev, ts=timezone.now(),
                           actor_type="system", actor_display="system", event_code=202,
                           event_name="org.updated", outcome="success", data={"fields": [f"f{seq}"]})
        entry.hash = prev = sha256_of(entry)
        entry.save()
    AuditChain.objects.filter(pk=chain_key(org)).update(last_seq=n, last_hash=prev)
    return list(AuditEntry.objects.for_org(org).order_by("seq"))


def _seal() -> int:
    return legacy_chains_seal(chain_model=AuditChain, entry_model=AuditEntry)


def test_an_unsealed_legacy_chain_does_not_verify(org):
    _legacy_chain(org)

    verdict = audit_verify_org(org=org)

    assert not verdict.ok and verdict.first_bad_seq == 1 and "unkeyed" in verdict.reason


def test_sealing_keys_the_chain_without_rewriting_it(org, settings):
    before = [(e.id, e.hash, e.hash_kid) for e in _legacy_chain(org)]

    assert _seal() == 1
    assert _seal() == 0  # a keyed chain needs no second seal

    entries = list(AuditEntry.objects.for_org(org).order_by("seq"))
    assert [(e.id, e.hash, e.hash_kid) for e in entries[:LEGACY]] == before
    seal = entries[-1]
    assert seal.event_name == "audit.chain_keyed" and seal.seq == LEGACY + 1
    assert seal.data == {"legacy_entries": LEGACY, "kid": next(iter(settings.IAM_AUDIT_KEYS))}
    assert seal.prev_hash == before[-1][1] and seal.hash_kid and seal.mac
    assert seal.hash == sha256_of(seal) and {e.mac for e in entries[:LEGACY]} == {""}
    audit_record(org=org, actor=Actor.system(), event=AuditEvent.ORG_UPDATED, data={"fields": ["x"]})
    verdict = audit_verify_org(org=org)
    assert verdict.ok and verdict.checked == LEGACY + 2


def test_a_legacy_entry_changed_after_sealing_is_named(org):
    entries = _legacy_chain(org)
    _seal()
    raw("UPDATE audit_auditentry SET data = %s WHERE id = %s", ['{"fields": ["forged"]}', entries[1].id])

    verdict = audit_verify_org(org=org)

    assert not verdict.ok and verdict.first_bad_id == entries[1].id and "altered" in verdict.reason


def test_recomputing_the_legacy_entries_breaks_at_the_seal(org):
    entries = _legacy_chain(org)
    _seal()
    # Anyone can recompute unkeyed hashes: change the second entry and redo the rest of the prefix.
    prev = entries[0].hash
    for entry in entries[1:]:
        entry.prev_hash = prev
        entry.data = {"fields": ["forged"]} if entry.seq == 2 else entry.data
        entry.hash = prev = sha256_of(entry)
    for entry in reversed(entries[1:]):  # (chain, prev_hash) is unique: the newest first
        raw("UPDATE audit_auditentry SET prev_hash = %s, hash = %s, data = %s WHERE id = %s",
            [entry.prev_hash, entry.hash, json.dumps(entry.data), entry.id])

    verdict = audit_verify_org(org=org)

    assert not verdict.ok and verdict.first_bad_seq == LEGACY + 1
    assert "prev_hash does not match" in verdict.reason


def test_recomputing_the_legacy_entries_and_the_seals_hash_breaks_at_the_seals_mac(org):
    entries = _legacy_chain(org)
    _seal()
    audit_record(org=org, actor=Actor.system(), event=AuditEvent.ORG_UPDATED, data={"fields": ["x"]})
    # Everything from the changed entry on gets its SHA-256 recomputed, the seal and after included.
    chain = list(AuditEntry.objects.for_org(org).order_by("seq"))
    prev = chain[0].hash
    for entry in chain[1:]:
        entry.prev_hash = prev
        entry.data = {"fields": ["forged"]} if entry.seq == 2 else entry.data
        entry.hash = prev = sha256_of(entry)
    for entry in reversed(chain[1:]):
        raw("UPDATE audit_auditentry SET prev_hash = %s, hash = %s, data = %s WHERE id = %s",
            [entry.prev_hash, entry.hash, json.dumps(entry.data), entry.id])
    raw("UPDATE audit_auditchain SET last_hash = %s WHERE chain = %s", [prev, chain_key(org)])

    verdict = audit_verify_org(org=org)

    # The unkeyed entries carry no MAC, so the first one that gives the rewrite away is the seal.
    assert not verdict.ok and (verdict.first_bad_id, verdict.first_bad_seq) == (chain[LEGACY].id, LEGACY + 1)
    assert "mac does not match" in verdict.reason and chain[1].id == entries[1].id


def test_dropping_the_seal_to_leave_an_unkeyed_chain_is_detected(org):
    entries = _legacy_chain(org)
    _seal()
    delete(AuditEntry.objects.for_org(org).get(seq=LEGACY + 1))
    raw("UPDATE audit_auditchain SET last_seq = %s, last_hash = %s WHERE chain = %s",
        [LEGACY, entries[-1].hash, chain_key(org)])

    verdict = audit_verify_org(org=org)

    assert not verdict.ok and verdict.first_bad_seq == 1 and "unkeyed" in verdict.reason


def _legacy_rows_before_0005(org, n=LEGACY) -> None:
    """The previous release's rows, written in the 0004 schema (no hash_kid column)."""
    prev = GENESIS_HASH
    with connection.cursor() as cursor:
        for seq in range(1, n + 1):
            entry = SimpleNamespace(
                org_id=org.pk, seq=seq, prev_hash=prev, ts=timezone.now(), actor_type="system", actor_id="",
                actor_display="system", event_code=202, event_name="org.updated", outcome="success", ip=None,
                user_agent="", correlation_id="", target_type="", target_id="", data={"fields": ["a"]})
            prev = sha256_of(entry)
            cursor.execute(
                "INSERT INTO audit_auditentry (org_id, chain, seq, ts, actor_type, actor_id, actor_display, "
                "event_code, event_name, outcome, ip, user_agent, correlation_id, target_type, target_id, "
                "data, prev_hash, hash) VALUES (%s, %s, %s, %s, 'system', '', 'system', 202, 'org.updated', "
                "'success', NULL, '', '', '', '', %s, %s, %s)",
                [org.pk.hex if connection.vendor == "sqlite" else org.pk, chain_key(org), seq, entry.ts,
                 '{"fields": ["a"]}', entry.prev_hash, prev])
        cursor.execute("UPDATE audit_auditchain SET last_seq = %s, last_hash = %s WHERE chain = %s",
                       [n, prev, chain_key(org)])


@pytest.mark.django_db(transaction=True)
def test_the_migration_seals_existing_chains_and_they_verify():
    from tests.factories import OrgFactory

    org = OrgFactory()
    call_command("migrate", "audit", "0004", verbosity=0)
    try:
        _legacy_rows_before_0005(org)
    finally:
        call_command("migrate", "audit", verbosity=0)

    entries = list(AuditEntry.objects.for_org(org).order_by("seq"))
    assert [(e.hash_kid, e.mac) for e in entries[:LEGACY]] == [("", "")] * LEGACY
    assert all(e.hash == sha256_of(e) for e in entries)  # untouched, and the seal's the same kind
    assert entries[-1].event_name == "audit.chain_keyed" and entries[-1].hash_kid and entries[-1].mac
    audit_record(org=org, actor=Actor.system(), event=AuditEvent.ORG_UPDATED, data={"fields": ["x"]})
    verdict = audit_verify_org(org=org)
    assert verdict.ok and verdict.checked == LEGACY + 2
