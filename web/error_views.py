"""Site-wide error responses, each in the format of the surface the request came to:

- the admin API (`/api/`): `{"error": code, "detail": message}`;
- the OAuth endpoints (`/oauth/`, their RFC 8414 metadata): RFC 6749 §5.2
  `{"error", "error_description"}`, never cached;
- SCIM (`/scim/v2`): the RFC 7644 §3.12 Error schema;
- everything else: an HTML page.

Django calls these handlers for what escapes a view or a middleware: an unknown route, a body over
DATA_UPLOAD_MAX_MEMORY_SIZE, a crash. A lost database (`OUTAGE_ERRORS`) is a 503 with Retry-After
whichever way it escapes (web.outage for views, `server_error` for middleware). None ever includes a
traceback or internal detail (DEBUG is off in production).
"""

import json
import logging
import sys
from dataclasses import dataclass

from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string

from agents.oauth import oauth_error_response
from core.errors import OUTAGE_ERRORS, RETRY_AFTER_SECONDS  # noqa: F401 (re-exported)

logger = logging.getLogger("iam.errors")

SCIM_ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


@dataclass(frozen=True)
class SiteError:
    status: int
    code: str  # the admin API's `error`
    oauth_code: str  # RFC 6749's `error`
    detail: str
    template: str


BAD_REQUEST = SiteError(400, "bad_request", "invalid_request", "Bad request.", "errors/400.html")
NOT_FOUND = SiteError(404, "not_found", "invalid_request", "Not found.", "errors/404.html")
TOO_LARGE = SiteError(413, "request_too_large", "invalid_request", "The request body is too large.",
                      "errors/400.html")
SERVER_ERROR = SiteError(500, "server_error", "server_error", "The server could not complete the request.",
                         "errors/500.html")
UNAVAILABLE = SiteError(503, "unavailable", "temporarily_unavailable",
                        "The service is temporarily unavailable. Try again shortly.", "errors/503.html")


def surface(request) -> str:
    path = request.path
    if path.startswith("/api/"):
        return "api"
    if path.startswith("/scim/v2"):
        return "scim"
    if path.startswith(("/oauth/", "/.well-known/oauth-authorization-server/", "/authzen/",
                        "/.well-known/authzen-configuration/")):
        return "oauth"  # AuthZEN's errors take the same JSON shape
    return "page"


def error_response(request, error: SiteError, headers: dict | None = None) -> HttpResponse:
    kind = surface(request)
    if kind == "api":
        response = JsonResponse({"error": error.code, "detail": error.detail}, status=error.status)
    elif kind == "oauth":
        response = oauth_error_response(error.oauth_code, error.detail, error.status)
    elif kind == "scim":
        body = {"schemas": [SCIM_ERROR_SCHEMA], "status": str(error.status), "detail": error.detail}
        response = HttpResponse(json.dumps(body), status=error.status, content_type="application/scim+json")
    else:
        # No request context: the page must render without the session, the user or the database.
        response = HttpResponse(render_to_string(error.template), status=error.status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def unavailable(request, exc: BaseException) -> HttpResponse:
    logger.error("database unavailable for %s %s: %s: %s", request.method, request.path,
                 type(exc).__name__, exc)
    return error_response(request, UNAVAILABLE, {"Retry-After": str(RETRY_AFTER_SECONDS)})


def not_found(request, exception=None):
    return error_response(request, NOT_FOUND)


def server_error(request):
    # Django calls this while handling the exception, so it is still the one in flight.
    exc = sys.exc_info()[1]
    if isinstance(exc, OUTAGE_ERRORS):
        return unavailable(request, exc)
    return error_response(request, SERVER_ERROR)


def bad_request(request, exception=None):
    return error_response(request, TOO_LARGE if isinstance(exception, RequestDataTooBig) else BAD_REQUEST)
