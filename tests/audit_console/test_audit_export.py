"""The audit log's export: the filtered view as CSV or JSON lines, the same columns in both, cells
defused against formula injection, streamed in chunks by seq at a fixed number of queries per chunk,
each export on record; and the admin API's audit list at a fixed number of queries."""

import uuid

import pytest
from django.db import connection
from django.http import StreamingHttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from audit.events import AuditEvent
from audit.exports import LOG_COLUMNS, log_rows
from audit.models import AuditEntry
from audit.selectors import audit_entries_for_org
from iam_project.urls import AUDIT_NAMING
from rbac.models import RoleAssignment
from tests.agents_console.conftest import as_user, entries, queries
from tests.audit_console.conftest import csv_rows, every_kind, jsonl_rows, log_url
from tests.factories import MemberFactory, RoleFactory, UserFactory, api_key_for, sign_in
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db


def export(client, org, fmt, params=None):
    return client.get(log_url(org, "audit-export", fmt=fmt), params or {})


def test_the_csv_export_holds_only_the_filtered_rows_by_name(filled):
    w = filled
    response = export(w.client, w.org, "csv", {"family": "sso"})
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="audit-')
    rows = csv_rows(response)
    assert [r["event_name"] for r in rows] == ["sso.connection_updated", "sso.domain_added"]
    assert list(rows[0]) == LOG_COLUMNS
    assert rows[0]["actor_name"] == "owner@example.com" and rows[0]["target_name"] == "SSO connection Okta"
    assert rows[1]["data"] == '{"domain": "example.com"}' and rows[1]["ts"].endswith("Z")
    stored = AuditEntry.objects.for_org(w.org).get(seq=int(rows[1]["seq"]))
    assert rows[1]["hash"] == stored.hash and rows[1]["correlation_id"] == stored.correlation_id


def test_the_jsonl_export_has_the_same_columns_and_rows(filled):
    w = filled
    response = export(w.client, w.org, "jsonl", {"outcome": "refused"})
    assert response["Content-Type"] == "application/x-ndjson; charset=utf-8"
    rows = jsonl_rows(response)
    assert [r["event_name"] for r in rows] == ["access.denied", "login.failure"]
    assert all(list(r) == LOG_COLUMNS for r in rows)
    assert rows[1]["data"] == {"reason": "bad_password", "method": "password"}
    assert rows[0]["actor_name"] == "ada@example.com" and rows[0]["event_code"] == 250


def test_cells_that_a_spreadsheet_would_run_are_defused(world):
    entries(world.org, [{"event": AuditEvent.LOGOUT, "actor": ("system", "", "=HYPERLINK(\"http://x\")"),
                         "target": ("team", "+cmd|' /C calc'!A0")}])
    [row] = csv_rows(export(world.client, world.org, "csv"))
    assert row["actor_name"] == "'=HYPERLINK(\"http://x\")" and row["target_id"] == "'+cmd|' /C calc'!A0"
    [line] = jsonl_rows(export(world.client, world.org, "jsonl", {"event": "logout"}))
    assert line["actor_name"] == "=HYPERLINK(\"http://x\")"  # JSON is data, not a spreadsheet


def test_each_export_is_on_record_and_leaves_itself_out(filled):
    w = filled
    rows = csv_rows(export(w.client, w.org, "csv", {"actor": "ada@example.com"}))
    lines = jsonl_rows(export(w.client, w.org, "jsonl"))
    # The second export holds the first one's entry, not its own.
    assert [r["event_name"] for r in lines].count("export.audit_log") == 1
    assert len(lines) == len(every_kind(w)) + 1
    first, second = audit_events(w.org, "export.audit_log")
    assert first.data == {"format": "csv", "rows": 2, "filters": {"actor": f"human:{w.member.user_id}"}}
    assert (first.actor_id, first.target_type) == (str(w.owner.user_id), "organization")
    assert second.data["format"] == "jsonl" and second.data["rows"] == len(every_kind(w)) + 1
    assert len(rows) == 2


def test_an_auditor_may_export_and_a_plain_member_may_not(filled):
    w = filled
    auditors = RoleFactory(org=w.org, name="Auditors", permissions=["audit:read"])
    auditor = MemberFactory(org=w.org, role="member", user=UserFactory())
    RoleAssignment.objects.create(membership=auditor, role=auditors)
    assert export(as_user(auditor.user), w.org, "csv").status_code == 200
    assert export(as_user(w.member.user), w.org, "csv").status_code == 403


def test_an_export_with_filters_nobody_can_apply_is_a_400(filled):
    w = filled
    response = export(w.client, w.org, "csv", {"since": "soon"})
    assert response.status_code == 400 and not isinstance(response, StreamingHttpResponse)
    assert not audit_events(w.org, "export.audit_log").exists()
    assert w.client.get(f"/orgs/{w.org.slug}/audit/export.xlsx").status_code == 404


def test_the_export_links_carry_the_pages_filters(filled):
    html = filled.client.get(log_url(filled.org), {"family": "sso", "before": "9"}).content.decode()
    assert f'href="/orgs/{filled.org.slug}/audit/export.csv?family=sso"' in html
    assert f'href="/orgs/{filled.org.slug}/audit/export.jsonl?family=sso"' in html


def _export_queries(org, chunk):
    with CaptureQueriesContext(connection) as captured:
        rows = list(log_rows(org, audit_entries_for_org(org=org), AUDIT_NAMING, chunk=chunk))
    return len(captured), len(rows)


def test_the_export_costs_the_same_queries_per_chunk(world):
    kinds = every_kind(world)  # one entry of each kind: every chunk of 12 or 36 names the same kinds
    entries(world.org, kinds * 6)
    small_chunks, count = _export_queries(world.org, len(kinds))
    big_chunks, same = _export_queries(world.org, 3 * len(kinds))
    assert count == same == 72
    # n full chunks and the empty read that ends them: a chunk costs the same however many rows it holds.
    assert (small_chunks - 1) / 6 == (big_chunks - 1) / 2


def test_the_api_audit_list_costs_the_same_queries_at_10_and_300(world):
    _, secret = api_key_for(world.org, ["audit:read"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    url = f"/api/v1/orgs/{world.org.slug}/audit/events/"

    def fill(n):
        entries(world.org, [{"event": AuditEvent.LOGOUT, "actor": ("human", str(uuid.uuid4()), f"p{i}@x.io"),
                             "target": ("team", str(uuid.uuid4()))} for i in range(n)])
    fill(10)
    small = queries(api, url)
    fill(290)
    assert queries(api, url, {"page_size": 200}) == small == queries(api, url, {"actor": "human:x"})


def test_an_export_asks_a_stale_session_to_prove_who_it_is_first_and_hands_out_nothing(filled):
    stale = sign_in(Client(), filled.owner.user, mfa=True, auth_age=3600)
    before = AuditEntry.objects.for_org(filled.org).count()
    response = stale.get(log_url(filled.org, "audit-export", fmt="csv"))
    assert response.status_code == 302 and response["Location"].startswith("/reauth/")
    assert AuditEntry.objects.for_org(filled.org).count() == before  # no export on record either
