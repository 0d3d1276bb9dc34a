"""Walk every route: each DRF view must be org-scoped and declare a catalogue permission for each
action or method it serves. A view that declares nothing must fail here, never silently allow."""

from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.views import APIView

from core.permissions import Perm
from web.api import OrgScopedMixin

# Views outside the org-scoped API that are public by design.
PUBLIC_API_VIEWS = {"SpectacularAPIView", "SpectacularSwaggerView"}
HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def _walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.callback


def _api_routes():
    for route, callback in _walk(get_resolver().url_patterns):
        view_class = getattr(callback, "cls", None)
        if view_class is not None and issubclass(view_class, APIView):
            yield route, callback, view_class


def _undeclared(callback, view_class) -> list[str]:
    actions = getattr(callback, "actions", None)
    if actions:  # a viewset route: method -> action name
        needed = set(actions.values())
    else:
        needed = {m for m in HTTP_METHODS if hasattr(view_class, m)}
    declared = getattr(view_class, "required", {})
    return sorted(n for n in needed if not isinstance(declared.get(n), Perm))


def test_every_api_route_is_org_scoped_and_declares_its_permissions():
    problems, walked = [], 0
    for route, callback, view_class in _api_routes():
        if view_class.__name__ in PUBLIC_API_VIEWS:
            continue
        walked += 1
        if not issubclass(view_class, OrgScopedMixin):
            problems.append(f"{route}: {view_class.__name__} is not org-scoped")
            continue
        missing = _undeclared(callback, view_class)
        if missing:
            problems.append(f"{route}: {view_class.__name__} declares no permission for {missing}")
    assert walked >= 10
    assert not problems, "\n".join(problems)


def test_the_walker_catches_a_view_that_declares_nothing():
    from rest_framework import mixins

    from web.api import OrgScopedViewSet

    class Forgetful(mixins.ListModelMixin, OrgScopedViewSet):
        required = {"retrieve": Perm.ORG_READ}

    callback = Forgetful.as_view({"get": "list"})
    assert _undeclared(callback, Forgetful) == ["list"]


def test_a_view_may_not_override_the_scoping_hooks():
    import pytest

    from web.api import OrgScopedViewSet

    with pytest.raises(TypeError):
        type("Leaky", (OrgScopedViewSet,), {"get_queryset": lambda self: None})
    with pytest.raises(TypeError):
        type("Stringly", (OrgScopedViewSet,), {"required": {"list": "member:read"}})
