from django.urls import URLPattern, URLResolver, get_resolver

from core.permissions import Perm
from web.pages import OrgPageMixin

ORG_PREFIX = "orgs/<str:org>/"


def _routes(patterns, prefix=""):
    """(full route, pattern) for every route the project serves, through every include."""
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            yield route, pattern


def org_page_routes():
    return [(route, p) for route, p in _routes(get_resolver().url_patterns) if route.startswith(ORG_PREFIX)]


def test_every_org_page_declares_a_permission_for_each_handler():
    routes = org_page_routes()
    names = {p.name for _, p in routes}
    # Every app's pages are found, so a page that moves to another app's urls.py stays checked.
    assert {"members", "teams", "agents", "audit-log", "tokens"} <= names
    problems = []
    for route, pattern in routes:
        view = getattr(pattern.callback, "view_class", None)
        if view is None or not issubclass(view, OrgPageMixin):
            problems.append(f"{route}: {pattern.name} does not use OrgPageMixin")
            continue
        handlers = [m for m in view.http_method_names if m not in ("options", "head") and hasattr(view, m)]
        for method in handlers:
            if not isinstance(view.required.get(method), Perm):
                problems.append(f"{route}: {view.__name__}.{method} declares no permission")
    assert not problems, "\n".join(problems)
