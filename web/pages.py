"""The one mixin every owner-facing org page inherits, and the page-side helpers it relies on.

`OrgPageMixin.dispatch` resolves the caller's `Access` for the URL's org before any handler runs:
anonymous callers go to the login page, a non-member (or a member of another org) gets 404, and
the HTTP method's declared permission is checked, so a handler never sees a request it may not
serve. A method with no declaration is refused (403), never allowed. Views ask `self.access.has(...)`
to show or hide controls; they never compute permissions.
"""

import logging

from django.contrib.auth.views import redirect_to_login
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode

from accounts.policy import SESSION_DENIALS
from accounts.reauth import auth_is_fresh, reauth_needed, reauth_redirect
from accounts.selectors import orgs_for_user
from audit.events import AuditEvent, Outcome
from audit.services import audit_record
from core.permissions import Perm
from rbac.guard import SessionPolicyDenied, access_for_request

logger = logging.getLogger("iam.guard")


class OrgPageMixin:
    """`required` maps each HTTP method (lower case) to the catalogue Perm it needs."""

    required: dict[str, Perm] = {}
    # Every change (POST, ...) from a browser session needs a fresh re-authentication
    # (accounts.reauth, the same rule as the API's); these read methods do too.
    reauth_reads: tuple[str, ...] = ()
    forbidden_template = "pages/forbidden.html"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for method, perm in cls.required.items():
            if not isinstance(perm, Perm):
                raise TypeError(f"{cls.__name__}.required[{method!r}] must be a Perm, not {perm!r}")

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        try:
            access = access_for_request(request, kwargs.get("org", ""))
        except SessionPolicyDenied as denied:
            # The org's policy wants a fresh login, a second factor, or a new password first.
            target = reverse(SESSION_DENIALS[denied.reason])
            return redirect(f"{target}?{urlencode({'next': request.get_full_path()})}")
        if access is None:
            raise Http404("No such organization.")
        self.access = access
        self.org = access.org
        perm = self.required_permission(request.method)
        if perm is None:
            logger.error("%s declares no permission for %s", type(self).__name__, request.method)
            return self.forbidden(None)
        if not access.has(perm):
            return self.forbidden(perm)
        method = request.method.lower()
        if reauth_needed(method, method, self.reauth_reads) and not auth_is_fresh(request):
            return reauth_redirect(request)
        return super().dispatch(request, *args, **kwargs)

    def required_permission(self, method: str) -> Perm | None:
        method = method.lower()
        # HEAD is served by the GET handler, so it needs what GET needs.
        return self.required.get("get" if method == "head" else method)

    def forbidden(self, perm: Perm | None):
        if perm is not None:
            audit_record(
                org=self.org, actor=self.access.actor, event=AuditEvent.PERMISSION_DENIED,
                outcome=Outcome.DENIED,
                data={"reason": "missing_permission", "required": perm.value,
                      "action": f"{type(self).__name__}.{self.request.method.lower()}"},
            )
        context = {"org": self.org, "access": self.access, "perm": perm,
                   "user_orgs": orgs_for_user(self.request.user)}
        return render(self.request, self.forbidden_template, context, status=403)

    def scoped(self, model, **lookup):
        """One object of this org (another org's id is a 404, like an unknown one)."""
        return get_object_or_404(model.objects.for_org(self.org), **lookup)

    def page_context(self, **extra) -> dict:
        # `can.member_write` etc.: the template asks the Access, it never works permissions out.
        can = {perm.name.lower(): self.access.has(perm) for perm in Perm}
        context = {"org": self.org, "access": self.access, "can": can,
                   "user_orgs": orgs_for_user(self.request.user)}
        context.update(extra)
        return context

    def render_page(self, template: str, status: int = 200, **extra):
        return render(self.request, template, self.page_context(**extra), status=status)


CONFIRM_FIELD = "confirm"


def confirmed(request) -> bool:
    """Whether the POST came from a confirmation page's button (`confirm=yes`): every destructive
    page action asks first, and a POST without it only shows the question."""
    return request.POST.get(CONFIRM_FIELD) == "yes"


def form_apply_service_error(form, exc) -> None:
    """Show a ServiceError on the form: per-field messages where the form has that field."""
    placed = False
    for name, messages in (exc.fields or {}).items():
        if name in form.fields:
            form.add_error(name, list(messages))
            placed = True
    if not placed:
        form.add_error(None, exc.detail)
