import csv
import io

import pytest
from django.db import connection as db
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from agents import policies
from agents.models import Agent, AgentSecret, AgentStatus, Connection, Run, RunStatus
from core.secrets import secret_hash
from tests.factories import MemberFactory, OrgFactory, sign_in
from tests.helpers import access_of
from tests.helpers import audit_events as events

pytestmark = pytest.mark.django_db

AUDIENCE = "https://tickets.example.test/api"


def as_user(user, **kwargs) -> Client:
    return sign_in(Client(), user, **kwargs)


def url(name, org, **kwargs):
    return reverse(name if ":" in name else f"agents:{name}", kwargs={"org": org.slug, **kwargs})


def make_connection(owner, audience=AUDIENCE, scopes=("tickets:read", "tickets:write")):
    return policies.connection_create(access=access_of(owner), name=f"Svc {audience}", audience=audience,
                                      scopes=list(scopes))[0]


def make_agent(owner, name="Triage bot", scopes=("tickets:read",)):
    if not Connection.objects.for_org(owner.org).filter(audience=AUDIENCE).exists():
        make_connection(owner)
    return policies.agent_create(access=access_of(owner), name=name, scopes=list(scopes),
                                 audiences=[AUDIENCE], owner=owner)[0]


def counts():
    return (Agent.objects.unscoped().count(), AgentSecret.objects.count(),
            Connection.objects.unscoped().count(), Run.objects.unscoped().count())


def connection_state(connection):
    return Connection.objects.filter(pk=connection.pk).values_list("name", "scopes", "lookup_id",
                                                                    "secret_hash").first()


def shown_page(client, response):
    """Follow a page's 303 to the GET that shows a new secret once."""
    assert response.status_code == 303, response.content
    assert response["Location"].split("?")[1].startswith("shown=")
    page = client.get(response["Location"])
    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    return page


def live_secrets(agent):
    return [s for s in AgentSecret.objects.filter(agent=agent) if s.is_live(timezone.now())]


# --- Permission matrix --------------------------------------------------------------------------

READ_PAGES = [("agents", None), ("agent-detail", "agent"), ("connections", None),
              ("connection-detail", "connection"), ("runs", None)]


@pytest.mark.parametrize("name,detail", READ_PAGES)
def test_read_pages_matrix(org, owner, name, detail):
    agent = make_agent(owner)
    connection = Connection.objects.for_org(org).get()
    path = url(name, org, **({"pk": {"agent": agent, "connection": connection}[detail].pk} if detail else {}))
    anonymous = Client().get(path)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")
    outsider = MemberFactory(org=OrgFactory(), role="owner")
    assert as_user(outsider.user).get(path).status_code == 404
    viewer = MemberFactory(org=org, role="viewer")
    response = as_user(viewer.user).get(path)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Register" not in body and "Start a run" not in body and "Save connection" not in body
    assert as_user(owner.user).get(path).status_code == 200


def test_another_orgs_agent_and_run_are_404_here(org, owner):
    other_owner = MemberFactory(org=OrgFactory(), role="owner")
    foreign = make_agent(other_owner)
    run = policies.run_start(access=access_of(other_owner), agent=foreign)
    client = as_user(owner.user)
    assert client.get(url("agent-detail", org, pk=foreign.pk)).status_code == 404
    assert client.post(url("agent-revoke", org, pk=foreign.pk)).status_code == 404
    assert client.post(url("run-terminate", org, pk=run.pk)).status_code == 404
    assert Agent.objects.unscoped().get(pk=foreign.pk).status == AgentStatus.ACTIVE
    assert Run.objects.unscoped().get(pk=run.pk).status == RunStatus.RUNNING


WRITES = [
    # (page, whose id is in the URL, role lacking the permission, required perm)
    ("agents", None, "viewer", "agent:write"),
    ("agent-detail", "agent", "viewer", "agent:write"),
    ("agent-rotate", "agent", "member", "agent:credentials"),
    ("agent-end-previous", "agent", "member", "agent:credentials"),
    ("agent-status", "agent", "viewer", "agent:write"),
    ("agent-revoke", "agent", "viewer", "agent:write"),
    ("connections", None, "member", "connection:write"),
    ("connection-detail", "connection", "member", "connection:write"),
    ("connection-rotate", "connection", "member", "connection:write"),
    ("connection-delete", "connection", "member", "connection:write"),
    ("runs", None, "viewer", "run:write"),
    ("run-terminate", "run", "viewer", "run:write"),
]


