"""Re-authentication at the person's own IdP (for people who sign in only through SSO)."""

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from core.tenancy import org_scope_enter
from sso import signin
from sso.models import Identity, Protocol


@never_cache
@login_required
@require_GET
def reauth_view(request, pk):
    """Start a re-authentication flow at a connection the signed-in person is linked to; the IdP is
    asked to authenticate them afresh. Any other connection is a 404."""
    from sso.views import oidc, saml

    identity = (Identity.objects.unscoped()  # the person's own identity, found before any org scope
                .select_related("connection__org")
                .filter(user=request.user, connection_id=pk, connection__enabled=True).first())
    if identity is None:
        raise Http404
    connection = identity.connection
    org_scope_enter(connection.org)
    start = oidc.login_start if connection.protocol == Protocol.OIDC else getattr(saml, "login_start", None)
    if start is None:
        raise Http404
    try:
        return start(request, connection, next_url=request.GET.get("next", ""), reauth=True)
    except signin.SsoRefused as exc:
        return signin.refuse(request, connection, exc)
