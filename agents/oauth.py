"""The OAuth 2.0 authorization server endpoints, one issuer per org (`/oauth/<org>`).

Plain Django views rather than DRF: these are hot paths, their wire formats are fixed by RFCs
(6749 §5.2 errors, 7662, 7009, 8414, 7517), and they authenticate clients themselves.
"""

import base64
import binascii
from functools import wraps
from urllib.parse import unquote_plus, urlencode

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.views.decorators.cache import cache_control
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from agents import delegated, device, exchange, revocation
from agents.delegation import refresh_token_revoke
from agents.introspection import introspect
from agents.issuance import GrantRequest, OAuthError, _uuid_or_none, agent_authenticate, token_grant
from agents.keys import ALGORITHMS, published_keys
from agents.models import RefreshToken, Run, RunStatus
from agents.services import token_revoke
from agents.tokens import TokenInvalid, issuer_for, public_origin, token_verify
from core.models import Organization
from core.ratelimit import counters_incr

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def oauth_error_response(error: str, description: str, status: int = 400, extra: dict | None = None
                         ) -> JsonResponse:
    """An RFC 6749 §5.2 error body, never cached (also used by web.error_views for these paths).
    `extra` members are the additional parameters §5.2 allows (a trust refusal's reasons)."""
    headers = dict(NO_STORE)
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="oauth", charset="UTF-8"'
    body = {**(extra or {}), "error": error, "error_description": description}
    return JsonResponse(body, status=status, headers=headers)


def _error(exc: OAuthError) -> JsonResponse:
    return oauth_error_response(exc.error, exc.description, exc.status, exc.extra)


def _bounded_parameters(view):
    """Read the query and the body before the endpoint does, so that Django's limits on them
    (DATA_UPLOAD_MAX_MEMORY_SIZE, DATA_UPLOAD_MAX_NUMBER_FIELDS) are refused in this surface's
    format rather than as the site's HTML 400."""

    @wraps(view)
    def bounded(request, org):
        try:
            _ = request.GET, request.POST  # parsing them applies the limits
        except RequestDataTooBig:
            return _error(OAuthError("invalid_request", "The request body is too large.", 413))
        except (TooManyFieldsSent, TooManyFilesSent):
            return _error(OAuthError("invalid_request", "Too many parameters."))
        values = [org, *(v for query in (request.GET, request.POST) for vs in query.lists() for v in vs[1])]
        if any("\x00" in value for value in values):  # no text column can hold one (PostgreSQL refuses)
            return _error(OAuthError("invalid_request", "Parameters may not contain NUL characters."))
        return view(request, org)

    return bounded