@pytest.mark.parametrize("name,target,role,perm", WRITES)
def test_writes_without_the_permission_are_403_change_nothing_and_are_audited(
    org, owner, name, target, role, perm
):
    agent = make_agent(owner)
    run = policies.run_start(access=access_of(owner), agent=agent)
    connection = Connection.objects.for_org(org).get()
    kwargs = {"pk": {"agent": agent, "run": run, "connection": connection}[target].pk} if target else {}
    # Valid input, so only the missing permission can refuse it.
    data = {"name": "x", "audience": "https://n.test", "audiences": [AUDIENCE], "scopes": ["tickets:read"],
            "owner": str(owner.pk), "owners": [str(owner.pk)], "overlap_seconds": "60",
            "status": "suspended", "agent": str(agent.pk), "description": "d", "confirm": "yes"}
    before = counts(), connection_state(connection)
    caller = MemberFactory(org=org, role=role)
    response = as_user(caller.user).post(url(name, org, **kwargs), data)
    assert response.status_code == 403
    assert (counts(), connection_state(connection)) == before
    agent.refresh_from_db()
    run.refresh_from_db()
    assert (agent.status, agent.scopes, run.status) == ("active", ["tickets:read"], "running")
    assert AgentSecret.objects.get(agent=agent).expires_at is None
    denied = events(org, "access.denied").latest("seq")
    assert denied.actor_id == str(caller.user.pk) and denied.data["required"] == perm


def test_navigation_shows_the_agent_pages(org, owner):
    body = as_user(owner.user).get(url("accounts:members", org)).content.decode()
    for name in ("agents", "connections", "runs"):
        assert f'href="{url(name, org)}"' in body


# --- Agents -------------------------------------------------------------------------------------


def test_create_agent_shows_the_secret_once_and_stores_only_its_hash(org, owner):
    make_connection(owner)
    client = as_user(owner.user)
    form = client.get(url("agents", org)).content.decode()
    assert f'value="{AUDIENCE}"' in form and 'value="tickets:write"' in form
    posted = client.post(url("agents", org), {"name": "Triage bot", "audiences": [AUDIENCE],
                                               "scopes": ["tickets:read"], "owner": str(owner.pk)})
    agent = Agent.objects.for_org(org).get(name="Triage bot")
    assert posted["Location"].startswith(url("agent-detail", org, pk=agent.pk) + "?shown=")
    response = shown_page(client, posted)
    secret = response.context["secret"]
    body = response.content.decode()
    assert secret in body and agent.client_id in body
    assert (agent.scopes, agent.audiences) == (["tickets:read"], [AUDIENCE])
    assert list(agent.owners.all()) == [owner]
    stored = AgentSecret.objects.get(agent=agent)
    _, lookup_id, raw = secret.split("_", 2)
    assert stored.lookup_id == lookup_id and raw not in stored.secret_hash
    with db.cursor() as cursor:
        cursor.execute("SELECT * FROM agents_agentsecret")
        assert raw not in repr(cursor.fetchall())
    for again in (url("agents", org), url("agent-detail", org, pk=agent.pk), posted["Location"]):
        assert raw not in client.get(again).content.decode()
    assert events(org, "agent.created").count() == 1 and events(org, "agent.secret_issued").count() == 1


def test_create_agent_whose_owner_cannot_delegate_is_refused(org, owner):
    make_connection(owner)
    viewer = MemberFactory(org=org, role="viewer")  # lacks connection:use
    response = as_user(owner.user).post(url("agents", org), {
        "name": "Too strong", "audiences": [AUDIENCE], "scopes": ["tickets:read"], "owner": str(viewer.pk)})
    assert response.status_code == 403
    assert "exceed" in response.content.decode()
    assert not Agent.objects.for_org(org).exists() and not AgentSecret.objects.exists()
    assert events(org, "access.escalation_denied").get().data["reason"] == "agent_grant"


