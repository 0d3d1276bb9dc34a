from django.apps import AppConfig
from django.core import checks

from agents.checks import redis_eviction_check


class AgentsConfig(AppConfig):
    name = "agents"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.db.models.signals import post_delete

        from accounts.departures import on_account_recovered, on_departure, on_standing_lost
        from accounts.models import UserSession
        from agents.delegation import (
            delegations_on_account_recovered,
            delegations_on_departure,
            delegations_on_standing_lost,
            session_ended,
        )
        from agents.services import agents_on_departure

        on_departure(agents_on_departure)
        on_departure(delegations_on_departure)
        on_standing_lost(delegations_on_standing_lost)
        on_account_recovered(delegations_on_account_recovered)
        # Every way a session ends deletes its row (sign-out, "sign out everywhere", a password
        # change, clearsessions): the org's policy may end the person's delegations with the last.
        post_delete.connect(session_ended, sender=UserSession,
                            dispatch_uid="agents.delegations.session_ended")
        checks.register(redis_eviction_check, checks.Tags.caches, deploy=True)
