"""Signed checkpoints of a chain's head, which auditors keep outside the system.

A checkpoint says "this org's chain verified through seq N, whose hash is H", signed with the
Ed25519 key that audit/keys.py derives from the current audit key. Anyone can check the signature
offline with the published public key (`audit/checkpoint-keys`, or `audit_checkpoint
--public-keys`): remove `signature`, take the canonical JSON of the rest (sorted keys, no spaces,
ASCII only) and verify. H is the contract's SHA-256 hash, so an auditor also ties the checkpoint to
the entries offline: entry N of `audit/events` carries H, and the recomputed hashes and `prev_hash`
links lead from it back to seq 1. The entry's MAC is left out: it is a function of H under the
server's key, so it would attest nothing H does not, and nobody outside could check it.

Later, `audit_verify --checkpoint FILE` checks that the chain still holds entry N with hash H. That
catches what the chain alone cannot: deleting the newest entries and moving the head back leaves a
chain that verifies, but no longer through the saved checkpoint.
"""

import binascii
import re

from cryptography.exceptions import InvalidSignature
from django.utils import timezone

from audit import keys
from audit.actors import Actor
from audit.chain import canonical_json, format_ts
from audit.events import AuditEvent
from audit.models import AuditEntry, chain_key
from audit.selectors import audit_verify_org
from audit.services import audit_record, chain_verify_marked
from audit.verification import ChainVerdict
from core.errors import Conflict

TYPE = "iam.audit.checkpoint"
VERSION = 1
FIELDS = frozenset({"type", "version", "org", "org_slug", "seq", "head", "issued_at", "alg", "kid",
                    "signature"})
_HEX64 = re.compile(r"[0-9a-f]{64}")


def checkpoint_issue(*, org) -> dict:
    """A signed checkpoint of the org's head, once its chain verifies (from its mark: the head's hash
    commits to everything below it, and each MAC to its hash); a broken chain gets none, since a
    signature must never vouch for a tampered head."""
    verdict = chain_verify_marked(chain=chain_key(org))
    if not verdict.ok:
        raise Conflict(f"The audit chain is broken at seq {verdict.first_bad_seq}: {verdict.reason}",
                       code="audit_chain_broken")
    return checkpoint_sign({
        "type": TYPE, "version": VERSION, "org": str(org.pk), "org_slug": org.slug, "seq": verdict.head_seq,
        "head": verdict.head_hash, "issued_at": format_ts(timezone.now()),
    })


def checkpoint_issue_recorded(*, org, actor: Actor) -> dict:
    """`checkpoint_issue`, and who took which checkpoint (its seq, head and key) in the log, so the
    audit page and a later auditor know which signed statements exist outside the system. The entry
    lies above the seq it attests, so the checkpoint stays true."""
    checkpoint = checkpoint_issue(org=org)
    audit_record(org=org, actor=actor, event=AuditEvent.AUDIT_CHECKPOINT_ISSUED,
                 data={"seq": checkpoint["seq"], "head": checkpoint["head"], "kid": checkpoint["kid"]})
    return checkpoint


def checkpoint_sign(body: dict) -> dict:
    body = {**body, "alg": "EdDSA", "kid": keys.current_kid()}
    signature = keys.sign(body["kid"], canonical_json(body).encode("ascii"))
    return {**body, "signature": keys.b64url(signature)}


def checkpoint_fault(checkpoint) -> str:
    """Why `checkpoint` is not a checkpoint this server signed (unchanged since), or ""."""
    if not isinstance(checkpoint, dict) or set(checkpoint) != FIELDS:
        return "not a checkpoint: expected the fields " + ", ".join(sorted(FIELDS))
    if (checkpoint["type"], checkpoint["version"], checkpoint["alg"]) != (TYPE, VERSION, "EdDSA"):
        return "not a checkpoint of this kind (type, version or alg)"
    seq, head = checkpoint["seq"], checkpoint["head"]
    if type(seq) is not int or seq < 0 or not isinstance(head, str) or not _HEX64.fullmatch(head):
        return "the checkpoint's seq or head is malformed"
    public_key = keys.public_key(checkpoint["kid"]) if isinstance(checkpoint["kid"], str) else None
    if public_key is None:
        return f"the checkpoint is signed with key {checkpoint['kid']!r}, which IAM_AUDIT_KEYS does not hold"
    body = {k: v for k, v in checkpoint.items() if k != "signature"}
    try:
        public_key.verify(keys.unb64url(str(checkpoint["signature"])), canonical_json(body).encode("ascii"))
    except (InvalidSignature, ValueError, binascii.Error):
        return "the checkpoint's signature does not verify: it was altered, or not issued by this server"
    return ""


def audit_verify_checkpoint(*, org, checkpoint) -> ChainVerdict:
    """Verify the org's chain, then that it still holds the entry `checkpoint` attested."""
    chain = chain_key(org)
    fault = checkpoint_fault(checkpoint)
    if not fault and checkpoint["org"] != str(org.pk):
        fault = f"the checkpoint is of another organization's chain ({checkpoint['org_slug']})"
    if fault:
        return ChainVerdict(chain, False, 0, reason=fault)
    verdict = audit_verify_org(org=org)
    if not verdict.ok:
        return verdict
    seq, head = checkpoint["seq"], checkpoint["head"]
    if seq > verdict.head_seq:
        return ChainVerdict(
            chain, False, verdict.checked, None, verdict.head_seq + 1,
            f"the chain ends at seq {verdict.head_seq}, before the checkpoint's seq {seq}: its newest "
            "entries were deleted (truncated)")
    attested = AuditEntry.objects.for_org(org).filter(seq=seq).values_list("id", "hash").first()
    if seq and attested[1] != head:
        return ChainVerdict(
            chain, False, verdict.checked, attested[0], seq,
            f"the entry at the checkpoint's seq {seq} is not the one it attested: the chain was rewritten")
    return verdict
