"""Access-review export: the streamed CSV against the same CSV built fully in memory.

Both sides produce byte-identical output from `audit.exports`; ours yields line by line (what the
StreamingHttpResponse sends), the peer collects every row and joins them. Speed is measured in a
plain pass, peak Python memory (tracemalloc) in a second pass, because tracing slows everything.
"""

import csv
import hashlib
import time
import tracemalloc

from accounts.models import Membership, MembershipStatus, User
from audit.exports import access_review_csv, access_review_rows, safe_cell
from bench.harness import format_table, report, throwaway_database
from core.models import Organization
from core.roles import BuiltinRole
from iam_project.api_urls import ACCESS_REVIEW_SOURCES as SOURCES
from rbac.models import Role, RoleAssignment, Team, TeamMembership

DEFAULT_ROWS = 100_000
BATCH = 5000
ROLES, TEAMS = 20, 10


def _populate(rows: int) -> Organization:
    """`rows` members, fast: bulk inserts, and no password hashing (Argon2 costs ~30 ms each)."""
    org = Organization.objects.create(slug="export", name="Export & Co")
    users = User.objects.bulk_create(
        (User(email=f"user{i}@bench.example", display_name=f"User {i}", password="!unusable")
         for i in range(rows)),
        batch_size=BATCH,
    )
    builtin, statuses = list(BuiltinRole.values), [MembershipStatus.ACTIVE] * 8 + [
        MembershipStatus.INVITED, MembershipStatus.SUSPENDED]
    memberships = Membership.objects.bulk_create(
        (Membership(org=org, user=u, role=builtin[i % len(builtin)], status=statuses[i % len(statuses)])
         for i, u in enumerate(users)),
        batch_size=BATCH,
    )
    roles = Role.objects.bulk_create(
        Role(org=org, name=f"=role {i}", permissions=["agent:read", "run:read"]) for i in range(ROLES)
    )
    teams = Team.objects.bulk_create(Team(org=org, name=f"team {i}") for i in range(TEAMS))
    Team.roles.through.objects.bulk_create(
        Team.roles.through(team=t, role=roles[i]) for i, t in enumerate(teams)
    )
    RoleAssignment.objects.bulk_create(
        (RoleAssignment(membership=m, role=roles[i % ROLES])
         for i, m in enumerate(memberships) if i % 7 == 0),
        batch_size=BATCH,
    )
    TeamMembership.objects.bulk_create(
        (TeamMembership(team=teams[i % TEAMS], membership=m)
         for i, m in enumerate(memberships) if i % 4 == 0),
        batch_size=BATCH,
    )
    return org


def streamed(org) -> tuple[int, str]:
    digest, lines = hashlib.sha256(), 0
    for line in access_review_csv(org, SOURCES):
        digest.update(line)
        lines += 1
    return lines, digest.hexdigest()


class _Echo:
    def write(self, value):
        return value


def in_memory(org) -> tuple[int, str]:
    writer = csv.writer(_Echo(), lineterminator="\r\n")
    rows = list(access_review_rows(org, SOURCES))
    body = "".join(writer.writerow([safe_cell(cell) for cell in row]) for row in rows).encode("utf-8")
    return len(rows), hashlib.sha256(body).hexdigest()


def _timed(export, org) -> tuple[float, int, str]:
    started = time.perf_counter()
    lines, digest = export(org)
    return lines / (time.perf_counter() - started), lines, digest


def _peak(export, org) -> int:
    tracemalloc.start()
    try:
        export(org)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main(rows: int = DEFAULT_ROWS) -> str:
    with throwaway_database("export"):
        started = time.perf_counter()
        org = _populate(rows)
        setup_seconds = time.perf_counter() - started
        peer_rate, peer_lines, peer_digest = _timed(in_memory, org)
        our_rate, our_lines, our_digest = _timed(streamed, org)
        peer_peak, our_peak = _peak(in_memory, org), _peak(streamed, org)
        mib = 1024 * 1024
        table = format_table(
            ["export", "rows/s", "peak MiB"],
            [
                ["streamed (ours)", f"{our_rate:,.0f}", f"{our_peak / mib:,.1f}"],
                ["in memory (peer)", f"{peer_rate:,.0f}", f"{peer_peak / mib:,.1f}"],
                ["ours/peer", f"{our_rate / peer_rate:.2f}x", f"{our_peak / peer_peak:.3f}x"],
            ],
        )
        notes = [
            f"{rows:,} memberships ({ROLES} custom roles, {TEAMS} teams;"
            f" populated in {setup_seconds:.1f} s).",
            f"identical output: {'yes' if (our_lines, our_digest) == (peer_lines, peer_digest) else 'NO'}"
            f" ({our_lines:,} lines incl. header)",
            "peak = tracemalloc peak of Python allocations during a second, traced pass.",
        ]
        return report("export", "access-review CSV export", table, notes)
