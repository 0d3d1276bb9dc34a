"""The chain is keyed: someone who can write the database but holds no audit key cannot rewrite it.

Each entry's `hash` is the contract's SHA-256, which anyone can recompute; its `mac` is an
HMAC-SHA256 of that hash under a key of IAM_AUDIT_KEYS (kept in settings, never in the database),
named on the entry by its kid. A deleted or changed entry covered up by recomputing every SHA-256
after it leaves a chain whose hashes all check out, but whose MACs do not; rotating the key leaves
older entries verifying under theirs.
"""

import base64
import json

import pytest
from django.core.management import CommandError, call_command

from audit.actors import Actor
from audit.chain import hash_mac
from audit.events import AuditEvent
from audit.models import GENESIS_HASH, AuditChain, AuditEntry, chain_key
from audit.selectors import audit_verify_org
from audit.services import audit_record
from tests.audit.attacks import delete, raw, rechain, sha256_of
from tests.conftest import as_outside_requests

pytestmark = pytest.mark.django_db


def _key(byte: bytes) -> str:
    return base64.urlsafe_b64encode(byte * 32).decode()


def _chain(org, n=6) -> list[AuditEntry]:
    for i in range(n):
        audit_record(org=org, actor=Actor.system(), event=AuditEvent.ORG_UPDATED, data={"fields": [f"f{i}"]})
    return list(AuditEntry.objects.for_org(org).order_by("seq"))


def _assert_a_valid_sha256_chain(org, n):
    """What an auditor checking only the contract's hashes sees: nothing wrong."""
    stored = list(AuditEntry.objects.for_org(org).order_by("seq"))
    assert [e.seq for e in stored] == list(range(1, n + 1))
    prev = GENESIS_HASH
    for entry in stored:
        assert (entry.prev_hash, entry.hash) == (prev, sha256_of(entry))
        prev = entry.hash
    assert AuditChain.objects.get(pk=chain_key(org)).last_hash == prev


@pytest.mark.parametrize("legacy", [False, True], ids=["kid-kept", "marked-unkeyed"])
def test_deleting_an_entry_and_recomputing_the_sha256_chain_is_detected(org, legacy, capsys):
    entries = _chain(org)
    delete(entries[2])
    rechain(org, legacy=legacy)
    head = AuditChain.objects.get(pk=chain_key(org))
    assert (head.last_seq, AuditEntry.objects.for_org(org).count()) == (5, 5)  # a consistent rewrite
    _assert_a_valid_sha256_chain(org, 5)

    verdict = audit_verify_org(org=org)

    assert not verdict.ok
    if legacy:
        # Every entry now claims to predate keying, and nothing keyed follows them.
        assert verdict.first_bad_seq == 1 and "unkeyed" in verdict.reason
    else:
        # The first recomputed entry, the one that took the deleted entry's place, keeps a MAC over
        # the hash it had.
        assert verdict.first_bad_seq == 3 and "mac does not match" in verdict.reason
        assert verdict.first_bad_id == entries[3].id
    with pytest.raises(CommandError) as failure, as_outside_requests():
        call_command("audit_verify", "--org", org.slug)
    assert failure.value.returncode == 1
    assert "BROKEN" in capsys.readouterr().out


def test_changing_an_entry_and_recomputing_every_hash_after_it_is_detected_at_that_entry(org):
    entries = _chain(org)
    prev = entries[0].hash
    for entry in entries[1:]:
        entry.prev_hash = prev
        entry.data = {"fields": ["forged"]} if entry.seq == 2 else entry.data
        entry.hash = prev = sha256_of(entry)
    for entry in reversed(entries[1:]):  # (chain, prev_hash) is unique: the newest first
        raw("UPDATE audit_auditentry SET prev_hash = %s, hash = %s, data = %s WHERE id = %s",
            [entry.prev_hash, entry.hash, json.dumps(entry.data), entry.id])
    raw("UPDATE audit_auditchain SET last_hash = %s WHERE chain = %s", [prev, chain_key(org)])
    _assert_a_valid_sha256_chain(org, len(entries))

    verdict = audit_verify_org(org=org)

    assert not verdict.ok and (verdict.first_bad_id, verdict.first_bad_seq) == (entries[1].id, 2)
    assert "mac does not match" in verdict.reason


