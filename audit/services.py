"""Appending to the audit log.

`audit_record` is called by services inside their own transaction, so an entry exists exactly when
the change it describes was committed. Every issued token writes an entry, so this is the hottest
write in the product. The entry's hash (the contract's SHA-256) and its MAC under the audit key are
computed here, in Python: the MAC's key must never reach the database (a statement log would hand it
to the very people the key defends against), and the MAC is over the hash, so both are made
together. On PostgreSQL the append is still one round trip in the steady state: the entry goes to
the `audit_append` function hashed against the head this process last saw; the function locks the
head row and inserts only if the head is still that one, otherwise it answers with the head it now
holds locked, and the second attempt (hashed and MAC'd again against it) cannot lose. Elsewhere
(SQLite) the same steps run here, serialised by SQLite's write lock.
"""

import datetime
import functools
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit.actors import Actor
from audit.chain import canonical_json, entry_seal
from audit.context import current_context
from audit.events import AuditEvent, Outcome
from audit.exports import access_review_count, access_review_csv
from audit.models import GENESIS_HASH, AuditChain, AuditEntry, AuditVerifiedMark, chain_key
from audit.selectors import audit_verified_last
from audit.verification import (
    ChainVerdict,
    Mark,
    chain_verify_full,
    chain_verify_incremental,
    mark_fields,
    mark_read,
)
from core.errors import DenialAudit, ServiceError


@dataclass(frozen=True)
class Target:
    type: str
    id: str

    @classmethod
    def of(cls, obj) -> "Target":
        return cls(obj._meta.model_name, str(obj.pk))


def _clean_text(value: str, limit: int | None = None) -> str:
    # PostgreSQL text and jsonb cannot hold NUL; lone surrogates cannot be encoded. Drop both.
    text = value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    return text[:limit] if limit else text


def _clean_value(value):
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return _clean_text(value, 1000)
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else value
        return [_clean_value(v) for v in items]
    if isinstance(value, dict):
        return {str(k): _clean_value(v) for k, v in value.items()}
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    # Floats and other types are stored as text so their JSON form survives a database round trip.
    return _clean_text(str(value), 1000)


def _clean_data(event: AuditEvent, data: dict | None) -> dict:
    data = data or {}
    unknown = set(data) - event.data_keys
    if unknown:
        # A programming error, caught by tests: only allow-listed keys, so no secret slips in.
        raise ValueError(f"{event.label} does not allow data keys {sorted(unknown)}")
    return {key: _clean_value(value) for key, value in data.items()}


def audit_record(
    *,
    org,
    actor: Actor,
    event: AuditEvent,
    outcome: str = Outcome.SUCCESS,
    target: Target | None = None,
    data: dict | None = None,
) -> AuditEntry:
    """Append one entry to the org's chain (or the platform chain when `org` is None)."""
    context = current_context.get()
    org_id = org.pk if org is not None else None
    entry = AuditEntry(
        org_id=org_id,
        chain=chain_key(org),
        ts=timezone.now(),
        actor_type=actor.type,
        actor_id=_clean_text(actor.id, 64),
        actor_display=_clean_text(actor.display, 254),
        event_code=event.code,
        event_name=event.label,
        outcome=outcome,
        ip=context.ip,
        user_agent=_clean_text(context.user_agent, 512),
        correlation_id=context.correlation_id,
        target_type=target.type if target else "",
        target_id=_clean_text(target.id, 64) if target else "",
        data=_clean_data(event, data),
    )
    if connection.vendor == "postgresql":
        return _append_postgresql(entry)
    return _append_generic(entry)


_APPEND_SQL = (
    "SELECT new_id, head_seq, head_hash FROM audit_append("
    "%s, %s::uuid, %s, %s, %s, %s, %s, %s, %s, %s::inet, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s)"
)
# The head each chain had after this process's last append: a guess, checked under the lock by the
# append function. A wrong guess (another process appended, or a transaction rolled back) costs one
# more round trip, never a wrong entry.
_HEADS: dict[str, tuple[int, str]] = {}
_HEADS_MAX = 10_000


def _append_postgresql(entry: AuditEntry) -> AuditEntry:
    data = canonical_json(entry.data)
    seq, prev = _HEADS.get(entry.chain, (0, GENESIS_HASH))
    # savepoint=False: no extra statement; outside a transaction it opens one, so the head row that
    # a refused first attempt locked stays locked for the second.
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        for _ in range(2):
            entry.seq, entry.prev_hash = seq + 1, prev
            entry_seal(entry)
            cursor.execute(_APPEND_SQL, [
                entry.chain, str(entry.org_id) if entry.org_id else None, entry.ts, entry.actor_type,
                entry.actor_id, entry.actor_display, entry.event_code, entry.event_name, entry.outcome,
                entry.ip, entry.user_agent, entry.correlation_id, entry.target_type, entry.target_id, data,
                entry.seq, entry.prev_hash, entry.hash, entry.hash_kid, entry.mac,
            ])
            entry_id, seq, prev = cursor.fetchone()
            if entry_id is not None:
                break
        else:
            raise RuntimeError(f"audit chain {entry.chain}: the head moved while it was locked")
    if len(_HEADS) >= _HEADS_MAX:
        _HEADS.clear()
    _HEADS[entry.chain] = (entry.seq, entry.hash)
    entry.id = entry_id
    entry._state.adding = False
    entry._state.db = connection.alias
    return entry


