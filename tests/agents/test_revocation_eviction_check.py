"""`check --deploy` and `manage.py redis_eviction_policy` report what each Redis server in use may
evict; revocation itself never depends on it (tests/agents/test_revocation_durability.py)."""

from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django_redis import get_redis_connection

from agents.checks import EvictionPolicy, eviction_messages, eviction_policies, redis_eviction_check

ON_REDIS = settings.CACHES["default"]["BACKEND"] == "django_redis.cache.RedisCache"
UNREACHABLE_REDIS = {"default": {
    "BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:1/0",
    "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1}}}


@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-lfu", "allkeys-random"])
def test_a_policy_that_evicts_keys_without_a_ttl_is_a_warning(policy):
    [message] = eviction_messages([EvictionPolicy("broker", policy, 1 << 30)])
    assert message.id == "agents.W001" and policy in message.msg and "broker" in message.msg


@pytest.mark.parametrize("policy", ["noeviction", "volatile-lru", "volatile-lfu", "volatile-random",
                                    "volatile-ttl"])
def test_policies_that_keep_keys_without_a_ttl_are_fine(policy):
    assert eviction_messages([EvictionPolicy("cache", policy, 1 << 30)]) == []


def test_a_policy_that_cannot_be_read_is_a_warning():
    [message] = eviction_messages([EvictionPolicy("cache", None, None, "ResponseError: unknown command")])
    assert message.id == "agents.W002" and "ResponseError" in message.msg


def test_the_check_reads_the_servers_in_use():
    found = {p.server: p for p in eviction_policies()}
    assert ("cache" in found) == ON_REDIS
    if ON_REDIS:
        policy = get_redis_connection("default").config_get("maxmemory-policy")["maxmemory-policy"]
        assert found["cache"].policy == policy
    expected = [m.id for m in eviction_messages(list(found.values()))]
    assert [m.id for m in redis_eviction_check()] == expected


def test_the_command_reports_each_server():
    out = StringIO()
    if any(p.evicts_keys_without_ttl for p in eviction_policies()):
        pytest.skip("this Redis evicts keys without a TTL: the command fails, as it should")
    call_command("redis_eviction_policy", stdout=out)
    if ON_REDIS:
        assert "cache: maxmemory-policy " in out.getvalue()
    elif not settings.CELERY_BROKER_URL:
        assert "No Redis server in use" in out.getvalue()


@override_settings(CACHES=UNREACHABLE_REDIS, CELERY_BROKER_URL=None)
def test_the_command_fails_when_the_policy_cannot_be_read():
    out = StringIO()
    with pytest.raises(CommandError, match="Could not read the cache Redis server"):
        call_command("redis_eviction_policy", stdout=out)
    assert "cache: maxmemory-policy unknown" in out.getvalue()
