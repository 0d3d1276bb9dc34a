from django.apps import AppConfig


class ScimConfig(AppConfig):
    name = "scim"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from accounts.departures import DIRECTORY_IN_CHARGE, on_departure
        from scim.tokens import scim_provisions, scim_tokens_on_departure

        on_departure(scim_tokens_on_departure)
        DIRECTORY_IN_CHARGE.append(scim_provisions)
        from django.db.models import CharField
        from django.db.models.functions import Lower

        # `display_name__lower=...`: group filters compare through the same lower() as the group
        # name's unique index (userName has its own key, scim.usernames).
        CharField.register_lookup(Lower)
