from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from accounts.api_keys import api_keys_on_departure
        from accounts.departures import on_departure

        on_departure(api_keys_on_departure)
