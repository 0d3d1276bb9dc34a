"""Concurrent appenders to one org's chain must still produce one linear chain.

Each writer is a thread with its own database connection; a barrier releases them together so their
appends really collide on the chain head. PostgreSQL only: SQLite serialises every writer on its one
database lock, so there is nothing to race there.
"""

import threading

import pytest
from django.db import connection, transaction

from audit.actors import Actor
from audit.events import AuditEvent
from audit.models import GENESIS_HASH, AuditChain, AuditEntry, chain_key
from audit.selectors import audit_verify_org
from audit.services import Target, audit_record
from core.models import Organization
from rbac.models import Role, Team

WRITERS = 50

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="concurrent appenders need PostgreSQL (set DATABASE_URL): SQLite serialises all "
        "writers on one database lock, so appends cannot race there",
    ),
    pytest.mark.django_db(transaction=True),
]


class _Rollback(Exception):
    pass


def _run_together(work, writers=WRITERS) -> list[BaseException]:
    """Run `work(i)` in `writers` threads released at once; return the unexpected errors."""
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def run(i):
        try:
            connection.ensure_connection()  # connect first, so the barrier releases ready writers
            barrier.wait(timeout=30)
            work(i)
        except _Rollback:
            pass
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a writer is stuck"
    return errors


def _append(org, i):
    return audit_record(org=org, actor=Actor.system(f"writer {i}"), event=AuditEvent.ORG_UPDATED,
                        data={"fields": [f"writer-{i}"]})


def _assert_one_linear_chain(org, n):
    rows = list(
        AuditEntry.objects.for_org(org).order_by("seq").values_list("seq", "prev_hash", "hash")
    )
    assert [seq for seq, _, _ in rows] == list(range(1, n + 1))
    assert rows[0][1] == GENESIS_HASH
    for (_, _, previous_hash), (seq, prev_hash, _) in zip(rows, rows[1:], strict=False):
        assert prev_hash == previous_hash, f"seq {seq} does not extend seq {seq - 1}"
    assert len({prev_hash for _, prev_hash, _ in rows}) == n, "two entries claim one predecessor"
    head = AuditChain.objects.get(pk=chain_key(org))
    assert (head.last_seq, head.last_hash) == (n, rows[-1][2])
    verdict = audit_verify_org(org=org)
    assert verdict.ok, verdict
    assert verdict.checked == n


def test_concurrent_appends_form_one_linear_chain(org):
    errors = _run_together(lambda i: _append(org, i))

    assert errors == []
    _assert_one_linear_chain(org, WRITERS)


def test_first_appends_race_to_create_the_chain_head():
    org = Organization.objects.create(slug="fresh", name="Fresh")  # no AuditChain row yet

    errors = _run_together(lambda i: _append(org, i))

    assert errors == []
    _assert_one_linear_chain(org, WRITERS)


def test_appends_inside_outer_transactions_with_other_writes(org):
    def work(i):
        with transaction.atomic():
            role = Role.objects.create(org=org, name=f"role {i}", permissions=["agent:read"])
            audit_record(org=org, actor=Actor.system(f"writer {i}"), event=AuditEvent.ROLE_CREATED,
                         target=Target.of(role), data={"name": role.name, "permissions": role.permissions})
            # Still holding the chain head: this write commits together with the entry.
            Team.objects.create(org=org, name=f"team {i}")

    errors = _run_together(work)

    assert errors == []
    assert Role.objects.for_org(org).count() == Team.objects.for_org(org).count() == WRITERS
    _assert_one_linear_chain(org, WRITERS)


def test_rolled_back_writers_leave_no_gap(org):
    def work(i):
        with transaction.atomic():
            Team.objects.create(org=org, name=f"team {i}")
            _append(org, i)
            if i % 2:
                raise _Rollback  # the entry and the head's advance roll back with the change

    errors = _run_together(work)

    assert errors == []
    assert Team.objects.for_org(org).count() == WRITERS // 2
    _assert_one_linear_chain(org, WRITERS // 2)
