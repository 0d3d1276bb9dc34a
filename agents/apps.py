from django.apps import AppConfig
from django.core import checks

from agents.checks import redis_eviction_check


class AgentsConfig(AppConfig):
    name = "agents"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from accounts.departures import on_departure
        from agents.services import agents_on_departure

        on_departure(agents_on_departure)
        checks.register(redis_eviction_check, checks.Tags.caches, deploy=True)
