import hashlib
import hmac

import pytest
from django.db import connection

from audit import keys, services
from audit.actors import Actor
from audit.apps import audit_keys_check
from audit.chain import canonical_json, entry_document, entry_hash, hash_mac
from audit.events import AuditEvent
from audit.models import AppendOnlyError, AuditChain, AuditEntry, chain_key
from audit.selectors import audit_verify_org
from audit.services import audit_record

pytestmark = pytest.mark.django_db


def _record(org, n=1, **data):
    return [
        audit_record(org=org, actor=Actor.system(), event=AuditEvent.ORG_UPDATED,
                     data={"fields": [f"f{i}", "ü\x00"]})
        for i in range(n)
    ]


def test_the_hash_is_the_sha256_of_the_canonical_json_and_the_mac_an_hmac_of_it(org, settings):
    entry = _record(org)[0]
    material = canonical_json(entry_document(entry)).encode("ascii")
    assert entry.hash == hashlib.sha256(material).hexdigest()
    mac_key = keys._derive(settings.IAM_AUDIT_KEYS[entry.hash_kid], keys._MAC_LABEL)
    assert entry.mac == hmac.new(mac_key, entry.hash.encode("ascii"), hashlib.sha256).hexdigest()
    assert entry.hash_kid == next(iter(settings.IAM_AUDIT_KEYS))
    stored = AuditEntry.objects.for_org(org).get(pk=entry.pk)
    assert (stored.hash, stored.hash_kid, stored.mac, stored.seq, stored.prev_hash) == (
        entry.hash, entry.hash_kid, entry.mac, 1, "0" * 64)
    assert AuditChain.objects.get(pk=chain_key(org)).last_hash == entry.hash


def test_entries_form_a_linear_chain_that_verifies(org):
    entries = _record(org, 5)
    stored = list(AuditEntry.objects.for_org(org).order_by("seq"))
    assert [e.seq for e in stored] == [1, 2, 3, 4, 5]
    assert stored[0].prev_hash == "0" * 64
    for previous, entry in zip(stored, stored[1:], strict=False):
        assert entry.prev_hash == previous.hash
    assert [e.hash for e in stored] == [e.hash for e in entries]
    assert all(entry_hash(e) == e.hash and hash_mac(e.hash_kid, e.hash) == e.mac for e in stored)
    assert audit_verify_org(org=org).ok


def test_chains_are_per_org(org):
    from tests.factories import OrgFactory

    other = OrgFactory()
    _record(org, 2)
    _record(other, 1)
    assert AuditEntry.objects.for_org(other).get().seq == 1


def test_nul_and_non_ascii_survive_a_round_trip(org):
    entry = _record(org)[0]
    stored = AuditEntry.objects.for_org(org).get(pk=entry.pk)
    assert stored.data == {"fields": ["f0", "ü"]}
    assert entry_hash(stored) == stored.hash == entry.hash


def test_data_keys_outside_the_allow_list_are_refused(org):
    with pytest.raises(ValueError):
        audit_record(org=org, actor=Actor.system(), event=AuditEvent.ORG_UPDATED,
                     data={"password": "hunter2"})
    assert not AuditEntry.objects.for_org(org).exists()


def test_orm_refuses_update_and_delete(org):
    entry = AuditEntry.objects.for_org(org).get(pk=_record(org)[0].pk)
    entry.outcome = "failure"
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.delete()
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.for_org(org).update(outcome="failure")
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.for_org(org).delete()
    assert AuditEntry.objects.for_org(org).get().outcome == "success"


def test_append_is_one_round_trip_on_postgresql(org, django_assert_num_queries):
    if connection.vendor != "postgresql":
        pytest.skip("the single-statement append is PostgreSQL's")
    with django_assert_num_queries(1):
        _record(org)


def test_a_stale_head_guess_costs_one_more_round_trip_on_postgresql(org, django_assert_num_queries):
    if connection.vendor != "postgresql":
        pytest.skip("the head guess is the PostgreSQL append's")
    _record(org, 2)
    services._HEADS[chain_key(org)] = (1, "f" * 64)  # as another process's appends leave it
    with django_assert_num_queries(2):
        [entry] = _record(org)
    assert (entry.seq, entry.prev_hash) == (3, AuditEntry.objects.for_org(org).get(seq=2).hash)
    with django_assert_num_queries(1):
        _record(org)
    assert audit_verify_org(org=org).ok


def test_a_key_id_too_long_to_store_stops_start_up(settings):
    settings.IAM_AUDIT_KEYS = {"k" * 33: b"x" * 32}
    assert [e.id for e in audit_keys_check()] == ["audit.E001"]
