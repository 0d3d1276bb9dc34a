"""The chain as CONTRACT.md publishes it: an auditor with nothing but the admin API recomputes every
entry's `hash` (SHA-256 over the canonical JSON of the entry, `prev_hash` included) and follows the
`prev_hash` links from the genesis hash to the head. Whatever else the server keeps (the MACs under
its audit key) must not change what `hash` is."""

import hashlib
import json

import pytest

from audit.actors import Actor
from audit.events import AuditEvent
from audit.legacy import legacy_chains_seal
from audit.models import GENESIS_HASH, AuditChain, AuditEntry, chain_key
from audit.services import Target, audit_record
from core.permissions import Perm
from tests.audit.test_legacy_chain import _legacy_chain

pytestmark = pytest.mark.django_db

# The contract's entry fields; the hashed document is all of them but `id` and `hash`.
CONTRACT_FIELDS = {"id", "seq", "ts", "org", "actor", "event", "outcome", "ip", "user_agent",
                   "correlation_id", "target", "data", "prev_hash", "hash"}


def _api_entries(client, org) -> list[dict]:
    """Every entry of the org's log, read page by page through `next`, oldest first."""
    url, entries = f"/api/v1/orgs/{org.slug}/audit/events?page_size=4", []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        page = response.json()
        entries += page["results"]
        url = page["next"]
    return sorted(entries, key=lambda entry: entry["seq"])


def _contract_hash(entry: dict) -> str:
    """CONTRACT.md: SHA-256 over the canonical JSON (sorted keys, no whitespace, ASCII) of the entry
    including `prev_hash`, built from the API's JSON alone."""
    document = {field: value for field, value in entry.items() if field not in ("id", "hash")}
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _assert_the_contracts_chain(client, org, n: int) -> list[dict]:
    entries = _api_entries(client, org)
    assert [entry["seq"] for entry in entries] == list(range(1, n + 1))
    prev = GENESIS_HASH
    for entry in entries:
        assert set(entry) == CONTRACT_FIELDS
        assert entry["prev_hash"] == prev, f"seq {entry['seq']} does not link to seq {entry['seq'] - 1}"
        assert entry["hash"] == _contract_hash(entry), f"seq {entry['seq']}: hash is not the contract's"
        prev = entry["hash"]
    assert AuditChain.objects.get(pk=chain_key(org)).last_hash == prev  # the head is that SHA-256
    return entries


def _varied_entries(org, client, tag="a") -> None:
    """Entries with everything the canonical form has to get right: requests with an IPv6 peer, a
    user agent beyond ASCII and a correlation id; non-ASCII, NUL, nested and numeric data; targets."""
    for i in range(3):
        response = client.post(f"/api/v1/orgs/{org.slug}/teams", {"name": f"Équipe {tag}{i} ✓"},
                               format="json", REMOTE_ADDR="2001:DB8:0:0::1",
                               HTTP_USER_AGENT="Navigateur/1.0 (façade)",
                               HTTP_X_REQUEST_ID=f"req-contract-{i:04d}")
        assert response.status_code == 201, response.content
    audit_record(org=org, actor=Actor("human", "u-1", "Zoë <zoe@example.test>"),
                 event=AuditEvent.ORG_UPDATED, target=Target("organization", str(org.pk)),
                 data={"fields": ["name\x00", "ß", "日本", "\"q\""]})
    audit_record(org=org, actor=Actor.system(), event=AuditEvent.ACCESS_REVIEW_EXPORTED, data={"rows": 2**40})


def test_every_entry_recomputes_to_its_hash_from_the_api_alone(org, key_client, settings):
    client = key_client(Perm.AUDIT_READ, Perm.TEAM_WRITE)
    _varied_entries(org, client)
    # A key rotation changes nothing an auditor computes: the MAC is the server's, not the hash.
    settings.IAM_AUDIT_KEYS = {"next": b"n" * 32, **settings.IAM_AUDIT_KEYS}
    _varied_entries(org, client, tag="b")
    n = AuditEntry.objects.for_org(org).count()
    assert n >= 10

    entries = _assert_the_contracts_chain(client, org, n)

    assert any(entry["ip"] == "2001:db8::1" and entry["correlation_id"] for entry in entries)
    assert any(not json.dumps(entry, ensure_ascii=False).isascii() for entry in entries)


def test_a_sealed_legacy_chain_is_the_contracts_chain_throughout(org, key_client):
    _legacy_chain(org)
    legacy_chains_seal(chain_model=AuditChain, entry_model=AuditEntry)
    client = key_client(Perm.AUDIT_READ, Perm.TEAM_WRITE)
    _varied_entries(org, client)

    entries = _assert_the_contracts_chain(client, org, AuditEntry.objects.for_org(org).count())

    assert entries[4]["event"]["name"] == "audit.chain_keyed"


def test_the_verify_endpoint_agrees_with_the_recomputed_chain(org, key_client):
    client = key_client(Perm.AUDIT_READ, Perm.TEAM_WRITE)
    _varied_entries(org, client)

    verdict = client.get(f"/api/v1/orgs/{org.slug}/audit/verify").json()

    assert verdict["ok"] is True
    _assert_the_contracts_chain(client, org, verdict["head_seq"] + 1)  # and the verification's entry


def test_a_checkpoint_attests_the_hash_the_api_shows(org, key_client):
    client = key_client(Perm.AUDIT_READ, Perm.TEAM_WRITE)
    _varied_entries(org, client)
    checkpoint = client.get(f"/api/v1/orgs/{org.slug}/audit/checkpoint").json()

    # The chain holds the checkpoint's seq and, above it, the record that the checkpoint was taken.
    entries = _assert_the_contracts_chain(client, org, checkpoint["seq"] + 1)
    assert entries[-1]["event"]["name"] == "audit.checkpoint_issued"

    # So an auditor ties a saved checkpoint to the entries offline: the attested seq carries that hash.
    assert entries[checkpoint["seq"] - 1]["hash"] == checkpoint["head"]

