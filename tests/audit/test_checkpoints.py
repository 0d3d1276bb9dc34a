"""Signed checkpoints of an org's chain head: an auditor saves one, and later `audit_verify
--checkpoint` proves the chain still holds the entry it attested, which catches a truncated tail."""

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.core.management import CommandError, call_command

from audit.actors import Actor
from audit.events import AuditEvent
from audit.models import AuditEntry
from audit.selectors import audit_verify_org
from audit.services import audit_record
from core.permissions import Perm
from tests.audit.attacks import raw, sha256_of, truncate_to
from tests.conftest import as_outside_requests
from tests.factories import OrgFactory

pytestmark = pytest.mark.django_db


def _fill(org, n):
    for i in range(n):
        audit_record(org=org, actor=Actor.system(), event=AuditEvent.ORG_UPDATED, data={"fields": [f"f{i}"]})


def _checkpoint(client, org) -> dict:
    response = client.get(f"/api/v1/orgs/{org.slug}/audit/checkpoint")
    assert response.status_code == 200, response.content
    return response.json()


def _verify_against(org, checkpoint, tmp_path, capsys) -> tuple[int, str]:
    path = tmp_path / "checkpoint.json"
    path.write_text(json.dumps(checkpoint))
    try:
        with as_outside_requests():
            call_command("audit_verify", "--org", org.slug, "--checkpoint", str(path))
    except CommandError as failure:
        return failure.returncode, capsys.readouterr().out
    return 0, capsys.readouterr().out


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_a_checkpoint_verifies_offline_with_the_published_key(org, key_client):
    _fill(org, 3)
    client = key_client(Perm.AUDIT_READ)
    checkpoint = _checkpoint(client, org)
    jwks = client.get(f"/api/v1/orgs/{org.slug}/audit/checkpoint-keys").json()

    head = AuditEntry.objects.for_org(org).get(seq=3)
    assert {k: checkpoint[k] for k in ("type", "version", "org", "org_slug", "seq", "head", "alg")} == {
        "type": "iam.audit.checkpoint", "version": 1, "org": str(org.pk), "org_slug": org.slug, "seq": 3,
        "head": head.hash, "alg": "EdDSA"}
    assert head.hash == sha256_of(head)  # the contract's hash, which an auditor recomputes
    # What an auditor does with nothing of ours: the JWK, the canonical JSON, an Ed25519 library.
    [jwk] = [k for k in jwks["keys"] if k["kid"] == checkpoint["kid"]]
    assert (jwk["kty"], jwk["crv"], jwk["alg"]) == ("OKP", "Ed25519", "EdDSA")
    body = {k: v for k, v in checkpoint.items() if k != "signature"}
    signed = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    Ed25519PublicKey.from_public_bytes(_b64(jwk["x"])).verify(_b64(checkpoint["signature"]), signed)
    # Handing it out is recorded above the seq it attests: who took which checkpoint, never its signature.
    assert AuditEntry.objects.for_org(org).count() == 4
    issued = AuditEntry.objects.for_org(org).get(seq=4)
    assert (issued.event_name, issued.data) == ("audit.checkpoint_issued", {
        "seq": 3, "head": head.hash, "kid": checkpoint["kid"]})
    assert checkpoint["signature"] not in json.dumps(issued.data)


def test_truncation_after_a_checkpoint_is_detected(org, key_client, tmp_path, capsys):
    _fill(org, 6)
    checkpoint = _checkpoint(key_client(Perm.AUDIT_READ), org)
    _fill(org, 3)
    assert _verify_against(org, checkpoint, tmp_path, capsys) == (0, f"org {org.slug}: ok (10 entries, the "
                                                                   "checkpoint at seq 6 among them)\n")
    truncate_to(org, 4)

    # What is left is a genuine chain and its mark is gone, so on its own it verifies: only the saved
    # checkpoint knows better.
    assert audit_verify_org(org=org).ok
    code, out = _verify_against(org, checkpoint, tmp_path, capsys)

    assert code == 1
    assert "BROKEN at seq 5" in out and "truncated" in out


def test_truncation_covered_by_new_entries_is_detected(org, key_client, tmp_path, capsys):
    _fill(org, 6)
    checkpoint = _checkpoint(key_client(Perm.AUDIT_READ), org)
    truncate_to(org, 3)
    _fill(org, 5)  # the server keeps appending, with its key, after the cut

    assert audit_verify_org(org=org).ok
    code, out = _verify_against(org, checkpoint, tmp_path, capsys)

    sixth = AuditEntry.objects.for_org(org).get(seq=6)
    assert code == 1
    assert f"BROKEN at seq 6 (entry id {sixth.pk})" in out and "not the one it attested" in out


