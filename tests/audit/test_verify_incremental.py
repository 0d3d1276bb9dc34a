"""`audit/verify` (API and page) is cheap to repeat: it checks what is new since the chain's mark plus a
stretch of older entries, in a constant number of queries, and records a verification at most once
per actor per interval (or when the verdict changes), so reading the log does not grow it."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.actors import Actor
from audit.events import AuditEvent
from audit.models import AuditEntry
from audit.selectors import audit_verify_org
from audit.services import audit_record, audit_verify_recorded
from core.permissions import Perm
from tests.audit.attacks import delete, raw, truncate_to
from tests.factories import OrgFactory

pytestmark = pytest.mark.django_db

AUDITOR = Actor("api_key", "auditor", "auditor key")


def _fill(org, n):
    for i in range(n):
        audit_record(org=org, actor=Actor.system(), event=AuditEvent.ORG_UPDATED, data={"fields": [f"f{i}"]})


def _verifications(org) -> int:
    return AuditEntry.objects.for_org(org).filter(event_code=AuditEvent.AUDIT_VERIFIED.code).count()


def _tamper(org, seq):
    entry = AuditEntry.objects.for_org(org).get(seq=seq)
    raw("UPDATE audit_auditentry SET outcome = 'failure' WHERE id = %s", [entry.pk])
    return entry


def test_repeated_verifies_append_one_entry_not_one_each(org, key_client):
    _fill(org, 5)
    client = key_client(Perm.AUDIT_READ)
    url = f"/api/v1/orgs/{org.slug}/audit/verify"

    verdicts = [client.get(url).json() for _ in range(5)]

    assert all(v["ok"] for v in verdicts)
    assert _verifications(org) == 1
    assert AuditEntry.objects.for_org(org).count() == 6
    assert verdicts[-1]["head_seq"] == 6


def test_a_changed_verdict_is_recorded_at_once_and_then_not_again(org):
    _fill(org, 4)
    audit_verify_recorded(org=org, actor=AUDITOR)
    tampered = _tamper(org, 2)

    first = audit_verify_recorded(org=org, actor=AUDITOR)
    again = audit_verify_recorded(org=org, actor=AUDITOR)

    assert (first.ok, first.first_bad_seq, again.first_bad_seq) == (False, 2, 2)
    recorded = list(AuditEntry.objects.for_org(org).filter(event_code=AuditEvent.AUDIT_VERIFIED.code)
                    .order_by("seq").values_list("actor_id", "data"))
    assert recorded == [("auditor", {"ok": True, "checked": 4, "first_bad_seq": None}),
                        ("auditor", {"ok": False, "checked": 1, "first_bad_seq": tampered.seq})]


def test_each_actor_is_on_record_once_per_interval(org, settings):
    _fill(org, 2)
    for _ in range(3):
        audit_verify_recorded(org=org, actor=AUDITOR)
        audit_verify_recorded(org=org, actor=Actor("human", "someone", "someone@x.test"))
    assert _verifications(org) == 2
    settings.IAM_AUDIT_VERIFY_RECORD_SECONDS = 0  # the interval has passed
    audit_verify_recorded(org=org, actor=AUDITOR)
    assert _verifications(org) == 3


@pytest.mark.parametrize("recheck,lengths", [(10000, (5, 200)), (20, (100, 400))],
                         ids=["chains-shorter-than-the-recheck", "chains-longer-than-the-recheck"])
def test_a_repeated_verify_costs_the_same_queries_however_long_the_chain(settings, recheck, lengths):
    settings.IAM_AUDIT_VERIFY_RECHECK = recheck
    counts, checked = [], []
    for length in lengths:
        org = OrgFactory()
        _fill(org, length)
        audit_verify_recorded(org=org, actor=AUDITOR)  # the first walks the whole chain and marks it
        audit_verify_recorded(org=org, actor=AUDITOR)
        with CaptureQueriesContext(connection) as queries:
            verdict = audit_verify_recorded(org=org, actor=AUDITOR)
        assert verdict.ok and verdict.head_seq == length + 1
        counts.append(len(queries.captured_queries))
        checked.append(verdict.checked)
    assert counts[0] == counts[1]
    if recheck < min(lengths):
        # The stretch of older entries plus the marked entry and the one before the stretch.
        assert checked[0] == checked[1] <= recheck + 2


def test_tampering_after_the_mark_is_found(org, settings):
    settings.IAM_AUDIT_VERIFY_RECHECK = 5
    _fill(org, 30)
    assert audit_verify_recorded(org=org, actor=AUDITOR).ok
    _fill(org, 5)
    tampered = _tamper(org, 33)

    verdict = audit_verify_recorded(org=org, actor=AUDITOR)

    assert not verdict.ok and verdict.first_bad_id == tampered.pk and "altered" in verdict.reason


@pytest.mark.parametrize("damage", ["altered", "deleted"])
def test_damage_below_the_mark_is_found_within_one_round(org, settings, damage):
    settings.IAM_AUDIT_VERIFY_RECHECK = 10
    _fill(org, 50)
    assert audit_verify_recorded(org=org, actor=AUDITOR).ok
    if damage == "altered":
        _tamper(org, 27)
    else:
        delete(AuditEntry.objects.for_org(org).get(seq=27))

    verdicts = [audit_verify_recorded(org=org, actor=AUDITOR) for _ in range(6)]

    found = [v for v in verdicts if not v.ok]
    assert found and all(v.first_bad_seq in (27, 28) for v in found)
    assert all(not v.ok for v in verdicts[verdicts.index(found[0]):])  # and it stays found
    assert ("altered" if damage == "altered" else "missing") in found[0].reason


def test_the_whole_walk_still_finds_what_the_stretch_has_not_reached(org, settings):
    settings.IAM_AUDIT_VERIFY_RECHECK = 10
    _fill(org, 50)
    audit_verify_recorded(org=org, actor=AUDITOR)
    _tamper(org, 45)

    assert audit_verify_recorded(org=org, actor=AUDITOR).ok  # the stretch is at 1-10 this time
    verdict = audit_verify_org(org=org)

    assert not verdict.ok and verdict.first_bad_seq == 45


@pytest.mark.parametrize("forgery", ["recheck_seq = 2", "mac = 'ééé'"], ids=["cursor", "mac-not-ascii"])
def test_a_forged_mark_is_reported(org, forgery):
    _fill(org, 3)
    audit_verify_recorded(org=org, actor=AUDITOR)
    raw(f"UPDATE audit_auditverifiedmark SET {forgery} WHERE chain = %s", [str(org.pk)])  # noqa: S608

    verdict = audit_verify_recorded(org=org, actor=AUDITOR)

    assert not verdict.ok and "mark was altered" in verdict.reason
    assert not audit_verify_org(org=org).ok


def test_a_tail_cut_below_the_mark_is_reported(org):
    _fill(org, 6)
    audit_verify_recorded(org=org, actor=AUDITOR)  # marked through seq 6, then records seq 7
    truncate_to(org, 4, erase_mark=False)

    verdict = audit_verify_recorded(org=org, actor=AUDITOR)

    assert not verdict.ok and verdict.first_bad_seq == 5 and "truncated" in verdict.reason
    assert "truncated" in audit_verify_org(org=org).reason


def test_the_hourly_task_marks_every_chain_so_api_calls_check_only_what_is_new(org, settings):
    from audit.tasks import audit_verify_all_task

    settings.IAM_AUDIT_VERIFY_RECHECK = 5
    _fill(org, 40)
    assert audit_verify_all_task.apply().get() == {"broken": {}}
    _fill(org, 2)

    verdict = audit_verify_recorded(org=org, actor=AUDITOR)

    assert verdict.ok and verdict.head_seq == 42
    assert verdict.checked <= 5 + 1 + 3


def test_an_empty_chain_verifies_again_and_again(org):
    first = audit_verify_recorded(org=org, actor=Actor.system())
    assert first.ok and first.head_seq == 0
    again = [audit_verify_recorded(org=org, actor=Actor.system()) for _ in range(2)]
    assert all(v.ok for v in again) and again[-1].head_seq == 1  # the first verification is on record
