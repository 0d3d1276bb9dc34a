from audit.events import AuditEvent
from audit.models import AuditChain, AuditEntry, chain_key
from audit.verification import ChainVerdict, chain_verify_full


def audit_entries_for_org(*, org, **filters):
    """Newest first; see `audit_filter` for the filters."""
    return audit_filter(AuditEntry.objects.for_org(org).order_by("-seq"), **filters)


def audit_filter(qs, *, actor=None, event=None, since=None, until=None):
    """`actor` is "type:id" or an id; `event` is a code or a name; `since` inclusive, `until` not."""
    if actor:
        actor_type, _, actor_id = actor.rpartition(":")
        qs = qs.filter(actor_id=actor_id)
        if actor_type:
            qs = qs.filter(actor_type=actor_type)
    if event:
        qs = qs.filter(event_code=_event_code(event))
    if since:
        qs = qs.filter(ts__gte=since)
    if until:
        qs = qs.filter(ts__lt=until)
    return qs


def _event_code(event: str) -> int:
    if str(event).isdigit():
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