def _client_credentials(request) -> tuple[str, str]:
    """HTTP Basic (RFC 6749 §2.3.1: form-urlencoded then base64) or the form body, never both."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    form_id, form_secret = request.POST.get("client_id"), request.POST.get("client_secret")
    if header.lower().startswith("basic "):
        if form_secret is not None:
            raise OAuthError("invalid_request", "Use one client authentication method.")
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthError("invalid_client", "Malformed Basic credentials.", 401)
        client_id, sep, secret = decoded.partition(":")
        client_id, secret = unquote_plus(client_id), unquote_plus(secret)
        if not sep or "\x00" in client_id or "\x00" in secret:
            raise OAuthError("invalid_client", "Malformed Basic credentials.", 401)
        return client_id, secret
    if form_id and form_secret:
        return form_id, form_secret
    raise OAuthError("invalid_client", "Client authentication is required.", 401)


def _form_only(request) -> None:
    if request.GET:
        # RFC 6749 §3.2: parameters travel in the body; a secret in a URL ends up in logs.
        raise OAuthError("invalid_request", "Send parameters in the request body, not the URL.")
    if not request.content_type == "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "Use application/x-www-form-urlencoded.")


def _throttle(ip: str, client_id: str) -> None:
    # Per IP, and per client *and* IP: client ids are not secret, so a limit keyed on the id alone
    # would let anyone lock a real agent out with bad requests.
    limits = {f"oauth:ip:{ip}": settings.IAM_TOKEN_IP_LIMIT,
              f"oauth:client:{ip}:{client_id[:64]}": settings.IAM_TOKEN_CLIENT_LIMIT}
    try:
        counts = counters_incr(list(limits), 60)
    except Exception:
        raise OAuthError("temporarily_unavailable", "Try again shortly.", 503)
    if any(count > limit for count, limit in zip(counts, limits.values(), strict=True)):
        raise OAuthError("slow_down", "Too many requests.", 429)


DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
GRANT_TYPES = ["client_credentials", DEVICE_GRANT, "refresh_token", exchange.GRANT_TYPE]


def _param(request, name: str) -> str | None:
    return request.POST.get(name)


@csrf_exempt
@require_POST
@_bounded_parameters
def token_endpoint(request, org):
    try:
        _form_only(request)
        grant_type = request.POST.get("grant_type")
        if grant_type not in GRANT_TYPES:
            raise OAuthError("unsupported_grant_type", "Use one of: " + ", ".join(GRANT_TYPES) + ".")
        client_id, client_secret = _client_credentials(request)
        _throttle(request.audit_context.ip or "unknown", client_id)
        refresh = None
        if grant_type == "client_credentials":
            issued = token_grant(GrantRequest(
                org_slug=org, client_id=client_id, client_secret=client_secret,
                scope=_param(request, "scope"), resource=_param(request, "resource"),
                run_id=_param(request, "run"), origin=request_origin(request),
                may_act=_param(request, "may_act"), ip=request.audit_context.ip,
                agent_version=_param(request, "agent_version"),
            ))
        elif grant_type == exchange.GRANT_TYPE:
            issued = exchange.exchange_grant(exchange.ExchangeRequest(
                org_slug=org, client_id=client_id, client_secret=client_secret,
                subject_token=_param(request, "subject_token"),
                subject_token_type=_param(request, "subject_token_type"),
                actor_token=_param(request, "actor_token"),
                actor_token_type=_param(request, "actor_token_type"),
                resource=_param(request, "resource"), audience=_param(request, "audience"),
                scope=_param(request, "scope"), may_act=_param(request, "may_act"),
                origin=request_origin(request), ip=request.audit_context.ip,
                agent_version=_param(request, "agent_version"),
            ))
        else:
            delegated_request = delegated.DelegatedRequest(
                org_slug=org, client_id=client_id, client_secret=client_secret,
                scope=_param(request, "scope"),
                may_act=_param(request, "may_act"), origin=request_origin(request),
                ip=request.audit_context.ip, agent_version=_param(request, "agent_version"))
            if grant_type == DEVICE_GRANT:
                grant = delegated.device_grant(delegated_request, _param(request, "device_code") or "")
            else:
                grant = delegated.refresh_grant(delegated_request, _param(request, "refresh_token") or "")
            issued, refresh = grant.issued, grant.refresh_token
    except OAuthError as exc:
        response = _error(exc)
        if exc.status == 429:
            response["Retry-After"] = "60"
        return response
    except revocation.RevocationUnavailable:  # a revocation could not be written: nothing issued
        return _error(OAuthError("temporarily_unavailable", "Try again shortly.", 503))
    body = {"access_token": issued.token, "token_type": "Bearer", "expires_in": issued.expires_in,
            "scope": issued.claims["scope"]}
    if grant_type == exchange.GRANT_TYPE:
        body["issued_token_type"] = exchange.ACCESS_TOKEN_TYPE
    if refresh:
        body["refresh_token"] = refresh
    return JsonResponse(body, headers=NO_STORE)


@csrf_exempt
@require_POST
@_bounded_parameters
def device_authorization_endpoint(request, org):
    """RFC 8628 §3.1-3.2: a device code for the agent, a user code for the person."""
    try:
        _form_only(request)
        client_id, client_secret = _client_credentials(request)
        _throttle(request.audit_context.ip or "unknown", client_id)
        context = agent_authenticate(org, client_id, client_secret, _param(request, "resource"))
        started = device.device_start(context, scope=_param(request, "scope"),
                                      resource=_param(request, "resource"),
                                      ip=request.audit_context.ip)
    except OAuthError as exc:
        response = _error(exc)
        if exc.status == 429:
            response["Retry-After"] = "60"
        return response
    verification_uri = f"{public_origin(request_origin(request))}/device/"
    return JsonResponse({
        "device_code": started.device_code,
        "user_code": started.user_code,
        "verification_uri": verification_uri,
        "verification_uri_complete": f"{verification_uri}?{urlencode({'user_code': started.user_code})}",
        "expires_in": device.DEVICE_CODE_TTL,
        "interval": started.authorization.interval,
    }, headers=NO_STORE)


@csrf_exempt
@require_POST
@_bounded_parameters
def introspection_endpoint(request, org):
    """RFC 7662. A connection learns about tokens for its own audience in its own org; anything
    else (another org's token, another audience, revoked, expired, garbage) is just inactive."""
    try:
        _form_only(request)
        client_id, secret = _client_credentials(request)
        claims = introspect(org_slug=org, client_id=client_id, secret=secret,
                            token=request.POST.get("token", "")).claims
    except OAuthError as exc:
        return _error(exc)
    if claims is None:
        return JsonResponse({"active": False}, headers=NO_STORE)
    body = {"active": True, "token_type": "Bearer", **{k: claims[k] for k in (
        "scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti", "org") if k in claims}}
    for optional in ("run", "act", "may_act"):
        if optional in claims:
            body[optional] = claims[optional]
    if "dlg" in claims:
        body["delegation"] = claims["dlg"]
    return JsonResponse(body, headers=NO_STORE)


@csrf_exempt
@require_POST
@_bounded_parameters
def revocation_endpoint(request, org):
    """RFC 7009. An agent revokes its own tokens; an unknown or foreign token still gets 200."""
    try:
        _form_only(request)
        client_id, secret = _client_credentials(request)
        agent = agent_authenticate(org, client_id, secret).agent
    except OAuthError as exc:
        return _error(exc)
    raw = request.POST.get("token", "")
    try:
        if raw.startswith(RefreshToken.PREFIX + "_"):
            refresh_token_revoke(agent=agent, raw=raw)
            return JsonResponse({}, headers=NO_STORE)
        claims = token_verify(raw, org_slug=org)
    except TokenInvalid:
        claims = None
    except revocation.RevocationUnavailable:
        return _error(OAuthError("temporarily_unavailable", "Try again shortly.", 503))
    if claims is not None and claims["client_id"] == agent.client_id:
        try:
            token_revoke(agent=agent, claims=claims)
        except revocation.RevocationUnavailable:
            return _error(OAuthError("temporarily_unavailable", "Try again shortly.", 503))
    return JsonResponse({}, headers=NO_STORE)


@csrf_exempt
@require_GET
def run_state_endpoint(request, org, run_id):
    """The agent reads its run (client authentication, HTTP Basic): `status` and, while it stops
    gracefully, `stop_by`. Another agent's run, or another org's, is a 404 like an unknown one."""
    try:
        client_id, client_secret = _client_credentials(request)
        _throttle(request.audit_context.ip or "unknown", client_id)
        # A suspended or contained agent still learns that its runs have ended (read only).
        context = agent_authenticate(org, client_id, client_secret, inactive_ok=True)
    except OAuthError as exc:
        return _error(exc)
    run = (Run.objects.for_org(context.agent.org.pk)
           .filter(pk=_uuid_or_none(run_id), agent_id=context.agent.pk).first())
    if run is None:
        return JsonResponse({"error": "not_found", "error_description": "No such run of this client."},
                            status=404, headers=NO_STORE)
    status = run.status_at(timezone.now())
    body = {"id": str(run.pk), "status": status}
    if status == RunStatus.STOPPING:
        body["stop_by"] = run.stop_by.isoformat().replace("+00:00", "Z")
    return JsonResponse(body, headers=NO_STORE)


def request_origin(request) -> str:
    """The origin the client used; only honoured where it is one the settings list."""
    return f"{request.scheme}://{request.get_host()}"


@require_GET
@cache_control(max_age=300, public=True)
def metadata(request, org):
    """RFC 8414 authorization server metadata."""
    get_object_or_404(Organization, slug=org)
    issuer = issuer_for(org, request_origin(request))
    return JsonResponse({
        "issuer": issuer,
        "token_endpoint": f"{issuer}/token",
        "jwks_uri": f"{issuer}/jwks.json",
        "introspection_endpoint": f"{issuer}/introspect",
        "revocation_endpoint": f"{issuer}/revoke",
        "device_authorization_endpoint": f"{issuer}/device_authorization",
        "grant_types_supported": GRANT_TYPES,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "response_types_supported": [],
        "scopes_supported": [],
        "token_endpoint_auth_signing_alg_values_supported": list(ALGORITHMS),
    })


@require_GET
@cache_control(max_age=300, public=True)
def jwks(request, org):
    organization = Organization.objects.filter(slug=org).first()
    if organization is None:
        raise Http404
    return JsonResponse({"keys": published_keys(organization)})
