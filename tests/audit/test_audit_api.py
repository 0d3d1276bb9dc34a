import csv
import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents.policies import agent_create, agent_secret_rotate, connection_create
from agents.services import agent_delegable_now
from audit.actors import Actor
from audit.events import AuditEvent
from audit.exports import access_review_rows, safe_cell
from audit.models import AuditEntry
from audit.services import audit_record
from core.permissions import Perm
from iam_project.api_urls import ACCESS_REVIEW_SOURCES
from rbac.guard import access_for_user
from rbac.models import RoleAssignment, TeamMembership
from tests.conftest import as_outside_requests
from tests.factories import MemberFactory, OrgFactory, RoleFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db


def _fill(org, n):
    for i in range(n):
        audit_record(org=org, actor=Actor("human", f"u{i % 3}", "x"), event=AuditEvent.TEAM_CREATED,
                     data={"name": f"t{i}"})


def test_events_are_newest_first_with_cursor_pagination(org, key_client):
    _fill(org, 7)
    client = key_client(Perm.AUDIT_READ)
    page = client.get(f"/api/v1/orgs/{org.slug}/audit/events?page_size=3").json()
    seqs = [e["seq"] for e in page["results"]]
    assert seqs == [7, 6, 5]
    following = client.get(page["next"]).json()
    assert [e["seq"] for e in following["results"]] == [4, 3, 2]
    entry = page["results"][0]
    assert set(entry) == {"id", "seq", "ts", "org", "actor", "event", "outcome", "ip", "user_agent",
                          "correlation_id", "target", "data", "prev_hash", "hash"}
    assert entry["event"] == {"code": 220, "name": "team.created"}
    assert entry["ts"].endswith("Z")


def test_events_filter_by_actor_event_and_time(org, key_client):
    _fill(org, 6)
    audit_record(org=org, actor=Actor.system(), event=AuditEvent.ORG_UPDATED, data={"fields": ["name"]})
    client = key_client(Perm.AUDIT_READ)
    base = f"/api/v1/orgs/{org.slug}/audit/events"
    by_actor = client.get(f"{base}?actor=human:u1").json()["results"]
    assert {e["actor"]["id"] for e in by_actor} == {"u1"} and len(by_actor) == 2
    assert len(client.get(f"{base}?event=org.updated").json()["results"]) == 1
    assert len(client.get(f"{base}?event=220").json()["results"]) == 6
    assert client.get(f"{base}?event=no.such").json()["results"] == []
    assert client.get(f"{base}?since=2999-01-01T00:00:00Z").json()["results"] == []
    assert client.get(f"{base}?since=yesterday").status_code == 400


@pytest.mark.parametrize("method", ["put", "patch", "delete", "post"])
def test_the_audit_log_cannot_be_changed_through_the_api_even_by_an_owner(org, key_client, method):
    _fill(org, 1)
    entry = AuditEntry.objects.for_org(org).get()
    client = key_client(*Perm)
    url = f"/api/v1/orgs/{org.slug}/audit/events" + ("" if method == "post" else f"/{entry.pk}")
    assert getattr(client, method)(url, {"outcome": "x"}, format="json").status_code == 405
    assert AuditEntry.objects.for_org(org).get().hash == entry.hash


def test_reading_another_orgs_audit_is_a_404(org, key_client):
    other = OrgFactory()
    _fill(other, 1)
    entry = AuditEntry.objects.for_org(other).get()
    assert key_client(*Perm).get(f"/api/v1/orgs/{org.slug}/audit/events/{entry.pk}").status_code == 404


def _tamper(entry_id):
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Simulates an attacker with superuser access; deferred FK checks must settle first.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE audit_auditentry DISABLE TRIGGER audit_entry_immutable")
        cursor.execute("UPDATE audit_auditentry SET outcome = 'failure' WHERE id = %s", [entry_id])


