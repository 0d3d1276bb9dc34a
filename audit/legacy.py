"""Sealing chains written before entries were keyed (migration audit/0005).

Those entries keep their hashes (the same SHA-256 every entry carries) with `hash_kid` "" and no
`mac`: the log is append-only, and a MAC added now would claim they were keyed when written, which
they were not. Instead each chain whose newest entry is unkeyed gets one
keyed `audit.chain_keyed` entry on top. Its hash commits to the last unkeyed hash and its MAC to its
hash, so no unkeyed entry can change, even with every SHA-256 after it recomputed, without that MAC
failing; and the verifier accepts unkeyed entries only below a keyed one, so a chain rewritten
without the key (all of it unkeyed, or unkeyed after keyed) fails. Sealing checks nothing: a break
among the unkeyed entries stays a break, reported as before.

The functions take the model classes, so the migration can hand in its historical ones.
"""

from django.utils import timezone

from audit import keys
from audit.chain import LEGACY_KID, entry_seal
from audit.events import AuditEvent, Outcome
from audit.models import PLATFORM_CHAIN


def legacy_chain_seal(head, *, entry_model):
    """Append the sealing entry to the chain whose locked head row is `head`, if it needs one."""
    if head.last_seq == 0:
        return None
    newest = entry_model.objects.filter(chain=head.chain, seq=head.last_seq)
    if newest.values_list("hash_kid", flat=True).first() not in (None, LEGACY_KID):
        return None  # already keyed
    event = AuditEvent.AUDIT_CHAIN_KEYED
    entry = entry_model(
        org_id=None if head.chain == PLATFORM_CHAIN else head.chain, chain=head.chain, seq=head.last_seq + 1,
        prev_hash=head.last_hash, ts=timezone.now(), actor_type="system", actor_id="", actor_display="audit",
        event_code=event.code, event_name=event.label, outcome=Outcome.SUCCESS, ip=None, user_agent="",
        correlation_id="", target_type="", target_id="",
        data={"legacy_entries": head.last_seq, "kid": keys.current_kid()},
    )
    entry_seal(entry)
    entry.save()
    type(head).objects.filter(pk=head.pk).update(last_seq=entry.seq, last_hash=entry.hash)
    return entry


def legacy_chains_seal(*, chain_model, entry_model) -> int:
    """Seal every chain that ends in unkeyed entries; returns how many were sealed."""
    sealed = 0
    for head in chain_model.objects.select_for_update().filter(last_seq__gt=0).order_by("chain"):
        sealed += legacy_chain_seal(head, entry_model=entry_model) is not None
    return sealed
