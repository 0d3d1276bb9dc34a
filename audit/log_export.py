"""Exporting the audit log: a filtered view of the org's entries, as CSV or JSON lines, on record."""

from django.db import transaction

from audit.actors import Actor
from audit.events import AuditEvent
from audit.exports import LOG_CHUNK, audit_log_csv, audit_log_jsonl
from audit.selectors import audit_entries_for_org
from audit.services import Target, audit_record

FORMATS = {"csv": audit_log_csv, "jsonl": audit_log_jsonl}


@transaction.atomic
def audit_log_export(*, org, actor: Actor, filters: dict, fmt: str, naming, chunk: int = LOG_CHUNK):
    """Record the export (its format, filters and row count), then return the stream of the entries
    that matched before it: the export's own entry is the first one it leaves out."""
    entries = audit_entries_for_org(org=org, **filters)
    rows = entries.count()
    entry = audit_record(org=org, actor=actor, event=AuditEvent.AUDIT_LOG_EXPORTED, target=Target.of(org),
                         data={"format": fmt, "rows": rows, "filters": filters})
    return FORMATS[fmt](org, entries.filter(seq__lt=entry.seq), naming, chunk=chunk)
