"""The access-review export: one CSV row per principal, streamed so memory stays flat.

The rows come from the apps that own each kind of principal (rbac.review for people and org API
keys, agents.review for agents, scim.review for SCIM tokens and the names an IdP gave its people),
handed in by the composition root (iam_project.api_urls), so the audit app imports none of them.
Cells go through csv's RFC 4180 quoting and are defused against formula injection (OWASP: a cell
that begins with = + - @, a tab or a carriage return is prefixed with '). The bytes are UTF-8, with
a byte order mark in front when asked for (Excel reads UTF-8 without one as a legacy code page).
"""

import csv
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from audit.chain import format_ts
from core.tenancy import org_scope

COLUMNS = [
    "principal_type", "principal_id", "name", "email", "status", "source", "org_role",
    "custom_roles", "teams", "effective_permissions", "mfa_enrolled", "last_login_at",
    "created_at", "owner", "scopes", "audiences", "secret_rotated_at",
]
CHUNK = 2000
BOM = "\ufeff".encode()
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\0")


@dataclass(frozen=True)
class ReviewSource:
    """One kind of principal in the export: its rows (lists in COLUMNS order) and how many."""

    rows: Callable[[object], Iterable[list]]
    count: Callable[[object], int]


def column(name: str) -> int:
    """Where a column sits in a row (sources that fill in other sources' columns use it)."""
    return COLUMNS.index(name)


def safe_cell(value) -> str:
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_STARTS):
        text = "'" + text
    return text.replace("\0", "")


def iso(dt) -> str:
    return dt.isoformat() if dt else ""


def access_review_rows(org, sources: Iterable[ReviewSource]):
    """Yield the header, then every source's rows in order."""
    yield COLUMNS
    for source in sources:
        yield from source.rows(org)


class _Echo:
    def write(self, value):
        return value


def access_review_csv(org, sources: Iterable[ReviewSource], *, bom: bool = False):
    """Encoded CSV lines, ready for a StreamingHttpResponse. The server reads them after the view has
    returned (and its request scope has ended), so the stream enters the org's scope itself."""
    writer = csv.writer(_Echo(), lineterminator="\r\n")
    if bom:
        yield BOM
    with org_scope(org):
        for row in access_review_rows(org, sources):
            yield writer.writerow([safe_cell(cell) for cell in row]).encode("utf-8")


def access_review_count(org, sources: Iterable[ReviewSource]) -> int:
    return sum(source.count(org) for source in sources)


# --- The audit log export: the entries of a filtered view, as CSV or JSON lines ------------------------

LOG_COLUMNS = [
    "seq", "ts", "actor_type", "actor_id", "actor_name", "event_name", "event_code", "outcome",
    "target_type", "target_id", "target_name", "ip", "correlation_id", "data", "hash",
]
LOG_CHUNK = 500
# JSON lines: one object per line. No media type for it is registered; application/x-ndjson is the one
# tools that read the format (log shippers, Elasticsearch, jq users' pipelines) most commonly expect.
JSONL_TYPE = "application/x-ndjson"


def log_rows(org, entries, naming, *, chunk: int = LOG_CHUNK):
    """One dict per entry of `entries` (a queryset of the org's entries), oldest first, read in chunks
    by seq: one query for a chunk's entries and one per kind of name among them, whatever the total."""
    last = 0
    while True:
        batch = list(entries.filter(seq__gt=last).order_by("seq")[:chunk])
        naming.name_entries(org, batch)
        for e in batch:
            yield {
                "seq": e.seq, "ts": format_ts(e.ts), "actor_type": e.actor_type, "actor_id": e.actor_id,
                "actor_name": e.actor.name, "event_name": e.event_name, "event_code": e.event_code,
                "outcome": e.outcome, "target_type": e.target_type, "target_id": e.target_id,
                "target_name": e.target.name if e.target_type else "", "ip": e.ip or "",
                "correlation_id": e.correlation_id, "data": e.data, "hash": e.hash,
            }
        if len(batch) < chunk:
            return
        last = batch[-1].seq


def audit_log_csv(org, entries, naming, *, chunk: int = LOG_CHUNK):
    """Encoded CSV lines (`data` as JSON text), every cell defused as the access review's are."""
    writer = csv.writer(_Echo(), lineterminator="\r\n")
    with org_scope(org):
        yield writer.writerow(LOG_COLUMNS).encode("utf-8")
        for row in log_rows(org, entries, naming, chunk=chunk):
            row["data"] = json.dumps(row["data"], sort_keys=True, ensure_ascii=False)
            yield writer.writerow([safe_cell(row[c]) for c in LOG_COLUMNS]).encode("utf-8")


def audit_log_jsonl(org, entries, naming, *, chunk: int = LOG_CHUNK):
    """Encoded JSON lines: one object per entry, the CSV's columns as its keys (`data` an object)."""
    with org_scope(org):
        for row in log_rows(org, entries, naming, chunk=chunk):
            yield (json.dumps(row, sort_keys=False, ensure_ascii=False) + "\n").encode("utf-8")
