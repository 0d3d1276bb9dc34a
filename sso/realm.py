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


def reauth_url(request, next_url: str) -> str | None:
    """Where the signed-in person re-authenticates at an IdP they are linked to: the org that
    `next_url` acts in first, else any of theirs."""
    from django.utils.http import urlencode

    from sso.models import Identity

    if not request.user.is_authenticated:
        return None
    identities = list(Identity.objects.unscoped()  # the person's own identities, in every org
                      .filter(user=request.user, connection__enabled=True)
                      .select_related("org").order_by("-last_login_at")[:20])
    if not identities:
        return None
    parts = next_url.split("/")
    wanted = parts[2] if next_url.startswith("/orgs/") and len(parts) > 2 else ""
    chosen = next((i for i in identities if i.org.slug == wanted), identities[0])
    url = reverse("sso:reauth", kwargs={"pk": chosen.connection_id})
    return url + (f"?{urlencode({'next': next_url})}" if next_url else "")
