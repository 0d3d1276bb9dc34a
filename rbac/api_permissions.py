"""DRF permission classes. Kept apart from the base views: DRF imports the default permission
class while `rest_framework.views` is still loading."""

import logging

from rest_framework import exceptions, permissions

from audit.events import AuditEvent, Outcome
from audit.services import audit_record
from rbac.guard import access_for_request

logger = logging.getLogger("iam.guard")


class DenyAll(permissions.BasePermission):
    """The default for any API view that declares nothing: it allows nothing."""

    def has_permission(self, request, view) -> bool:
        return False


class OrgAccessPermission(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False  # DRF answers 401 with WWW-Authenticate
        access = access_for_request(request, view.kwargs.get("org", ""))
        if access is None:
            raise exceptions.NotFound()
        request.access = access
        method = request.method.lower()
        if method not in view.http_method_names or getattr(view, method, None) is None:
            raise exceptions.MethodNotAllowed(request.method)
        perm = view.required_permission()
        if perm is None:
            logger.error("%s declares no permission for %r", type(view).__name__, view.action_name())
            raise exceptions.PermissionDenied("This action is not available.")
        if not access.has(perm):
            audit_record(
                org=access.org, actor=access.actor, event=AuditEvent.PERMISSION_DENIED,
                outcome=Outcome.DENIED,
                data={"reason": "missing_permission", "required": perm.value,
                      "action": f"{type(view).__name__}.{view.action_name()}"},
            )
            raise exceptions.PermissionDenied(f"This needs the {perm.value} permission.")
        return True