def test_entries_carry_the_contracts_sha256_and_a_mac(org, settings):
    entry = _chain(org, 1)[0]
    assert entry.hash_kid == next(iter(settings.IAM_AUDIT_KEYS))
    assert entry.hash == sha256_of(entry)
    assert entry.mac == hash_mac(entry.hash_kid, entry.hash) and entry.mac != entry.hash
    assert len(entry.mac) == 64


def test_the_same_content_under_another_key_does_not_verify(org, settings):
    _chain(org, 3)
    kid = next(iter(settings.IAM_AUDIT_KEYS))
    settings.IAM_AUDIT_KEYS = {kid: b"another key of the same id, 32 b"}

    verdict = audit_verify_org(org=org)

    assert not verdict.ok and verdict.first_bad_seq == 1 and "mac does not match" in verdict.reason


def test_rotating_the_audit_key_keeps_older_entries_verifying(org, settings):
    old = _chain(org, 3)
    old_kid = old[0].hash_kid
    settings.IAM_AUDIT_KEYS = {"next": base64.urlsafe_b64decode(_key(b"n")), **settings.IAM_AUDIT_KEYS}
    new = [audit_record(org=org, actor=Actor.system(), event=AuditEvent.ORG_UPDATED, data={"fields": ["x"]})
           for _ in range(2)]

    verdict = audit_verify_org(org=org)

    assert verdict.ok and verdict.checked == 5
    assert {e.hash_kid for e in old} == {old_kid} and {e.hash_kid for e in new} == {"next"}
    assert all(e.mac == hash_mac("next", e.hash) != hash_mac(old_kid, e.hash) for e in new)
    assert new[0].prev_hash == old[-1].hash  # one SHA-256 chain across the rotation
    assert all(e.hash == sha256_of(e) for e in old + new)


def test_an_entry_under_a_retired_key_is_named(org, settings):
    entries = _chain(org, 2)
    settings.IAM_AUDIT_KEYS = {"next": base64.urlsafe_b64decode(_key(b"n"))}
    audit_record(org=org, actor=Actor.system(), event=AuditEvent.ORG_UPDATED, data={"fields": ["x"]})

    verdict = audit_verify_org(org=org)

    assert not verdict.ok
    assert (verdict.first_bad_id, verdict.first_bad_seq) == (entries[0].id, 1)
    assert f"key {entries[0].hash_kid!r}" in verdict.reason and "IAM_AUDIT_KEYS" in verdict.reason


def test_changing_an_entrys_kid_is_detected(org, settings):
    settings.IAM_AUDIT_KEYS = {**settings.IAM_AUDIT_KEYS, "other": base64.urlsafe_b64decode(_key(b"o"))}
    entries = _chain(org, 3)
    raw("UPDATE audit_auditentry SET hash_kid = 'other' WHERE id = %s", [entries[1].id])

    verdict = audit_verify_org(org=org)

    assert not verdict.ok and verdict.first_bad_seq == 2 and "mac does not match" in verdict.reason


@pytest.mark.parametrize("mac", ["0" * 64, "é" * 64, ""], ids=["zeros", "not-ascii", "empty"])
def test_a_forged_mac_is_detected(org, mac):
    entries = _chain(org, 3)
    raw("UPDATE audit_auditentry SET mac = %s WHERE id = %s", [mac, entries[1].id])

    verdict = audit_verify_org(org=org)

    assert not verdict.ok and verdict.first_bad_id == entries[1].id and "mac does not match" in verdict.reason


@pytest.mark.parametrize("seq", [2, 3])
def test_an_unkeyed_entry_after_keyed_ones_is_refused(org, seq):
    entries = _chain(org, 3)
    # Its hash is already the SHA-256 an unkeyed entry carries: only the key id and MAC go.
    raw("UPDATE audit_auditentry SET hash_kid = '', mac = '' WHERE id = %s", [entries[seq - 1].id])

    verdict = audit_verify_org(org=org)

    assert not verdict.ok and verdict.first_bad_seq == seq and "unkeyed" in verdict.reason


def test_an_entry_stripped_of_its_key_id_but_not_its_mac_is_refused(org):
    entries = _chain(org, 3)
    raw("UPDATE audit_auditentry SET hash_kid = '' WHERE id = %s", [entries[0].id])

    verdict = audit_verify_org(org=org)

    assert not verdict.ok and verdict.first_bad_seq == 1 and "carries a MAC" in verdict.reason
