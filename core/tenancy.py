"""Tenancy by construction: the abstract base and manager every org-owned model uses, and the run-time
scope that makes a forgotten org filter an error rather than a leak.

- `Model.objects.for_org(org)` is the normal way in; a test reads the source and fails on any other
  spelling for an org-scoped model (tests/test_tenancy_lint.py).
- `Model.objects.unscoped()` is for the few places that legitimately cross orgs (authentication by
  credential lookup, the guard's membership lookup by slug, system jobs, the audit verifier), spelled
  so that it stands out in review.
- Everything else (related managers such as `membership.custom_roles`, prefetches, child tables
  without an `org` column, a plain `.filter()`) goes through django-scopes' scoped manager: inside an
  org scope it is limited to that org, and outside any scope it raises `ScopeError` (fail closed).
  The guard, the SCIM dispatcher and the OAuth endpoints enter the scope of the org a request acts
  in; `TenancyScopeMiddleware` starts every request with no scope; commands and tasks enter one
  themselves (`org_scope`) or use `unscoped()`.
"""

from contextlib import contextmanager

from django.db import models
from django_scopes import ScopeError, get_scope, scope
from django_scopes.state import state

from core.errors import NotFound


def _org_pk(org):
    return getattr(org, "pk", org)


def current_org_pk():
    """The org the current scope acts in, or None (no scope, or scopes disabled)."""
    current = get_scope()
    return current.get("org") if current.get("_enabled", True) else None


class OrgScopedQuerySet(models.QuerySet):
    """A queryset of org-owned rows. One made outside any org scope is marked fail-closed: building
    on it is allowed, but anything that would run a query raises ScopeError.

    django-scopes' own DisabledQuerySet blocks a list of methods and lets the rest through
    (`exists()`, `contains()`, `explain()` and a chained `.exclude().exists()` read every org), so
    the check is made where Django actually executes, and the library provides only the scope state.
    """

    _fail_closed = False

    def for_org(self, org):
        return self.filter(org=org)

    def _clone(self):
        clone = super()._clone()
        clone._fail_closed = self._fail_closed
        return clone

    def _refuse_unscoped(self):
        if self._fail_closed:
            raise ScopeError(f"{self.model.__name__}: no org scope is active for this query "
                             "(use for_org(), enter the org's scope, or unscoped() for a system job).")

    def none(self):
        clone = super().none()
        clone._fail_closed = False  # an empty result reads nothing
        return clone


def _guarded(name):
    def method(self, *args, **kwargs):
        self._refuse_unscoped()
        return getattr(models.QuerySet, name)(self, *args, **kwargs)
    method.__name__ = name
    return method


# Every way a queryset reaches the database: iteration, len() and slicing go through _fetch_all.
for _name in ("_fetch_all", "count", "exists", "contains", "aggregate", "update", "_update", "delete",
              "_raw_delete", "iterator", "explain", "in_bulk", "get"):
    setattr(OrgScopedQuerySet, _name, _guarded(_name))


class OrgScopedManager(models.Manager.from_queryset(OrgScopedQuerySet)):
    org_path = "org"

    def _all_orgs(self):
        return super().get_queryset()

    def get_queryset(self):
        current = get_scope()
        if not current.get("_enabled", True):  # scopes_disabled(): test code only
            return self._all_orgs()
        if "org" not in current:
            queryset = self._all_orgs()
            queryset._fail_closed = True
            return queryset
        return self._all_orgs().filter(**{self.org_path: current["org"]})

    def for_org(self, org):
        """This org's rows. Inside another org's scope that is a bug, never an empty answer."""
        active = current_org_pk()
        if active is not None and str(active) != str(_org_pk(org)):
            raise ScopeError(f"{self.model.__name__}: asked for another org than the scope's")
        return self._all_orgs().filter(**{self.org_path: _org_pk(org)})

    def unscoped(self):
        """Every org's rows: for credential lookups, system jobs and the audit verifier only."""
        return self._all_orgs()


def org_scoped_manager(path: str = "org", queryset=OrgScopedQuerySet):
    """The manager of a model reached through `path` to its org ("org" for org-owned rows,
    "membership__org" for a child table)."""
    base = OrgScopedManager if queryset is OrgScopedQuerySet else OrgScopedManager.from_queryset(queryset)
    # A class attribute, because related managers are new instances of the manager's class.
    return type(base)(f"OrgScopedManager_{path}", (base,), {"org_path": path})()


class OrgScopedModel(models.Model):
    org = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="+")

    objects = org_scoped_manager()

    class Meta:
        abstract = True


@contextmanager
def org_scope(org):
    """Act in one org: scoped queries are limited to it (commands, tasks, streamed responses)."""
    with scope(org=_org_pk(org)):
        yield


def org_scope_enter(org) -> None:
    """Enter the org's scope for the rest of the current request (the guard, SCIM, OAuth endpoints);
    TenancyScopeMiddleware restores the state the request started with."""
    state.set({**get_scope(), "_enabled": True, "org": _org_pk(org)})


class TenancyScopeMiddleware:
    """Every request starts with no org scope, whatever the thread held before, so a query that no
    guard scoped raises instead of reading every org."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = state.set({"_enabled": True})
        try:
            return self.get_response(request)
        finally:
            state.reset(token)


def assert_same_org(org, *objects, audit=None) -> None:
    """Every object given to a service belongs to the org it acts in. Another org's object is
    refused exactly like an id that does not exist (NotFound), wherever the service was called from.
    `None` is skipped (an optional argument not given). `audit(obj)` makes the refusal's audit entry
    (audit.services.cross_tenant: the caller knows who asked)."""
    for obj in objects:
        if obj is not None and obj.org_id != org.pk:
            raise NotFound(f"{type(obj).__name__} not found.", audit=audit(obj) if audit else None)
