from django.apps import AppConfig


class CoreConfig(AppConfig):
    """The kernel: what every domain app needs, importing none of them."""

    name = "core"
    default_auto_field = "django.db.models.BigAutoField"
