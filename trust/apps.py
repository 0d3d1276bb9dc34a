from django.apps import AppConfig


class TrustConfig(AppConfig):
    name = "trust"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # The layer below cannot import this one: it asks its registries, and trust fills them.
        from agents.issuance import ISSUANCE_GATES
        from agents.services import RESUME_CHECKS
        from trust import signals  # noqa: F401 (connects the cache invalidation receivers)
        from trust.containment import resume_check
        from trust.issuance import issuance_gate

        if issuance_gate not in ISSUANCE_GATES:
            ISSUANCE_GATES.append(issuance_gate)
        if resume_check not in RESUME_CHECKS:
            RESUME_CHECKS.append(resume_check)