def test_create_agent_with_a_stale_session_goes_to_reauth(org, owner):
    make_connection(owner)
    response = as_user(owner.user, auth_age=3600).post(url("agents", org), {
        "name": "Late", "audiences": [AUDIENCE], "scopes": [], "owner": str(owner.pk)})
    assert response.status_code == 302 and response["Location"].startswith("/reauth/")
    assert not Agent.objects.exists()


def test_rotate_with_a_stale_session_goes_to_reauth_and_changes_nothing(org, owner):
    agent = make_agent(owner)
    response = as_user(owner.user, auth_age=3600).post(url("agent-rotate", org, pk=agent.pk),
                                                       {"overlap_seconds": "3600"})
    assert response.status_code == 302 and response["Location"].startswith("/reauth/")
    assert AgentSecret.objects.filter(agent=agent).count() == 1
    assert AgentSecret.objects.get(agent=agent).expires_at is None
    assert not events(org, "agent.secret_rotated").exists()


def test_rotate_then_end_the_previous_secret(org, owner):
    agent = make_agent(owner)
    client = as_user(owner.user)
    asked = client.post(url("agent-rotate", org, pk=agent.pk), {"overlap_seconds": "3600"})
    assert asked.status_code == 200 and "keeps working alongside it until" in asked.content.decode()
    assert len(live_secrets(agent)) == 1 and not events(org, "agent.secret_rotated").exists()
    rotated = client.post(url("agent-rotate", org, pk=agent.pk),
                          {"overlap_seconds": "3600", "confirm": "yes"})
    response = shown_page(client, rotated)
    new_secret = response.context["secret"]
    assert new_secret in response.content.decode()
    live = live_secrets(agent)
    assert len(live) == 2
    newest = max(live, key=lambda s: s.created_at)
    assert new_secret.split("_")[1] == newest.lookup_id
    assert events(org, "agent.secret_rotated").count() == 1
    detail = client.get(url("agent-detail", org, pk=agent.pk)).content.decode()
    assert "End the previous secret now" in detail and new_secret.split("_", 2)[2] not in detail
    asked = client.get(url("agent-end-previous", org, pk=agent.pk))
    assert asked.status_code == 200 and "stops working now instead of at" in asked.content.decode()
    bare = client.post(url("agent-end-previous", org, pk=agent.pk))  # not from the confirmation's button
    assert bare.status_code == 200 and len(live_secrets(agent)) == 2
    ended = client.post(url("agent-end-previous", org, pk=agent.pk), {"confirm": "yes"})
    assert ended.status_code == 302
    assert [s.pk for s in live_secrets(agent)] == [newest.pk]
    assert events(org, "agent.secret_window_ended").get().data["how"] == "ended_early"


def test_rotate_outside_the_policy_window_is_a_form_error(org, owner):
    agent = make_agent(owner)
    response = as_user(owner.user).post(url("agent-rotate", org, pk=agent.pk),
                                        {"overlap_seconds": str(10**9)})
    assert response.status_code == 400
    assert "Between 0 and" in response.content.decode()
    assert len(live_secrets(agent)) == 1


def test_grant_update_and_suspend_resume(org, owner):
    agent = make_agent(owner)
    colleague = MemberFactory(org=org, role="member")
    client = as_user(owner.user)
    response = client.post(url("agent-detail", org, pk=agent.pk), {
        "audiences": [AUDIENCE], "scopes": ["tickets:read", "tickets:write"],
        "owners": [str(owner.pk), str(colleague.pk)]})
    assert response.status_code == 302
    agent.refresh_from_db()
    assert agent.scopes == ["tickets:read", "tickets:write"] and set(agent.owners.all()) == {owner, colleague}
    assert events(org, "agent.grant_changed").count() == 1
    assert client.post(url("agent-status", org, pk=agent.pk),
                       {"status": "suspended", "confirm": "yes"}).status_code == 302
    agent.refresh_from_db()
    assert agent.status == AgentStatus.SUSPENDED and events(org, "agent.suspended").count() == 1
    client.post(url("agent-status", org, pk=agent.pk), {"status": "active"})
    agent.refresh_from_db()
    assert agent.status == AgentStatus.ACTIVE and events(org, "agent.resumed").count() == 1