def test_verify_endpoint_and_command_name_the_first_tampered_entry(org, key_client, capsys):
    _fill(org, 5)
    client = key_client(Perm.AUDIT_READ)
    url = f"/api/v1/orgs/{org.slug}/audit/verify"
    assert client.get(url).json()["ok"] is True
    third = AuditEntry.objects.for_org(org).get(seq=3)
    _tamper(third.pk)
    verdict = client.get(url).json()
    assert verdict["ok"] is False
    assert verdict["first_bad"]["seq"] == 3 and verdict["first_bad"]["id"] == third.pk
    assert "altered" in verdict["first_bad"]["reason"]
    with pytest.raises(CommandError) as failure:
        with as_outside_requests():
            call_command("audit_verify", "--org", org.slug)
    assert failure.value.returncode == 1
    assert f"BROKEN at seq 3 (entry id {third.pk})" in capsys.readouterr().out


def test_audit_verify_command_exits_zero_when_intact(org, capsys):
    _fill(org, 2)
    with as_outside_requests():
        call_command("audit_verify", "--org", org.slug)
    assert "ok (" in capsys.readouterr().out


def _export(client, org):
    response = client.get(f"/api/v1/orgs/{org.slug}/exports/access-review.csv")
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    return response, list(csv.DictReader(io.StringIO(body)))


NASTY = ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]


@pytest.mark.parametrize("raw,cell", [("\0=1", "'=1"), ("=1", "'=1"), ("a=1", "a=1"), (None, "")])
def test_safe_cell(raw, cell):
    # NUL cannot be stored in PostgreSQL text, so it is checked here rather than through a row.
    assert safe_cell(raw) == cell


def test_access_review_export_lists_every_human_safely(org, key_client):
    members = [MemberFactory(org=org, user=UserFactory(display_name=name)) for name in NASTY]
    quoted = MemberFactory(org=org, user=UserFactory(display_name='Doe, "Jo"\nSr'))
    role = RoleFactory(org=org, name="Auditor", permissions=["audit:read"])
    RoleAssignment.objects.create(membership=quoted, role=role)
    team = TeamFactory(org=org, name="Ops")
    team.roles.add(RoleFactory(org=org, permissions=["sso:read"]))
    TeamMembership.objects.create(team=team, membership=quoted, role="admin")
    MemberFactory(org=OrgFactory())  # another org's member must not appear
    response, rows = _export(key_client(Perm.ACCESS_REVIEW_EXPORT), org)
    assert response["Content-Disposition"].startswith("attachment; filename=")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert len(rows) == len(members) + 3  # and the owner who made the key, and the key
    names = {row["name"] for row in rows}
    assert {"'" + n for n in NASTY} <= names
    row = next(r for r in rows if r["principal_id"] == str(quoted.user.pk))
    assert row["name"] == 'Doe, "Jo"\nSr'
    assert row["custom_roles"] == "Auditor" and row["teams"] == "Ops (admin)"
    assert {"audit:read", "sso:read", "agent:write"} <= set(row["effective_permissions"].split())
    assert row["principal_type"] == "human" and row["mfa_enrolled"] == "no"
    entry = AuditEntry.objects.for_org(org).latest("seq")
    assert entry.event_name == "export.access_review" and entry.data == {"rows": 9}


AUDIENCE = "https://svc.example.test/api"


def _agents(org, n, scopes=("svc:read",)):
    """`n` agents each owned by a new member (a team role on the last), with a rotated secret."""
    owner = MemberFactory(org=org, role="owner")
    access = access_for_user(user=owner.user, org_slug=org.slug)
    connection_create(access=access, name="Svc", audience=AUDIENCE, scopes=["svc:read", "svc:write"])
    agents = []
    for i in range(n):
        member = MemberFactory(org=org, role="member", user=UserFactory(email=f"=own{i}.{org.pk}@x.test"))
        agent, _ = agent_create(access=access, name=f"=bot {org.pk} {i}", scopes=list(scopes),
                                audiences=[AUDIENCE], owner=member)
        agents.append(agent)
    agent_secret_rotate(access=access, agent=agents[-1], overlap_seconds=60)
    return agents