@pytest.mark.parametrize("field,value", [("seq", 2), ("head", "0" * 64), ("org_slug", "other"),
                                         ("signature", "AAAA")])
def test_an_altered_checkpoint_is_refused(org, key_client, tmp_path, capsys, field, value):
    _fill(org, 3)
    checkpoint = {**_checkpoint(key_client(Perm.AUDIT_READ), org), field: value}

    code, out = _verify_against(org, checkpoint, tmp_path, capsys)

    assert code == 1 and "signature does not verify" in out


def test_another_orgs_checkpoint_is_refused(org, key_client, tmp_path, capsys):
    other = OrgFactory()
    _fill(other, 2)
    checkpoint = _checkpoint(key_client(Perm.AUDIT_READ, for_org=other), other)

    code, out = _verify_against(org, checkpoint, tmp_path, capsys)

    assert code == 1 and "another organization's chain" in out


def test_a_broken_chain_gets_no_checkpoint(org, key_client, capsys):
    _fill(org, 3)
    third = AuditEntry.objects.for_org(org).get(seq=3)
    raw("UPDATE audit_auditentry SET outcome = 'failure' WHERE id = %s", [third.pk])

    response = key_client(Perm.AUDIT_READ).get(f"/api/v1/orgs/{org.slug}/audit/checkpoint")

    assert response.status_code == 409
    assert response.json()["error"] == "audit_chain_broken" and "seq 3" in response.json()["detail"]
    with pytest.raises(CommandError) as failure, as_outside_requests():
        call_command("audit_checkpoint", "--org", org.slug)
    assert failure.value.returncode == 1
    assert "signature" not in capsys.readouterr().out
    assert AuditEntry.objects.for_org(org).count() == 3


def test_checkpoints_signed_before_a_key_rotation_still_verify(org, key_client, settings, tmp_path, capsys):
    _fill(org, 2)
    checkpoint = _checkpoint(key_client(Perm.AUDIT_READ), org)
    old = dict(settings.IAM_AUDIT_KEYS)
    settings.IAM_AUDIT_KEYS = {"next": b"n" * 32, **old}
    _fill(org, 1)

    assert _verify_against(org, checkpoint, tmp_path, capsys)[0] == 0
    assert _checkpoint(key_client(Perm.AUDIT_READ), org)["kid"] == "next"
    settings.IAM_AUDIT_KEYS = {"next": b"n" * 32}  # the old key retired: its entries and checkpoints with it
    code, out = _verify_against(org, checkpoint, tmp_path, capsys)
    assert code == 1 and "IAM_AUDIT_KEYS" in out


def test_the_command_prints_a_checkpoint_and_the_public_keys(org, key_client, tmp_path, capsys):
    _fill(org, 2)
    with as_outside_requests():
        call_command("audit_checkpoint", "--org", org.slug)
    checkpoint = json.loads(capsys.readouterr().out)
    with as_outside_requests():
        call_command("audit_checkpoint", "--public-keys")
    jwks = json.loads(capsys.readouterr().out)

    assert checkpoint["seq"] == 2 and checkpoint["org"] == str(org.pk)
    assert jwks == key_client(Perm.AUDIT_READ).get(f"/api/v1/orgs/{org.slug}/audit/checkpoint-keys").json()
    assert _verify_against(org, checkpoint, tmp_path, capsys)[0] == 0


@pytest.mark.parametrize("path", ["audit/checkpoint", "audit/checkpoint-keys"])
def test_checkpoint_endpoints_follow_the_permission_matrix(org, key_client, api, path):
    _fill(org, 1)
    url = f"/api/v1/orgs/{org.slug}/{path}"
    assert api.get(url).status_code == 401
    assert key_client(Perm.MEMBER_READ).get(url).status_code == 403
    assert key_client(Perm.AUDIT_READ, for_org=OrgFactory()).get(url).status_code == 404
    assert key_client(Perm.AUDIT_READ).get(url).status_code == 200
    assert AuditEntry.objects.for_org(org).filter(event_code=AuditEvent.AUDIT_VERIFIED.code).count() == 0
