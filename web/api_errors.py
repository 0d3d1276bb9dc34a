"""One error shape for the admin API: `{"error": code, "detail": message, "fields"?: {...}}`."""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

from agents.revocation import RevocationUnavailable
from core.errors import ServiceError
from web.error_views import OUTAGE_ERRORS, RETRY_AFTER_SECONDS, TOO_LARGE, UNAVAILABLE

logger = logging.getLogger("iam.api")

_CODES = {
    exceptions.ValidationError: "validation_error",
    exceptions.ParseError: "parse_error",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
}


def _flatten(detail):
    if isinstance(detail, dict):
        return {key: _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten(item) for item in detail]
    return str(detail)


def error_response(code: str, detail: str, status_code: int, fields=None, headers=None) -> Response:
    body = {"error": code, "detail": detail}
    if fields:
        body["fields"] = fields
    return Response(body, status=status_code, headers=headers)


def exception_handler(exc, context):
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):  # Django's limits on the query
        exc = exceptions.ParseError("Too many parameters.")

    if isinstance(exc, RequestDataTooBig):  # over DATA_UPLOAD_MAX_MEMORY_SIZE
        return error_response(TOO_LARGE.code, TOO_LARGE.detail, TOO_LARGE.status)
    if isinstance(exc, RevocationUnavailable):  # the fast store is down: a suspension cannot be sure
        return error_response(UNAVAILABLE.code, UNAVAILABLE.detail, UNAVAILABLE.status,
                              headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    if isinstance(exc, OUTAGE_ERRORS):
        logger.error("database unavailable in %s: %s: %s", context.get("view").__class__.__name__,
                     type(exc).__name__, exc)
        return error_response(UNAVAILABLE.code, UNAVAILABLE.detail, UNAVAILABLE.status,
                              headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    if isinstance(exc, ServiceError):
        return error_response(exc.code, exc.detail, exc.status, fields=exc.fields)

    if isinstance(exc, exceptions.APIException):
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        code = getattr(exc, "error_code", None) or next(
            (c for klass, c in _CODES.items() if isinstance(exc, klass)), "error"
        )
        if isinstance(exc, exceptions.ValidationError):
            fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
            return error_response(code, "Invalid input.", exc.status_code, _flatten(fields), headers)
        return error_response(code, _flatten(exc.detail), exc.status_code, headers=headers)

    # Anything else is a bug: log it with its traceback, show the client no internals.
    logger.exception("unhandled error in %s", context.get("view").__class__.__name__)
    return error_response(
        "server_error", "The server could not complete the request.",
        status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
