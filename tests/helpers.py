"""Helpers more than one test file needs: reading an org's audit log and a member's access, and
running calls at once for race cases."""

import threading

from django.db import connection

from audit.models import AuditEntry
from rbac.guard import access_for_user


def audit_events(org, name: str):
    """The org's entries of one event, oldest first."""
    return AuditEntry.objects.for_org(org).filter(event_name=name).order_by("seq")


def last_seq(org) -> int:
    return AuditEntry.objects.for_org(org).order_by("-seq").values_list("seq", flat=True).first() or 0


def events_since(org, seq: int = 0) -> list[str]:
    """The names of the org's entries after `seq`, in order."""
    return list(AuditEntry.objects.for_org(org).filter(seq__gt=seq).order_by("seq")
                .values_list("event_name", flat=True))


def latest_event(org, name: str) -> AuditEntry:
    return audit_events(org, name).latest("seq")


def access_of(membership):
    return access_for_user(user=membership.user, org_slug=membership.org.slug)


def in_parallel(count, call) -> list:
    """Run `call(i)` in `count` threads released together, each on its own database connection."""
    barrier, results, errors = threading.Barrier(count), {}, []

    def run(i):
        try:
            barrier.wait(timeout=30)
            results[i] = call(i)
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and len(results) == count
    return [results[i] for i in range(count)]
