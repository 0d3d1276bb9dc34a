"""The org overview (`GET /orgs/<org>/`) of a small org and of one with 1,000 members, 200 agents and
10,000 audit entries, against the members list page of the same org and `/healthz` in the same run.

Every request is a `django.test.Client` call in this process through the whole middleware stack, as
the signed-in owner (MFA done, a fresh proof), one thread. Reported: p50 and p90 over the requests,
queries per request (which must not grow with the org) and the overview's ratio to the members page.
The request budget is BUDGET_MS at the large size; the report says whether the p90 keeps it.
"""

import statistics
import time

from django.db import connection, reset_queries
from django.test import Client
from django.test.utils import CaptureQueriesContext

from audit.models import AuditChain
from bench.harness import format_table, report, throwaway_database
from core.models import Organization
from core.roles import BuiltinRole
from tests.factories import sign_in
from tests.scale import big_org, members_bulk

REQUESTS = 30
BUDGET_MS = 250  # the overview of the large org, p90, on one core
SIZES = (("small", 10, 2, 100), ("large", 1000, 200, 10_000))


def _org(slug: str, members: int, agents: int, entries: int):
    org = Organization.objects.create(slug=slug, name=slug.title())
    AuditChain.objects.get_or_create(chain=str(org.pk))
    owner = members_bulk(org, 1, prefix=f"{slug}-owner", role=BuiltinRole.OWNER)[0]
    big_org(org, owner=owner, members=members, agents=agents, audit_entries=entries)
    client = sign_in(Client(), owner.user, mfa=True)
    return org, client


def _measure(client, path: str) -> tuple[float, float, int]:
    client.get(path)  # warm: session, policy and template caches
    with CaptureQueriesContext(connection) as queries:
        assert client.get(path).status_code == 200, path
    count = len(queries)  # read now: the log it slices is cleared below
    timings = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        response = client.get(path)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
        reset_queries()
    timings.sort()
    return statistics.median(timings), timings[int(len(timings) * 0.9) - 1], count


def main() -> str:
    rows, measured = [], {}
    with throwaway_database("overview"):
        for size, members, agents, entries in SIZES:
            org, client = _org(f"bench-{size}", members, agents, entries)
            pages = (("overview", f"/orgs/{org.slug}/"), ("members page", f"/orgs/{org.slug}/members/"),
                     ("healthz", "/healthz"))
            for label, path in pages:
                p50, p90, queries = _measure(client, path)
                measured[(size, label)] = (p50, p90, queries)
            members_page = measured[(size, "members page")]
            for label in ("overview", "members page", "healthz"):
                p50, p90, queries = measured[(size, label)]
                ratio = f"{p50 / members_page[0]:.2f}" if label == "overview" else ""
                rows.append([size, label, f"{p50:.1f}", f"{p90:.1f}", queries, ratio])
        large = measured[("large", "overview")]
        small = measured[("small", "overview")]
        table = format_table(["org", "page", "p50 ms", "p90 ms", "queries", "p50 / members page"], rows)
        notes = [
            f"small: {SIZES[0][1]} members, {SIZES[0][2]} agents, {SIZES[0][3]} audit entries; "
            f"large: {SIZES[1][1]} members, {SIZES[1][2]} agents, {SIZES[1][3]} audit entries.",
            f"{REQUESTS} requests each, one thread, django.test.Client through the middleware, as the owner.",
            f"Queries per overview: {small[2]} small, {large[2]} large "
            f"({'the same' if small[2] == large[2] else 'NOT the same: a source grows with the org'}).",
            f"Budget: p90 of the large overview within {BUDGET_MS} ms: "
            f"{'kept' if large[1] <= BUDGET_MS else 'MISSED'} ({large[1]:.1f} ms).",
        ]
        return report("overview", "Org overview", table, notes)
