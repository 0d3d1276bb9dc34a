from django.apps import AppConfig


class SsoConfig(AppConfig):
    name = "sso"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from accounts import login_flow
        from accounts import services as accounts_services
        from sso import realm, signin

        login_flow.LOGIN_COMPLETED.append(signin.record_idp_session)
        login_flow.HOME_REALM.append(realm.realm_for_email)
        login_flow.ORG_SIGN_IN.append(realm.realm_for_org)
        login_flow.REAUTH_AT_IDP.append(realm.reauth_url)
        accounts_services.SSO_READY.append(realm.org_has_sso)
