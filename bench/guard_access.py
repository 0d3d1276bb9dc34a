"""Guard cost: `access_for_user` for a member holding 1, 10 and 100 custom roles and teams.

Each level gives the member N roles directly and N teams, each team granting one more role, so the
member's permissions come from 2N roles. The guard promises a constant number of queries whatever N
is; the rate is reported as a ratio against the 1-role member measured in the same run.
"""

import time

from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Membership, User
from bench.harness import format_table, report, throwaway_database
from core.models import Organization
from core.permissions import Perm
from rbac.guard import access_for_user
from rbac.models import Role, RoleAssignment, Team, TeamMembership

LEVELS = (1, 10, 100)
RESOLUTIONS = 1000
PERMS = [p.value for p in Perm]


def _member_with(n: int) -> User:
    org = Organization.objects.create(slug=f"guard-{n}", name=f"guard {n}")
    user = User.objects.create(email=f"member-{n}@bench.example", password="!unusable")
    membership = Membership.objects.create(org=org, user=user, role="viewer")
    roles = Role.objects.bulk_create(
        Role(org=org, name=f"role {i}", permissions=PERMS[i % len(PERMS):][:3]) for i in range(2 * n)
    )
    RoleAssignment.objects.bulk_create(RoleAssignment(membership=membership, role=r) for r in roles[:n])
    teams = Team.objects.bulk_create(Team(org=org, name=f"team {i}") for i in range(n))
    Team.roles.through.objects.bulk_create(
        Team.roles.through(team=team, role=role) for team, role in zip(teams, roles[n:], strict=True)
    )
    TeamMembership.objects.bulk_create(TeamMembership(team=t, membership=membership) for t in teams)
    return user, org.slug


def _measure(user, slug) -> tuple[float, int, int]:
    access_for_user(user=user, org_slug=slug)  # warm up
    with CaptureQueriesContext(connection) as queries:
        access = access_for_user(user=user, org_slug=slug)
    started = time.perf_counter()
    for _ in range(RESOLUTIONS):
        access_for_user(user=user, org_slug=slug)
    rate = RESOLUTIONS / (time.perf_counter() - started)
    return rate, len(queries), len(access.perms)


def main() -> str:
    with throwaway_database("guard"):
        members = {n: _member_with(n) for n in LEVELS}
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:  # as autovacuum would after a load
                cursor.execute("ANALYZE")
        results = {n: _measure(*members[n]) for n in LEVELS}
        base_rate = results[LEVELS[0]][0]
        rows = [
            [f"{n} + {n} via teams", f"{rate:,.0f}", queries, perms, f"{rate / base_rate:.2f}x"]
            for n, (rate, queries, perms) in results.items()
        ]
        table = format_table(
            ["roles held", "resolutions/s", "queries", "perms", f"vs {LEVELS[0]}-role"], rows
        )
        constant = len({queries for _, queries, _ in results.values()}) == 1
        notes = [
            f"{RESOLUTIONS} resolutions per row, one thread; queries counted for one resolution.",
            "PostgreSQL's statistics are refreshed (ANALYZE) after the load, as autovacuum would.",
            f"query count constant across levels: {'yes' if constant else 'NO'}",
        ]
        return report("guard", "guard access_for_user", table, notes)
