"""Every SCIM request's way in: bearer token → org (scim.tokens), the guard against token guessing
(per address and presented token id), the per-token request limit, the org's scope, then the
resource handler. Every failure leaves as an RFC 7644 §3.12 error body, and a refused write is
audited once, after its transaction has rolled back: first the refusal's own entry when the
service named one (another org's id, the org's last owner), then `scim.request_rejected` with the
status the IdP was given."""

import json
import logging

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt

from audit.events import AuditEvent, Outcome
from audit.services import audit_record
from core.errors import OUTAGE_ERRORS, RETRY_AFTER_SECONDS, ServiceError
from core.ratelimit import counters_incr
from core.tenancy import org_scope_enter
from scim.ids import uuid_or_none
from scim.protocol.errors import CONTENT_TYPE, ScimError, bad_request, from_service_error, not_found
from scim.protocol.resources import etag, if_match_accepts
from scim.protocol.text import is_text
from scim.tokens import actor_for, scim_token_authenticate, scim_token_presented_id

logger = logging.getLogger(__name__)
MAX_BODY = 1024 * 1024  # also the ServiceProviderConfig's bulk.maxPayloadSize
# The deepest SCIM body we read is a PATCH of a complex value inside an operation (about 6 levels).
MAX_DEPTH = 32
WRITES = ("POST", "PUT", "PATCH", "DELETE")


def scim_json(status: int, body: dict, *, version: int | None = None,
              location: str | None = None) -> HttpResponse:
    response = HttpResponse(json.dumps(body), status=status, content_type=CONTENT_TYPE)
    if version is not None:
        response["ETag"] = etag(version)
    if location:
        response["Location"] = location
    return response


class Call:
    """One authenticated SCIM request."""

    def __init__(self, request, token):
        self.request, self.token, self.org, self.actor = request, token, token.org, actor_for(token)

    def body(self) -> dict:
        return json_body(self.request)

    @property
    def accepts(self):
        """The request's If-Match, as the predicate the services check versions with (None: none)."""
        return if_match_accepts(self.request.headers.get("If-Match"))

    def method_not_allowed(self) -> ScimError:
        return ScimError(405, f"{self.request.method} is not supported here.")


