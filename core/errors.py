"""Errors that services raise and every protocol layer translates into its own error format.

A service raises one of these with a stable `code`; the admin API renders
`{"error": code, "detail": ..., "fields"?: ...}`, pages render form errors, SCIM and OAuth use their
own formats. When `audit` is set, `audit.services.records_denials` appends that entry after the
service's transaction has rolled back, so a refused change leaves a trace and nothing else.
"""

from dataclasses import dataclass, field

from django.db import InterfaceError, OperationalError

# The database is unreachable or dropped the connection (a restart, a failover, a network cut):
# every surface answers 503 with Retry-After, in its own error format.
OUTAGE_ERRORS = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True)
class DenialAudit:
    org: object
    actor: object
    event: object
    target: object = None
    data: dict = field(default_factory=dict)


class ServiceError(Exception):
    status = 400
    code = "invalid"

    def __init__(self, detail: str, *, code: str | None = None, fields: dict | None = None,
                 audit: DenialAudit | None = None):
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.code
        self.fields = fields
        self.audit = audit


class Invalid(ServiceError):
    status = 400
    code = "validation_error"


class Forbidden(ServiceError):
    status = 403
    code = "permission_denied"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class PreconditionFailed(ServiceError):
    status = 412
    code = "precondition_failed"