def test_access_review_export_lists_agents_after_humans(org, key_client):
    MemberFactory(org=org)
    agent, idle = _agents(org, 2)
    # An owner who can no longer delegate: the grant stays, the effective permissions empty.
    idle.owners.update(role="viewer")
    response, rows = _export(key_client(Perm.ACCESS_REVIEW_EXPORT), org)
    # With the key's maker, and then the key itself.
    assert [r["principal_type"] for r in rows] == ["human"] * 5 + ["agent"] * 2 + ["api_key"]
    row, idle_row = rows[-3:-1]
    owner_email = agent.owners.get().user.email
    assert row == {
        "principal_type": "agent", "principal_id": str(agent.pk), "name": "'" + agent.name, "email": "",
        "status": "active", "source": "", "org_role": "", "custom_roles": "", "teams": "",
        "effective_permissions": "svc:read", "mfa_enrolled": "", "last_login_at": "",
        "created_at": agent.created_at.isoformat(), "owner": "'" + owner_email, "scopes": "svc:read",
        "audiences": AUDIENCE, "secret_rotated_at": agent.secrets.get().created_at.isoformat(),
    }
    assert set(row["effective_permissions"].split()) == agent_delegable_now(agent)
    assert idle_row["effective_permissions"] == "" and agent_delegable_now(idle) == set()
    assert idle_row["secret_rotated_at"] == idle.secrets.latest("created_at").created_at.isoformat()
    entry = AuditEntry.objects.for_org(org).latest("seq")
    assert entry.data == {"rows": 8}


def test_agent_rows_cost_the_same_queries_however_many_agents(org, django_assert_num_queries):
    _agents(org, 1)  # its owner and the agent's owner, then the agent
    with CaptureQueriesContext(connection) as one:
        assert len(list(access_review_rows(org, ACCESS_REVIEW_SOURCES))) == 1 + 2 + 1
    other = OrgFactory()
    _agents(other, 6, scopes=("svc:read", "svc:write"))
    with django_assert_num_queries(len(one.captured_queries)):
        assert len(list(access_review_rows(other, ACCESS_REVIEW_SOURCES))) == 1 + 7 + 6


def test_export_needs_its_permission(org, key_client):
    response = key_client(Perm.AUDIT_READ).get(f"/api/v1/orgs/{org.slug}/exports/access-review.csv")
    assert response.status_code == 403
    assert not AuditEntry.objects.for_org(org).filter(event_name="export.access_review").exists()


def test_the_hourly_task_reports_a_broken_chain(org):
    from audit.tasks import audit_verify_all_task

    _fill(org, 3)
    assert audit_verify_all_task.apply().get() == {"broken": {}}
    second = AuditEntry.objects.for_org(org).get(seq=2)
    _tamper(second.pk)
    assert audit_verify_all_task.apply().get()["broken"][str(org.pk)]["seq"] == 2


def test_no_secret_ever_reaches_the_audit_log(client, org, owner):
    from django.core import serializers

    from tests.factories import PASSWORD

    client.post("/login/", {"email": owner.user.email, "password": PASSWORD + "x"})
    client.post("/login/", {"email": owner.user.email, "password": PASSWORD})
    created = client.post(f"/api/v1/orgs/{org.slug}/api-keys",
                          {"name": "deploy", "permissions": ["member:read"]},
                          content_type="application/json")
    assert created.status_code == 201, created.content
    secret = created.json()["secret"]
    dump = serializers.serialize("json", AuditEntry.objects.unscoped().all())
    assert AuditEntry.objects.unscoped().filter(event_name="api_key.created").exists()
    for needle in (PASSWORD, secret, secret.split("_", 2)[2]):
        assert needle not in dump


def test_the_export_counts_passkeys_and_apps_as_mfa_but_not_recovery_codes_alone(org, key_client):
    from accounts.models import RecoveryCodeDevice, WebAuthnCredential

    with_passkey, with_codes_only = MemberFactory(org=org), MemberFactory(org=org)
    WebAuthnCredential.objects.create(user=with_passkey.user, name="key", confirmed=True,
                                      credential_id="AAAA", public_key=b"k")
    RecoveryCodeDevice.objects.create(user=with_codes_only.user, name="codes", confirmed=True)
    _, rows = _export(key_client(Perm.ACCESS_REVIEW_EXPORT), org)
    enrolled = {row["principal_id"]: row["mfa_enrolled"] for row in rows}
    assert enrolled[str(with_passkey.user.pk)] == "yes"
    assert enrolled[str(with_codes_only.user.pk)] == "no"
