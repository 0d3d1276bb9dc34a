from django.apps import AppConfig


class WebConfig(AppConfig):
    """The web shell: base API views, the page mixin, form helpers, pagination, error rendering."""

    name = "web"

    def ready(self) -> None:
        from web import schema  # noqa: F401  registers the OpenAPI authentication extensions
