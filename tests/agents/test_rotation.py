"""Client-secret rotation (SECURITY_CASES I68) with frozen time: the old secret works only inside the
overlap window, ended by its timestamp at authentication (no worker); ending it early is immediate
and kills what it issued; concurrent rotations never leave more than two live secrets."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone
from freezegun import freeze_time

from agents.models import AgentSecret
from agents.policies import agent_policy_update, agent_secret_end_previous, agent_secret_rotate
from core.errors import Invalid
from core.tenancy import org_scope
from tests.agents.conftest import build_world, issued_count, post_form
from tests.helpers import audit_events, in_parallel


def _start() -> datetime:
    # Frozen time starts just after the world was built, so created_at keeps its real order.
    return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)


def _ask(client, world, secret):
    return post_form(client, world.url("token"), {"grant_type": "client_credentials"},
                     auth=(world.agent.client_id, secret))


def _live(agent) -> list[AgentSecret]:
    now = timezone.now()
    return [s for s in AgentSecret.objects.filter(agent=agent) if s.is_live(now)]


def test_the_old_secret_works_only_inside_the_window(client, world):
    old, start = world.agent_secret, _start()
    with freeze_time(start) as frozen:
        new, old_ends = agent_secret_rotate(access=world.access, agent=world.agent, overlap_seconds=3600)
        assert old_ends == start + timedelta(seconds=3600)
        frozen.tick(10)
        assert _ask(client, world, old).status_code == 200
        assert _ask(client, world, new).status_code == 200
        frozen.move_to(old_ends - timedelta(seconds=1))
        assert _ask(client, world, old).status_code == 200
        frozen.move_to(old_ends + timedelta(seconds=1))
        response = _ask(client, world, old)
        assert response.status_code == 401 and response.json()["error"] == "invalid_client"
        assert _ask(client, world, new).status_code == 200
    assert issued_count(world.org) == 4
    assert [e.data["reason"] for e in audit_events(world.org, "token.denied")] == ["bad_secret"]
    previous = AgentSecret.objects.get(agent=world.agent, lookup_id=old.split("_")[1])
    # Nothing ran in the background: the row is as the rotation left it, refused by its timestamp.
    assert previous.expires_at == old_ends and not previous.window_closed_audited
    rotated = audit_events(world.org, "agent.secret_rotated").get()
    assert rotated.data["previous"] == str(previous.pk)
    assert not audit_events(world.org, "agent.secret_window_ended").exists()


def test_ending_the_window_now_is_immediate_and_kills_the_old_tokens(client, world, introspect):
    old = world.agent_secret
    with freeze_time(_start()) as frozen:
        new, _ = agent_secret_rotate(access=world.access, agent=world.agent, overlap_seconds=3600)
        frozen.tick(5)
        old_token = _ask(client, world, old).json()["access_token"]
        new_token = _ask(client, world, new).json()["access_token"]
        frozen.tick(5)
        assert agent_secret_end_previous(access=world.access, agent=world.agent) == 1
        assert introspect(world, old_token) == {"active": False}
        assert introspect(world, new_token)["active"] is True
        assert _ask(client, world, old).status_code == 401
        assert _ask(client, world, new).status_code == 200
        assert len(_live(world.agent)) == 1
    ended = audit_events(world.org, "agent.secret_window_ended").get()
    previous = AgentSecret.objects.get(agent=world.agent, lookup_id=old.split("_")[1])
    assert ended.data == {"secret": str(previous.pk), "how": "ended_early"}


def test_a_zero_overlap_ends_the_old_secret_at_once(client, world, get_token, introspect):
    token = get_token(world)["access_token"]
    new, _ = agent_secret_rotate(access=world.access, agent=world.agent, overlap_seconds=0)
    assert _ask(client, world, world.agent_secret).status_code == 401
    assert introspect(world, token) == {"active": False}
    assert _ask(client, world, new).status_code == 200
    assert audit_events(world.org, "agent.secret_window_ended").get().data["how"] == "immediate"


def test_two_rotations_in_a_row_leave_two_live_secrets(client, world):
    first, _ = agent_secret_rotate(access=world.access, agent=world.agent, overlap_seconds=3600)
    second, _ = agent_secret_rotate(access=world.access, agent=world.agent, overlap_seconds=3600)
    assert len(_live(world.agent)) == 2
    statuses = [_ask(client, world, s).status_code for s in (world.agent_secret, first, second)]
    assert statuses == [401, 200, 200]
    assert audit_events(world.org, "agent.secret_rotated").count() == 2
    assert audit_events(world.org, "agent.secret_window_ended").get().data["how"] == "superseded"


@pytest.mark.parametrize("overlap", [601, -1])
def test_an_overlap_outside_the_policy_is_refused(client, world, overlap):
    agent_policy_update(access=world.access, secret_overlap_max_seconds=600)
    with pytest.raises(Invalid) as refused:
        agent_secret_rotate(access=world.access, agent=world.agent, overlap_seconds=overlap)
    assert "overlap_seconds" in refused.value.fields
    assert AgentSecret.objects.filter(agent=world.agent).count() == 1
    assert AgentSecret.objects.get(agent=world.agent).expires_at is None
    assert not audit_events(world.org, "agent.secret_rotated").exists()
    assert _ask(client, world, world.agent_secret).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_concurrent_rotations_leave_one_current_and_at_most_two_live(client):
    if connection.vendor != "postgresql":
        pytest.skip("race cases run on PostgreSQL (SQLite serialises every writer)")
    world = build_world()

    def rotate(_):
        with org_scope(world.org):  # as each request would be, once the guard has run
            return agent_secret_rotate(access=world.access, agent=world.agent, overlap_seconds=3600)[0]

    displays = in_parallel(10, rotate)
    assert len(set(displays)) == 10
    rows = AgentSecret.objects.filter(agent=world.agent)
    assert rows.count() == 11
    assert rows.filter(expires_at__isnull=True, revoked_at__isnull=True).count() == 1
    assert len(_live(world.agent)) == 2
    working = [s for s in [world.agent_secret, *displays] if _ask(client, world, s).status_code == 200]
    assert len(working) == 2 and world.agent_secret not in working
    assert audit_events(world.org, "agent.secret_rotated").count() == 10
    assert audit_events(world.org, "agent.secret_window_ended").count() == 9


def test_under_a_maximum_secret_age_a_new_secret_stops_working_then_without_any_worker(client, world):
    agent_policy_update(access=world.access, secret_max_age_days=30)
    start = _start()
    with freeze_time(start) as frozen:
        new, old_ends = agent_secret_rotate(access=world.access, agent=world.agent, overlap_seconds=3600)
        secret = AgentSecret.objects.get(agent=world.agent, lookup_id=new.split("_")[1])
        assert secret.expires_at == start + timedelta(days=30)
        assert old_ends == start + timedelta(seconds=3600)  # made before the limit: the window holds
        frozen.move_to(start + timedelta(days=30) - timedelta(seconds=1))
        assert _ask(client, world, new).status_code == 200
        frozen.move_to(start + timedelta(days=30, seconds=1))
        assert _ask(client, world, new).status_code == 401
        # A rotation window never outlasts the maximum age the previous secret already has.
        frozen.move_to(start + timedelta(days=30) - timedelta(minutes=10))
        newer, previous_end = agent_secret_rotate(access=world.access, agent=world.agent,
                                                  overlap_seconds=3600)
        assert previous_end == start + timedelta(days=30)
        assert _ask(client, world, newer).status_code == 200
