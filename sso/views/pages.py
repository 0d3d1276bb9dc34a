"""The org's sign-in page: its enabled SSO connections (home-realm discovery lands here)."""

from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from core.models import Organization
from core.tenancy import org_scope
from sso.realm import enabled_connections, login_url
from sso.signin import safe_local


@never_cache
@require_http_methods(["GET", "HEAD"])
def org_signin_view(request, org):
    """One connection: straight to it. Several: the person picks. None: 404 (as an unknown org)."""
    row = Organization.objects.filter(slug=org).first()
    if row is None:
        raise Http404
    with org_scope(row):
        connections = [(c, login_url(c)) for c in enabled_connections(row).select_related("org")]
    if not connections:
        raise Http404
    target = safe_local(request, request.GET.get("next", ""))
    suffix = f"?{urlencode({'next': target})}" if target else ""
    if len(connections) == 1:
        return redirect(connections[0][1] + suffix)
    return render(request, "sso/org_signin.html",
                  {"org": row, "connections": [(c, url + suffix) for c, url in connections]})
