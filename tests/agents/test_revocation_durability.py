"""Every revocation cutoff is kept in the database and every key the fast store lost is read back from
there: a flushed store (Redis FLUSHDB, a restart without persistence) or one evicted key never brings
a revoked token back, even once the agent that was suspended is active again."""

import importlib
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from django.apps import apps
from django.conf import settings
from django.core.cache import cache
from django_redis import get_redis_connection
from freezegun import freeze_time

from agents import revocation
from agents.models import AgentStatus, RevocationCutoff, RevokedToken
from agents.policies import agent_secret_rotate, agent_set_status, run_start, run_terminate
from agents.tasks import revocation_rows_prune
from agents.tokens import TokenInvalid, token_verify
from tests.agents.conftest import post_form
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db

ON_REDIS = settings.CACHES["default"]["BACKEND"] == "django_redis.cache.RedisCache"


def _start() -> datetime:
    # Whole seconds: a token's `iat` is whole seconds, so a cutoff and the next token never share one.
    return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)


def _lose_store():
    cache.clear()
    if ON_REDIS:
        get_redis_connection("default").flushdb()  # what an operator's FLUSHDB does
        assert get_redis_connection("default").dbsize() == 0


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def _refused(world, introspect, token: str, reason: str) -> None:
    assert introspect(world, token) == {"active": False}
    with pytest.raises(TokenInvalid, match=reason):
        token_verify(token, org_slug=world.slug)


def test_a_suspension_survives_the_resume_and_a_flushed_store(world, get_token, introspect):
    with freeze_time(_start()) as frozen:
        old = get_token(world)["access_token"]
        assert introspect(world, old)["active"] is True
        agent_set_status(access=world.access, agent=world.agent, status="suspended")
        assert introspect(world, old) == {"active": False}
        frozen.tick(1)
        agent_set_status(access=world.access, agent=world.agent, status="active")
        _lose_store()
        _refused(world, introspect, old, "agent_revoked")
        new = get_token(world)["access_token"]
        assert introspect(world, new)["active"] is True
        token_verify(new, org_slug=world.slug)
    world.agent.refresh_from_db()
    assert world.agent.status == AgentStatus.ACTIVE
    assert audit_events(world.org, "agent.suspended").count() == 1
    assert audit_events(world.org, "agent.resumed").count() == 1
    # An inactive answer names no token id; the refusal after the flush repeats the one on record.
    answers = [(e.data["jti"], e.data["active"]) for e in audit_events(world.org, "token.introspected")]
    assert answers == [(_claims(old)["jti"], True), (None, False), (_claims(new)["jti"], True)]


def test_the_cutoff_is_in_the_database_with_the_suspension(world):
    with freeze_time(_start()):
        agent_set_status(access=world.access, agent=world.agent, status="suspended")
        row = RevocationCutoff.objects.get(kind="agent", subject=world.agent.subject)
        assert row.cutoff_at == datetime.now(UTC)
        assert row.expires_at == row.cutoff_at + timedelta(seconds=revocation.CUTOFF_TTL)


def test_a_later_cutoff_replaces_the_earlier_one(world):
    with freeze_time(_start()) as frozen:
        agent_set_status(access=world.access, agent=world.agent, status="suspended")
        frozen.tick(5)
        agent_set_status(access=world.access, agent=world.agent, status="active")
        agent_set_status(access=world.access, agent=world.agent, status="suspended")
        row = RevocationCutoff.objects.get(kind="agent", subject=world.agent.subject)
        assert row.cutoff_at == datetime.now(UTC)


def _suspended_then_resumed(world, get_token):
    token = get_token(world)["access_token"]
    agent_set_status(access=world.access, agent=world.agent, status="suspended")
    return token, f"rv:agent:{world.agent.subject}", "agent_revoked"


def _ended_run(world, get_token):
    run = run_start(access=world.access, agent=world.agent)
    token = get_token(world, run=str(run.pk))["access_token"]
    run_terminate(access=world.access, run=run)
    return token, f"rv:run:{run.pk}", "run_revoked"


def _ended_secret(world, get_token):
    token = get_token(world)["access_token"]
    new_secret, _ = agent_secret_rotate(access=world.access, agent=world.agent, overlap_seconds=0)
    world.agent_secret = new_secret
    return token, f"rv:cred:{_claims(token)['cred']}", "cred_revoked"


def _revoked_jti(world, get_token):
    token = get_token(world)["access_token"]
    assert post_form(world.client, world.url("revoke"), {"token": token},
                     auth=(world.agent.client_id, world.agent_secret)).status_code == 200
    return token, f"rv:jti:{_claims(token)['jti']}", "token_revoked"


CUTOFFS = {"agent": _suspended_then_resumed, "run": _ended_run, "cred": _ended_secret, "jti": _revoked_jti}


