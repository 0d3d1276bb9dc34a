from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from accounts.departures import on_departure
        from agents.services import agents_on_departure

        on_departure(agents_on_departure)
