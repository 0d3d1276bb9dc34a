from django.apps import AppConfig
from django.conf import settings
from django.core import checks

from audit.keys import KID_MAX_LENGTH


class AuditConfig(AppConfig):
    name = "audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        checks.register(audit_keys_check)


def audit_keys_check(app_configs=None, **kwargs):
    """Every entry stores its key id, so a kid that does not fit would make every append fail."""
    return [
        checks.Error(f"IAM_AUDIT_KEYS key id {kid!r} is longer than {KID_MAX_LENGTH} characters.",
                     id="audit.E001")
        for kid in settings.IAM_AUDIT_KEYS if len(kid) > KID_MAX_LENGTH
    ]
