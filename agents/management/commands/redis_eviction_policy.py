from django.core.management.base import BaseCommand, CommandError

from agents.checks import eviction_messages, eviction_policies


class Command(BaseCommand):
    help = ("Report the maxmemory-policy of each Redis server in use (the cache, the Celery broker); "
            "fail when one can evict keys that have no TTL or cannot be read.")

    def handle(self, *args, **opts):
        policies = eviction_policies()
        if not policies:
            self.stdout.write("No Redis server in use (local-memory cache, in-process Celery).")
        for found in policies:
            if found.policy is None:
                self.stdout.write(f"{found.server}: maxmemory-policy unknown ({found.error})")
            else:
                self.stdout.write(
                    f"{found.server}: maxmemory-policy {found.policy}, maxmemory {found.maxmemory}")
        messages = eviction_messages(policies)
        if messages:
            raise CommandError("\n".join(f"{m.msg} {m.hint}" for m in messages))
