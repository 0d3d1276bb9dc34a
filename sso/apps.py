from django.apps import AppConfig


class SsoConfig(AppConfig):
    name = "sso"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from accounts import login_flow
        from sso import signin

        login_flow.LOGIN_COMPLETED.append(signin.record_idp_session)
