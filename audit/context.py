"""Request context for audit entries: client IP (trusted proxies only), user agent, correlation id.

One middleware (`audit.middleware`) sets it per request; `audit_record` reads it, so services never
need the request object. Celery tasks and commands run with an empty context.
"""

import ipaddress
import re
import uuid
from contextvars import ContextVar
from dataclasses import dataclass

from django.conf import settings

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


@dataclass(frozen=True)
class RequestContext:
    ip: str | None = None
    user_agent: str = ""
    correlation_id: str = ""


EMPTY_CONTEXT = RequestContext()
current_context: ContextVar[RequestContext] = ContextVar("audit_request_context", default=EMPTY_CONTEXT)


def _parse_ip(value: str):
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def _is_trusted(ip) -> bool:
    return any(ip in network for network in settings.IAM_TRUSTED_PROXIES)


def client_ip(request) -> str | None:
    """The peer address, or, when the peer is a trusted proxy, the nearest untrusted hop in
    X-Forwarded-For. A client can put anything in that header, so it counts only behind our proxies.
    """
    peer = _parse_ip(request.META.get("REMOTE_ADDR", ""))
    if peer is None:
        return None
    if not _is_trusted(peer):
        return str(peer)
    hops = [h for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    for hop in reversed(hops):
        ip = _parse_ip(hop)
        if ip is None:
            break
        if not _is_trusted(ip):
            return str(ip)
    return str(peer)


def correlation_id(request) -> str:
    """A well-formed incoming X-Request-ID is kept, so one id follows a call across services."""
    incoming = request.META.get("HTTP_X_REQUEST_ID", "")
    return incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex


def context_from_request(request) -> RequestContext:
    return RequestContext(
        ip=client_ip(request),
        # NUL cannot be stored in a PostgreSQL text column (the audit entry, the session's device).
        user_agent=request.META.get("HTTP_USER_AGENT", "").replace("\x00", "")[:512],
        correlation_id=correlation_id(request),
    )
