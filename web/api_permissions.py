"""DRF permission classes. Kept apart from the base views: DRF imports the default permission
class while `rest_framework.views` is still loading."""

import logging

from rest_framework import exceptions, permissions

from accounts.reauth import auth_is_fresh, reauth_needed
from audit.events import AuditEvent, Outcome
from audit.services import audit_record
from rbac.guard import SessionPolicyDenied, access_for_request

logger = logging.getLogger("iam.guard")


class SessionRefused(exceptions.APIException):
    """The org's policy refuses this session now: log in again (401) or complete a step (403)."""

    def __init__(self, reason: str):
        expired = reason in ("session_expired", "session_idle", "session_revoked")
        self.status_code = 401 if expired else 403
        super().__init__(detail=_SESSION_MESSAGES[reason], code=reason)
        self.error_code = reason
        if expired:
            self.auth_header = 'Bearer realm="api"'  # RFC 7235: a 401 names a scheme


_SESSION_MESSAGES = {
    "session_revoked": "An administrator ended your sessions in this organization. Sign in again.",
    "session_expired": "Your session is older than this organization allows. Sign in again.",
    "session_idle": "Your session was idle longer than this organization allows. Sign in again.",
    "mfa_required": "This organization requires two-step verification for this session.",
    "mfa_enrollment_required": "This organization requires two-step verification. Set it up first.",
    "password_change_required": "Your password is older than this organization allows. Change it.",
    "sso_required": "This organization requires a session its single sign-on started. Sign in through it.",
}


class DenyAll(permissions.BasePermission):
    """The default for any API view that declares nothing: it allows nothing."""

    def has_permission(self, request, view) -> bool:
        return False


class OrgAccessPermission(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False  # DRF answers 401 with WWW-Authenticate
        try:
            access = access_for_request(request, view.kwargs.get("org", ""))
        except SessionPolicyDenied as denied:
            raise SessionRefused(denied.reason)
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
        # API keys and agents carry no interactive proof: re-authentication is for people in
        # browser sessions.
        if (access.interactive and reauth_needed(request.method, view.action_name(), view.reauth_reads)
                and not auth_is_fresh(request)):
            audit_record(org=access.org, actor=access.actor, event=AuditEvent.REAUTH_REQUIRED,
                         outcome=Outcome.DENIED,
                         data={"action": f"{type(view).__name__}.{view.action_name()}"})
            raise ReauthRequired()
        return True


class ReauthRequired(exceptions.PermissionDenied):
    default_detail = "Confirm your password (or a second factor) again at /reauth/, then retry."
    error_code = "reauth_required"