def json_body(request) -> dict:
    """The request's JSON object. Its size is judged by Content-Length before anything is read (and
    Django's own DATA_UPLOAD_MAX_MEMORY_SIZE refusal is the same 413); a body nested deeper than
    MAX_DEPTH, or holding text that is not Unicode (a lone surrogate, which JSON's \\u escapes can
    spell but neither database can store), is refused before any handler sees it."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_BODY:
        raise ScimError(413, "The request body is too large.")
    try:
        raw = request.body
    except RequestDataTooBig:
        raise ScimError(413, "The request body is too large.")
    if len(raw) > MAX_BODY:
        raise ScimError(413, "The request body is too large.")
    try:
        data = json.loads(raw or b"null")
    except RecursionError:  # the decoder's own guard, at the interpreter's recursion limit
        raise ScimError(400, "The body is nested too deeply.", "invalidSyntax")
    except (ValueError, UnicodeDecodeError):
        raise ScimError(400, "The body is not valid JSON.", "invalidSyntax")
    if not isinstance(data, dict):
        raise ScimError(400, "The body must be a JSON object.", "invalidSyntax")
    _check_shape(data)
    return data


def _check_shape(data) -> None:
    """Walk the parsed body without recursion: nothing deeper than MAX_DEPTH (far less than what
    the decoder allows, and what every later reader may then assume), every key and string text."""
    pending = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise ScimError(400, "The body is nested too deeply.", "invalidSyntax")
        if isinstance(value, dict):
            for key, item in value.items():
                if not is_text(key):
                    raise bad_request("The body holds text that is not valid Unicode.")
                pending.append((item, depth + 1))
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)
        elif isinstance(value, str) and not is_text(value):
            raise bad_request("The body holds text that is not valid Unicode.")


def _bearer(request) -> str:
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    return raw.strip() if scheme.lower() == "bearer" else ""


def _failures_key(request, lookup_id: str | None) -> str:
    """Failures count per client address and presented token id, a malformed credential in one
    bucket of its own per address. IdPs send every customer's traffic from a few shared addresses,
    so a count per address alone would let one tenant's bad token stall everyone's provisioning."""
    ip = getattr(getattr(request, "audit_context", None), "ip", None) or "unknown"
    return f"scim:authfail:{ip}:{lookup_id or '-'}"


def _authenticate(request):
    """The request's token, or a 401; a 429 once its address and token id have failed too often.

    A valid token is never refused for failures, its own id's included: a lookup id is no secret
    (token lists show it), so anyone sending from an IdP's shared address could otherwise stall the
    IdP holding it. Once the bucket is over the limit, a malformed credential is refused without a
    lookup, and a token-shaped one is still checked (one indexed read and an HMAC) but its refusal
    is a 429 and no longer audited, so a guesser can neither fill the org's log nor learn anything
    the 256-bit secret would not already keep from them.
    """
    raw = _bearer(request)
    lookup_id = scim_token_presented_id(raw)
    key = _failures_key(request, lookup_id)
    try:
        locked = (cache.get(key) or 0) >= settings.IAM_SCIM_AUTH_FAILURE_LIMIT
    except Exception:
        raise ScimError(503, "Try again shortly.")
    token = None
    if raw and (lookup_id is not None or not locked):
        token = scim_token_authenticate(raw, audit_refusal=not locked)
    if token is not None:
        return token
    try:
        (failures,) = counters_incr([key], 60)
    except Exception:  # uncounted guesses would be unlimited ones: fail closed
        logger.warning("could not count a failed SCIM authentication", exc_info=True)
        raise ScimError(503, "Try again shortly.")
    if failures > settings.IAM_SCIM_AUTH_FAILURE_LIMIT:
        raise ScimError(429, "Too many failed authentications.")
    raise ScimError(401, "A SCIM bearer token is required." if not raw else "The bearer token is not valid.")


def _throttle(token_key: str) -> None:
    try:
        (count,) = counters_incr([f"scim:token:{token_key}"], 60)
    except Exception:
        raise ScimError(503, "Try again shortly.")
    if count > settings.IAM_SCIM_RATE_LIMIT:
        raise ScimError(429, "Too many requests.")


def _record_refusal(call: Call, error: ScimError, denial) -> None:
    if denial is not None:
        audit_record(org=denial.org, actor=denial.actor, event=denial.event, outcome=Outcome.DENIED,
                     target=denial.target, data=denial.data)
    if call.request.method in WRITES and error.status in (400, 409, 412, 413):
        audit_record(org=call.org, actor=call.actor, event=AuditEvent.SCIM_REQUEST_REJECTED,
                     outcome=Outcome.DENIED,
                     data={"method": call.request.method, "resource": call.request.path[:200],
                           "status": error.status, "scim_type": error.scim_type, "detail": error.detail})


def scim_view(handler):
    """Authentication, throttling, the org's scope, error bodies, and the audit of refused writes."""

    @csrf_exempt
    def view(request, **kwargs):
        call = None
        try:
            token = _authenticate(request)
            _throttle(token.lookup_id)
            org_scope_enter(token.org)  # the token alone decides the org this request acts in
            call = Call(request, token)
            return handler(call, **kwargs)
        except (ScimError, ServiceError) as exc:
            error = exc if isinstance(exc, ScimError) else from_service_error(exc)
            if call is not None:
                _record_refusal(call, error, getattr(exc, "audit", None))
            response = error.response()
            if error.status in (429, 503):
                response["Retry-After"] = "60"
            return response
        except OUTAGE_ERRORS:  # the database went away: the IdP retries later
            logger.warning("SCIM request failed: database unavailable", exc_info=True)
            response = ScimError(503, "The service is temporarily unavailable. Try again shortly.").response()
            response["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return response
        except Exception:
            logger.exception("SCIM request failed")
            return ScimError(500, "The server could not complete the request.").response()

    return view


def resource_id(pk: str, resource: str):
    """Ids are UUIDs; anything else is as missing as an unknown one."""
    parsed = uuid_or_none(pk)
    if parsed is None:
        raise not_found(resource)
    return parsed


def resource_query(call) -> tuple:
    return call.request.GET.get("attributes"), call.request.GET.get("excludedAttributes")


def read_one(call, model, pk, resource: str, respond) -> HttpResponse:
    found = model.objects.for_org(call.org).filter(pk=pk).first()
    if found is None:
        raise not_found(resource)
    if call.request.headers.get("If-None-Match") == etag(found.version):
        return HttpResponse(status=304)
    return respond(call, found)