def chain_open(*, org) -> None:
    """Start an org's chain (its head row). Appends also create it on first use, under the lock."""
    AuditChain.objects.get_or_create(chain=chain_key(org))


def _append_generic(entry: AuditEntry) -> AuditEntry:
    with transaction.atomic():
        head, _ = AuditChain.objects.select_for_update().get_or_create(chain=entry.chain)
        entry.seq = head.last_seq + 1
        entry.prev_hash = head.last_hash
        entry_seal(entry)
        entry.save()
        AuditChain.objects.filter(pk=head.pk).update(last_seq=entry.seq, last_hash=entry.hash)
    return entry


@dataclass(frozen=True)
class AuditAs:
    """How a caller has an effect service record its change, when not as the effect's own event.

    `event` and `data`: as this event instead (a SCIM group mapping granting a role is recorded as
    `scim.mapping_granted`). `within`: as part of one summary entry of that event which the caller
    writes in the same transaction (SCIM's `member.deprovisioned` names every consequence). Either
    way the change is on record exactly once; an effect is never silent on its own.
    """

    event: AuditEvent | None = None
    data: dict | None = None
    within: AuditEvent | None = None


def audit_effect(*, org, actor: Actor, event: AuditEvent, target: Target | None, data: dict,
                 audit_as: AuditAs | None = None) -> None:
    """An effect service's entry: its own `event` and `data`, or as `audit_as` says."""
    if audit_as is None:
        audit_record(org=org, actor=actor, event=event, target=target, data=data)
    elif audit_as.within is None:
        audit_record(org=org, actor=actor, event=audit_as.event, target=target, data=audit_as.data)


def cross_tenant(org, actor: Actor):
    """The audit entry of a service refusing another org's object (core.tenancy.assert_same_org)."""
    def denial(obj) -> DenialAudit:
        return DenialAudit(org=org, actor=actor, event=AuditEvent.CROSS_TENANT_DENIED,
                           data={"object": obj._meta.model_name, "id": str(obj.pk)})
    return denial


def records_denials(service):
    """Outermost decorator for services: a refused change rolls back, then its denial is logged."""

    @functools.wraps(service)
    def wrapper(*args, **kwargs):
        try:
            return service(*args, **kwargs)
        except ServiceError as exc:
            if exc.audit is not None:
                a = exc.audit
                audit_record(
                    org=a.org, actor=a.actor, event=a.event, outcome=Outcome.DENIED,
                    target=a.target, data=a.data,
                )
            raise

    return wrapper


def _mark_keep(chain: str, previous: Mark | None, mark: Mark | None) -> None:
    if mark is None or mark == previous:
        return  # nothing verified, or nothing moved: a repeated verification writes nothing
    AuditVerifiedMark.objects.bulk_create(
        [AuditVerifiedMark(chain=chain, verified_at=timezone.now(), **mark_fields(chain, mark))],
        update_conflicts=True, unique_fields=["chain"],
        update_fields=["seq", "hash", "recheck_seq", "verified_at", "kid", "mac"],
    )


@transaction.atomic
def chain_verify_marked(*, chain: str) -> ChainVerdict:
    """Verify a chain from its mark (audit/verification.py), then move the mark."""
    previous, _ = mark_read(chain)
    verdict, mark = chain_verify_incremental(chain)
    _mark_keep(chain, previous, mark)
    return verdict


@transaction.atomic
def chain_verify_whole(*, chain: str) -> ChainVerdict:
    """Walk a whole chain; when it verifies, mark it verified through its head."""
    previous, _ = mark_read(chain)
    verdict = chain_verify_full(chain)
    if verdict.ok:
        _mark_keep(chain, previous, Mark(verdict.head_seq, verdict.head_hash, 1))
    return verdict


def _verification_due(org, actor: Actor, verdict: ChainVerdict) -> bool:
    """Record a verification when this actor has none on record in the interval, or saw otherwise."""
    last = audit_verified_last(org=org, actor=actor)
    if last is None or (last["data"].get("ok"), last["data"].get("first_bad_seq")) != (
            verdict.ok, verdict.first_bad_seq):
        return True
    return timezone.now() - last["ts"] >= datetime.timedelta(seconds=settings.IAM_AUDIT_VERIFY_RECORD_SECONDS)


@transaction.atomic
def audit_verify_recorded(*, org, actor: Actor) -> ChainVerdict:
    """Verify an org's chain from its mark. Who checked it and what they saw is recorded once per
    actor per IAM_AUDIT_VERIFY_RECORD_SECONDS, and whenever the verdict changes: a read that wrote an
    entry every time would grow the very log it checks."""
    verdict = chain_verify_marked(chain=chain_key(org))
    if _verification_due(org, actor, verdict):
        audit_record(org=org, actor=actor, event=AuditEvent.AUDIT_VERIFIED, data={
            "ok": verdict.ok, "checked": verdict.checked, "first_bad_seq": verdict.first_bad_seq})
    return verdict


@transaction.atomic
def access_review_export(*, org, actor: Actor, sources, bom: bool = False):
    """Record the export (with its row count) and return the CSV stream of `sources`."""
    audit_record(org=org, actor=actor, event=AuditEvent.ACCESS_REVIEW_EXPORTED, target=Target.of(org),
                 data={"rows": access_review_count(org, sources)})
    return access_review_csv(org, sources, bom=bom)