@pytest.mark.parametrize("kind", CUTOFFS)
def test_one_evicted_key_does_not_bring_a_revoked_token_back(client, world, get_token, introspect, kind):
    world.client = client
    with freeze_time(_start()) as frozen:
        token, key, reason = CUTOFFS[kind](world, get_token)
        _refused(world, introspect, token, reason)
        if kind == "agent":
            frozen.tick(1)
            agent_set_status(access=world.access, agent=world.agent, status="active")
        assert cache.delete(key)  # evicted: the rest of the store, any marker included, is still there
        _refused(world, introspect, token, reason)
        assert cache.get(key)  # read back from the database
        fresh = get_token(world)["access_token"]
        assert introspect(world, fresh)["active"] is True


def test_a_lost_key_costs_a_constant_number_of_queries_once(world, get_token, django_assert_num_queries):
    token = get_token(world)["access_token"]
    token_verify(token, org_slug=world.slug)  # warms the verifier cache
    _lose_store()
    with django_assert_num_queries(2):  # the token id's row, then the cutoffs of its agent and secret
        token_verify(token, org_slug=world.slug)
    with django_assert_num_queries(0):
        token_verify(token, org_slug=world.slug)
    cache.delete(f"rv:agent:{world.agent.subject}")
    with django_assert_num_queries(1):
        token_verify(token, org_slug=world.slug)


def test_a_cutoff_lost_before_its_commit_is_written_again_at_commit(
        world, get_token, introspect, django_capture_on_commit_callbacks):
    with freeze_time(_start()):
        token = get_token(world)["access_token"]
        key = f"rv:agent:{world.agent.subject}"
        with django_capture_on_commit_callbacks(execute=True):
            agent_set_status(access=world.access, agent=world.agent, status="suspended")
            _lose_store()
            # A verifier that read the database before the suspension committed, and found no cutoff.
            cache.add(key, revocation.NO_CUTOFF, revocation.NEGATIVE_TTL)
        assert cache.get(key) == datetime.now(UTC).timestamp()
        _refused(world, introspect, token, "agent_revoked")


def test_the_store_holds_every_key_of_a_new_token(world, get_token, django_assert_num_queries):
    token = get_token(world)["access_token"]
    token_verify(token, org_slug=world.slug)
    second = get_token(world)["access_token"]
    with django_assert_num_queries(0):  # its token id was written "not revoked" when it was signed
        token_verify(second, org_slug=world.slug)


def test_cutoffs_are_pruned_once_every_token_they_could_kill_has_expired(client, world, get_token):
    start = _start()
    with freeze_time(start) as frozen:
        token = get_token(world)["access_token"]
        assert post_form(client, world.url("revoke"), {"token": token},
                         auth=(world.agent.client_id, world.agent_secret)).status_code == 200
        run = run_start(access=world.access, agent=world.agent)
        run_terminate(access=world.access, run=run)
        agent_set_status(access=world.access, agent=world.agent, status="suspended")
        frozen.tick(300 + revocation.GRACE - 1)
        assert revocation.revocations_prune() == 0
        frozen.tick(1)
        assert revocation.revocations_prune() == 1  # the token id, once the token itself has expired
        assert not RevokedToken.objects.unscoped().exists()
        frozen.move_to(start + timedelta(seconds=revocation.CUTOFF_TTL - 1))
        assert revocation.revocations_prune() == 0
        later = RevocationCutoff.objects.create(
            kind="run", subject="later", cutoff_at=datetime.now(UTC),
            expires_at=datetime.now(UTC) + timedelta(seconds=revocation.CUTOFF_TTL))
        frozen.tick(1)
        assert revocation.revocations_prune() == 2
        assert list(RevocationCutoff.objects.all()) == [later]
        _lose_store()  # nothing is left to kill what they killed: every such token has expired
        with pytest.raises(TokenInvalid, match="expired"):
            token_verify(token, org_slug=world.slug)


def test_the_prune_task_prunes(world):
    with freeze_time(_start()) as frozen:
        agent_set_status(access=world.access, agent=world.agent, status="suspended")
        frozen.tick(revocation.CUTOFF_TTL + 1)
        assert revocation_rows_prune() == 1
    assert not RevocationCutoff.objects.exists()


def test_the_upgrade_writes_the_cutoffs_the_store_alone_held(world, get_token, introspect):
    # Before the table existed a cutoff lived only in the store: the migration writes one for
    # everything the store used to be rebuilt from, so losing the store after the upgrade is safe.
    migration = importlib.import_module("agents.migrations.0007_revocation_cutoff")
    run = run_start(access=world.access, agent=world.agent)
    bound, free = get_token(world, run=str(run.pk))["access_token"], get_token(world)["access_token"]
    run_terminate(access=world.access, run=run)
    RevocationCutoff.objects.all().delete()
    _lose_store()
    migration.cutoffs_from_state(apps, None)
    assert list(RevocationCutoff.objects.values_list("kind", "subject")) == [("run", str(run.pk))]
    assert introspect(world, bound) == {"active": False}
    assert introspect(world, free)["active"] is True
