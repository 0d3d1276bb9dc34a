from audit.events import AuditEvent, Outcome
from audit.models import AuditChain, AuditEntry, AuditVerifiedMark, chain_key
from audit.verification import ChainVerdict, chain_verify_full


def audit_entries_for_org(*, org, **filters):
    """Newest first; see `audit_filter` for the filters."""
    return audit_filter(AuditEntry.objects.for_org(org).order_by("-seq"), **filters)


def event_families() -> list[str]:
    """The prefixes of the event names ("agent" for agent.created, agent.revoked, ...), sorted."""
    return sorted({e.label.partition(".")[0] for e in AuditEvent})


def _family_codes(family: str) -> list[int]:
    return [e.code for e in AuditEvent if e.label.partition(".")[0] == family]


REFUSED = "refused"  # denied or failed: what the overview's "refused actions" lists


def audit_filter(qs, *, actor=None, actor_display=None, event=None, family=None, outcome=None,
                 target_type=None, target_id=None, correlation_id=None, since=None, until=None):
    """`actor` is "type:id" or an id (`actor_display`: a human actor's email as it was recorded);
    `event` is a code or a name, `family` an event name's prefix; `outcome` one of Outcome's values or
    "refused" (denied or failed); `since` inclusive, `until` not."""
    if actor:
        actor_type, _, actor_id = actor.rpartition(":")
        qs = qs.filter(actor_id=actor_id)
        if actor_type:
            qs = qs.filter(actor_type=actor_type)
    if actor_display:
        qs = qs.filter(actor_type="human", actor_display__iexact=actor_display)
    if event:
        qs = qs.filter(event_code=_event_code(event))
    if family:
        qs = qs.filter(event_code__in=_family_codes(family))
    if outcome == REFUSED:
        qs = qs.filter(outcome__in=[Outcome.DENIED, Outcome.FAILURE])
    elif outcome:
        qs = qs.filter(outcome=outcome)
    if target_type:
        qs = qs.filter(target_type=target_type)
    if target_id:
        qs = qs.filter(target_id=target_id)
    if correlation_id:
        qs = qs.filter(correlation_id=correlation_id)
    if since:
        qs = qs.filter(ts__gte=since)
    if until:
        qs = qs.filter(ts__lt=until)
    return qs


def _event_code(event: str) -> int:
    event = str(event)
    if event.isascii() and event.isdigit():  # "²" is a digit to str.isdigit, and no int
        return int(event)
    try:
        return AuditEvent.from_label(event).code
    except KeyError:
        return -1  # an unknown event name matches nothing


def audit_verify_chain(*, chain: str) -> ChainVerdict:
    """Walk one whole chain and name the first entry that breaks it (audit/verification.py)."""
    return chain_verify_full(chain)


def audit_verify_org(*, org) -> ChainVerdict:
    return audit_verify_chain(chain=chain_key(org))


def audit_chains() -> list[str]:
    return list(AuditChain.objects.order_by("chain").values_list("chain", flat=True))


def audit_verified_last(*, org, actor) -> dict | None:
    """When `actor` last had this org's chain verified, and what it saw (`ts`, `data`), if ever."""
    return (AuditEntry.objects.for_org(org)
            .filter(event_code=AuditEvent.AUDIT_VERIFIED.code, actor_type=actor.type, actor_id=actor.id)
            .order_by("-seq").values("ts", "data").first())


def audit_verified_latest(*, org) -> dict | None:
    """The org's newest chain verification on record, by anyone: `seq`, `ts`, `actor_display`, `data`."""
    return (AuditEntry.objects.for_org(org).filter(event_code=AuditEvent.AUDIT_VERIFIED.code)
            .order_by("-seq").values("seq", "ts", "actor_type", "actor_display", "data").first())


def audit_checkpoint_latest(*, org) -> dict | None:
    """The newest signed checkpoint handed out for the org's chain: `ts`, `actor_display`, `data` (its
    `seq`, `head` and `kid`), if any was."""
    return (AuditEntry.objects.for_org(org).filter(event_code=AuditEvent.AUDIT_CHECKPOINT_ISSUED.code)
            .order_by("-seq").values("ts", "actor_type", "actor_display", "data").first())


def audit_entry(*, org, seq: int):
    """One entry of the org's chain by its seq, or None (another org's seq is not this org's)."""
    return AuditEntry.objects.for_org(org).filter(seq=seq).first()


def audit_mark(*, org) -> dict | None:
    """How far the org's chain last verified (its mark): `seq`, `verified_at`, `kid`, if ever."""
    return AuditVerifiedMark.objects.filter(pk=chain_key(org)).values("seq", "verified_at", "kid").first()