def test_revoke_confirms_then_revokes_everything(org, owner):
    agent = make_agent(owner)
    run = policies.run_start(access=access_of(owner), agent=agent)
    client = as_user(owner.user)
    confirm = client.get(url("agent-revoke", org, pk=agent.pk))
    assert confirm.status_code == 200 and "Revoking is final" in confirm.content.decode()
    assert "1 live run is terminated (1 running" in confirm.content.decode()
    stale = as_user(owner.user, auth_age=3600).post(url("agent-revoke", org, pk=agent.pk), {"confirm": "yes"})
    assert stale["Location"].startswith("/reauth/")
    bare = client.post(url("agent-revoke", org, pk=agent.pk))  # not from the confirmation's button
    assert bare.status_code == 200 and "Revoking is final" in bare.content.decode()
    agent.refresh_from_db()
    assert agent.status == AgentStatus.ACTIVE
    assert client.post(url("agent-revoke", org, pk=agent.pk), {"confirm": "yes"}).status_code == 302
    agent.refresh_from_db()
    run.refresh_from_db()
    assert agent.status == AgentStatus.REVOKED and live_secrets(agent) == []
    assert run.status == RunStatus.TERMINATED
    assert events(org, "agent.revoked").get().data == {"runs_cancelled": 1}
    detail = client.get(url("agent-detail", org, pk=agent.pk)).content.decode()
    assert "Rotate secret" not in detail and "Save grant" not in detail


# --- Connections and runs -----------------------------------------------------------------------


def test_create_connection_shows_its_secret_once(org, owner):
    client = as_user(owner.user)
    posted = client.post(url("connections", org), {
        "name": "Ticket service", "audience": AUDIENCE, "scopes": "tickets:write, tickets:read  tickets:read",
    })
    connection = Connection.objects.for_org(org).get()
    assert posted["Location"].startswith(url("connection-detail", org, pk=connection.pk) + "?shown=")
    response = shown_page(client, posted)
    secret = response.context["secret"]
    assert secret in response.content.decode() and connection.client_id in response.content.decode()
    raw = secret.split("_", 2)[2]
    assert connection.scopes == ["tickets:read", "tickets:write"] and raw not in connection.secret_hash
    assert connection.secret_hash == secret_hash(raw, connection.hash_kid)[0]
    for again in (url("connections", org), url("connection-detail", org, pk=connection.pk),
                  posted["Location"]):
        assert secret not in client.get(again).content.decode()
    duplicate = client.post(url("connections", org), {"name": "Other", "audience": AUDIENCE, "scopes": ""})
    assert duplicate.status_code == 409 and "Already registered" in duplicate.content.decode()
    assert events(org, "connection.created").count() == 1


def test_start_and_terminate_a_run(org, owner):
    agent = make_agent(owner)
    operator = MemberFactory(org=org, role="member")
    client = as_user(operator.user)
    response = client.post(url("runs", org), {"agent": str(agent.pk), "description": "Nightly triage"})
    assert response.status_code == 302
    run = Run.objects.for_org(org).get()
    assert (run.status, run.description) == ("running", "Nightly triage")
    assert run.started_by_id == str(operator.user.pk)
    assert "Nightly triage" in client.get(url("runs", org)).content.decode()
    terminated = client.post(url("run-terminate", org, pk=run.pk), {"from": "agent", "confirm": "yes"})
    assert terminated["Location"] == url("agent-detail", org, pk=agent.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.TERMINATED and run.ended_at is not None
    assert events(org, "run.terminated").get().data["reason"] == "terminated"


def test_a_suspended_agent_is_not_offered_for_a_run(org, owner):
    agent = make_agent(owner)
    policies.agent_set_status(access=access_of(owner), agent=agent, status="suspended")
    response = as_user(owner.user).post(url("runs", org), {"agent": str(agent.pk)})
    assert response.status_code == 400 and not Run.objects.exists()


def test_the_access_review_export_has_the_agent_row(org, owner):
    agent = make_agent(owner)
    response = as_user(owner.user).get(reverse("api:access-review", kwargs={"org": org.slug}))
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    row = next(r for r in rows if r["principal_type"] == "agent")
    assert (row["principal_id"], row["name"], row["scopes"]) == (str(agent.pk), "Triage bot", "tickets:read")
    assert row["owner"] == owner.user.email and row["effective_permissions"] == "tickets:read"
