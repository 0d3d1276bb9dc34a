"""The access-review export: one CSV row per principal, streamed so memory stays flat.

The rows come from the apps that own each kind of principal (rbac.review for people and org API
keys, agents.review for agents, scim.review for SCIM tokens and the names an IdP gave its people),
handed in by the composition root (iam_project.api_urls), so the audit app imports none of them.
Cells go through csv's RFC 4180 quoting and are defused against formula injection (OWASP: a cell
that begins with = + - @, a tab or a carriage return is prefixed with '). The bytes are UTF-8, with
a byte order mark in front when asked for (Excel reads UTF-8 without one as a legacy code page).
"""

import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass

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
