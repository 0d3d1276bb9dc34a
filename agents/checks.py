"""What the Redis servers this project uses may evict, read from their `maxmemory-policy`.

Revocation does not depend on it: every revocation key the store lost is read back from the
database (agents.revocation), so an eviction costs a query, never a revoked token's return. Every
key the cache writes has a TTL. An `allkeys-*` policy also evicts keys without one, such as Celery's
queues when the broker shares the server, so it is reported; `noeviction` or a `volatile-*` policy
is what the deployment needs (README, docs/architecture.md).
"""

from dataclasses import dataclass
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.core import checks
from django_redis import get_redis_connection

REDIS_CACHE = "django_redis.cache.RedisCache"


@dataclass(frozen=True)
class EvictionPolicy:
    server: str  # "cache" or "broker"
    policy: str | None  # None: could not be read
    maxmemory: int | None
    error: str = ""

    @property
    def evicts_keys_without_ttl(self) -> bool:
        return bool(self.policy and self.policy.startswith("allkeys-"))


def _clients() -> dict[str, redis.Redis]:
    clients = {}
    if settings.CACHES["default"]["BACKEND"] == REDIS_CACHE:
        clients["cache"] = get_redis_connection("default")
    broker = settings.CELERY_BROKER_URL or ""
    if urlsplit(broker).scheme in ("redis", "rediss"):
        clients["broker"] = redis.Redis.from_url(broker, socket_connect_timeout=2, socket_timeout=2)
    return clients


def _read(server: str, client: redis.Redis) -> EvictionPolicy:
    try:
        config = client.config_get("maxmemory*")
    except redis.RedisError as exc:  # unreachable, or CONFIG refused (many managed services)
        return EvictionPolicy(server, None, None, f"{type(exc).__name__}: {exc}")
    return EvictionPolicy(server, config.get("maxmemory-policy"), int(config.get("maxmemory") or 0))


def eviction_policies() -> list[EvictionPolicy]:
    """The `maxmemory-policy` of each Redis server in use (none with the local-memory cache and an
    in-process Celery)."""
    return [_read(server, client) for server, client in _clients().items()]


def eviction_messages(policies: list[EvictionPolicy]) -> list[checks.CheckMessage]:
    messages = []
    for found in policies:
        if found.policy is None:
            messages.append(checks.Warning(
                f"Could not read the {found.server} Redis server's maxmemory-policy ({found.error}).",
                hint="Make sure it is noeviction or volatile-*; allkeys-* evicts keys that have no TTL.",
                id="agents.W002"))
        elif found.evicts_keys_without_ttl:
            messages.append(checks.Warning(
                f"The {found.server} Redis server's maxmemory-policy is {found.policy}: once maxmemory "
                f"({found.maxmemory or 'unset'}) is reached it evicts keys that have no TTL, Celery's "
                "queues among them.",
                hint="Set maxmemory-policy to noeviction or volatile-lru.", id="agents.W001"))
    return messages


def redis_eviction_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """`manage.py check --deploy`: warn when a Redis server in use can evict keys without a TTL."""
    return eviction_messages(eviction_policies())
