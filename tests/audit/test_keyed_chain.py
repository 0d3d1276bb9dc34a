"""The chain is keyed: someone who can write the database but holds no audit key cannot rewrite it.

Each entry's hash is an HMAC-SHA256 under a key of IAM_AUDIT_KEYS (kept in settings, never in the
database), named on the entry by its kid, so a deleted entry cannot be covered up by recomputing the
chain, and rotating the key leaves older entries verifying under theirs.
"""

import base64

import pytest
from django.core.management import CommandError, call_command

from audit.actors import Actor
from audit.events import AuditEvent
from audit.models import AuditChain, AuditEntry, chain_key
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


@pytest.mark.parametrize("legacy", [False, True], ids=["kid-kept", "marked-unkeyed"])
def test_deleting_an_entry_and_recomputing_the_chain_is_detected(org, legacy, capsys):
    entries = _chain(org)
    delete(entries[2])
    rechain(org, legacy=legacy)
    head = AuditChain.objects.get(pk=chain_key(org))
    assert (head.last_seq, AuditEntry.objects.for_org(org).count()) == (5, 5)  # a consistent rewrite

    verdict = audit_verify_org(org=org)

    assert not verdict.ok
    if legacy:
        # Every entry now claims to predate keying, and nothing keyed follows them.
        assert verdict.first_bad_seq == 1 and "unkeyed" in verdict.reason
    else:
        # The first recomputed entry is the one that took the deleted entry's place.
        assert verdict.first_bad_seq == 3 and "altered" in verdict.reason
    with pytest.raises(CommandError) as failure, as_outside_requests():
        call_command("audit_verify", "--org", org.slug)
    assert failure.value.returncode == 1
    assert "BROKEN" in capsys.readouterr().out


def test_entries_are_keyed_not_plain_sha256(org, settings):
    entry = _chain(org, 1)[0]
    assert entry.hash_kid == next(iter(settings.IAM_AUDIT_KEYS))
    assert entry.hash != sha256_of(entry)
    assert len(entry.hash) == 64


def test_the_same_content_under_another_key_does_not_verify(org, settings):
    _chain(org, 3)
    kid = next(iter(settings.IAM_AUDIT_KEYS))
    settings.IAM_AUDIT_KEYS = {kid: b"another key of the same id, 32 b"}

    verdict = audit_verify_org(org=org)

    assert not verdict.ok and verdict.first_bad_seq == 1 and "altered" in verdict.reason


def test_rotating_the_audit_key_keeps_older_entries_verifying(org, settings):
    old = _chain(org, 3)
    old_kid = old[0].hash_kid
    settings.IAM_AUDIT_KEYS = {"next": base64.urlsafe_b64decode(_key(b"n")), **settings.IAM_AUDIT_KEYS}
    new = [audit_record(org=org, actor=Actor.system(), event=AuditEvent.ORG_UPDATED, data={"fields": ["x"]})
           for _ in range(2)]

    verdict = audit_verify_org(org=org)

    assert verdict.ok and verdict.checked == 5
    assert {e.hash_kid for e in old} == {old_kid} and {e.hash_kid for e in new} == {"next"}
    assert new[0].prev_hash == old[-1].hash


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

    assert not verdict.ok and verdict.first_bad_seq == 2 and "altered" in verdict.reason


def test_an_unkeyed_entry_after_keyed_ones_is_refused(org):
    entries = _chain(org, 3)
    last = entries[-1]
    last.hash_kid, last.hash = "", sha256_of(last)
    raw("UPDATE audit_auditentry SET hash_kid = '', hash = %s WHERE id = %s", [last.hash, last.id])
    raw("UPDATE audit_auditchain SET last_hash = %s WHERE chain = %s", [last.hash, chain_key(org)])

    verdict = audit_verify_org(org=org)

    assert not verdict.ok and verdict.first_bad_seq == 3 and "unkeyed" in verdict.reason
