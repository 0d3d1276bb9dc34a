"""Home-realm discovery: which IdP signs a person in, from their email's verified domain or from
the org they are trying to reach. Registered into accounts' login page in `SsoConfig.ready()`."""

from django.urls import reverse

from accounts.models import normalize_email
from core.models import Organization
from sso.domains import verified_org_for
from sso.models import Connection


def enabled_connections(org):
    return Connection.objects.for_org(org).filter(enabled=True).order_by("name")


def org_has_sso(org) -> bool:
    return enabled_connections(org).exists()


def login_url(connection) -> str:
    name = "sso:oidc-login" if connection.protocol == "oidc" else "sso:saml-login"
    return reverse(name, kwargs={"org": connection.org.slug, "connection": connection.slug})


def realm_for_email(email: str) -> str | None:
    org = verified_org_for(normalize_email(email))
    if org is None or not org_has_sso(org):
        return None
    return reverse("sso:org-signin", kwargs={"org": org.slug})


def realm_for_org(org_slug: str) -> str | None:
    org = Organization.objects.filter(slug=org_slug).first()
    if org is None or not org_has_sso(org):
        return None
    return reverse("sso:org-signin", kwargs={"org": org.slug})
