"""The signals endpoint: a downstream service reports what it saw an agent do
(`POST /oauth/<org>/signals`, JSON), authenticated as its connection with its introspection
credentials over HTTP Basic. Errors are RFC 6749 §5.2 JSON, never cached.

A service speaks only of agents that call it: the agent must be of the connection's org and hold
the connection's audience in its grant (trust.services.signal_record keeps that rule and records
its refusals; this view looks the client id up in the connection's org and translates). Any other
is refused alike (the answer does not say whether such an agent exists elsewhere) and the refusal
is on record. Only the four public types are taken: what the product observes itself (failed
authentications, unexpected networks, refused scopes) no connection may report. Nothing the body
says about a score is read: a signal is a type and a severity, which the scorer weighs itself.
"""

import base64
import binascii
import json
from urllib.parse import unquote_plus

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from agents.issuance import OAuthError
from agents.models import Agent, Connection
from agents.oauth import NO_STORE, oauth_error_response
from agents.selectors import connection_for_client
from audit.actors import Actor
from core.credentials import CredentialRefused, credential_check, credential_presented
from core.errors import ServiceError
from core.ratelimit import counters_incr
from core.secrets import secret_hash
from core.tenancy import org_scope_enter
from trust.models import Severity, SignalType
from trust.services import SignalRefused, signal_record, signal_rejected

MAX_CLIENT_ID = 64
DEFAULT_SIGNALS_PER_MINUTE = 600  # per connection; IAM_SIGNALS_PER_MINUTE overrides it


def _error(exc: OAuthError) -> JsonResponse:
    response = oauth_error_response(exc.error, exc.description, exc.status)
    if exc.status == 429:
        response["Retry-After"] = "60"
    return response


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _basic_credentials(request) -> tuple[str, str]:
    """HTTP Basic as RFC 6749 §2.3.1 has it (form-urlencoded parts, then base64)."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header.lower().startswith("basic "):
        raise OAuthError("invalid_client", "Authenticate as the connection with HTTP Basic.", 401)
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError("invalid_client", "Malformed Basic credentials.", 401)
    client_id, sep, secret = decoded.partition(":")
    client_id, secret = unquote_plus(client_id), unquote_plus(secret)
    if "\x00" in client_id or "\x00" in secret:  # malformed, not merely wrong: no column holds one
        raise OAuthError("invalid_request", "Credentials may not contain NUL characters.")
    if not sep:
        raise OAuthError("invalid_client", "Malformed Basic credentials.", 401)
    return client_id, secret


def _refuse(secret: str):
    secret_hash(secret)  # the same work as a real check: timing says nothing about which part failed
    raise OAuthError("invalid_client", "Client authentication failed.", 401)


def _connection(org: str, client_id: str, secret: str) -> Connection:
    """The connection these credentials prove, as introspection checks them: its secret must be
    the one its current lookup id names, live, and match in constant time."""
    presented = credential_presented(secret, Connection.PREFIX)
    if not presented or not client_id or len(client_id) > MAX_CLIENT_ID:
        _refuse(secret)
    ref = connection_for_client(org_slug=org, client_id=client_id)
    if ref is None:
        _refuse(secret)
    try:
        if ref.lookup_id != presented.lookup_id:
            raise CredentialRefused("bad_secret")
        credential_check(ref, presented.secret, timezone.now())
    except CredentialRefused:
        raise OAuthError("invalid_client", "Client authentication failed.", 401)
    org_scope_enter(ref.org)  # the request acts in the authenticated connection's org
    return Connection.objects.for_org(ref.org.pk).select_related("org").get(pk=ref.pk)


def _throttle(connection: Connection) -> None:
    limit = getattr(settings, "IAM_SIGNALS_PER_MINUTE", DEFAULT_SIGNALS_PER_MINUTE)
    try:
        (count,) = counters_incr([f"signals:{connection.pk}"], 60)
    except Exception:
        raise OAuthError("temporarily_unavailable", "Try again shortly.", 503)
    if count > limit:
        raise OAuthError("slow_down", "Too many signals; try again in a minute.", 429)


def _body(request) -> dict:
    if request.content_type != "application/json":
        raise OAuthError("invalid_request", "Send a JSON object (application/json).")
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise OAuthError("invalid_request", "The body is not JSON.")
    if not isinstance(body, dict):
        raise OAuthError("invalid_request", "Send a JSON object.")
    if _has_nul(body):  # no text column can hold one (PostgreSQL refuses)
        raise OAuthError("invalid_request", "Values may not contain NUL characters.")
    if body.get("type") not in SignalType.values:
        raise OAuthError("invalid_request", "type must be one of: " + ", ".join(SignalType.values) + ".")
    if body.get("severity") not in Severity.values:
        raise OAuthError("invalid_request", "severity must be one of: " + ", ".join(Severity.values) + ".")
    if not isinstance(body.get("agent"), str) or not 0 < len(body["agent"]) <= MAX_CLIENT_ID:
        raise OAuthError("invalid_request", "agent must be the agent's client id.")
    return body


NOT_CALLING = "No agent with that client id calls this service."


def _subject(connection: Connection, client_id: str) -> Agent:
    """The agent of the connection's org with this client id; whether the service may speak of it
    is the service's to decide (signal_record)."""
    agent = Agent.objects.for_org(connection.org_id).filter(client_id=client_id).first()
    if agent is None:
        signal_rejected(org=connection.org, connection=connection, reason="unknown_agent",
                        actor=Actor.for_connection(connection))
        raise OAuthError("invalid_request", NOT_CALLING)
    return agent


@csrf_exempt
@require_POST
def signals_endpoint(request, org):
    try:
        if "\x00" in org or b"\x00" in request.body:
            raise OAuthError("invalid_request", "The request may not contain NUL characters.")
        client_id, secret = _basic_credentials(request)
        connection = _connection(org, client_id, secret)
        _throttle(connection)
        body = _body(request)
        agent = _subject(connection, body["agent"])
        signal = signal_record(agent=agent, connection=connection, type=body["type"],
                               severity=body["severity"], actor=Actor.for_connection(connection))
    except RequestDataTooBig:
        return _error(OAuthError("invalid_request", "The request body is too large.", 413))
    except OAuthError as exc:
        return _error(exc)
    except SignalRefused:  # the service recorded why; the answer says no more than for an unknown id
        return _error(OAuthError("invalid_request", NOT_CALLING))
    except ServiceError as exc:
        return _error(OAuthError("invalid_request", exc.detail))
    return JsonResponse({"id": str(signal.pk)}, status=202, headers=NO_STORE)
