"""OIDC pages: the login redirect to the provider, the callback it sends the person back to, and
the back-channel logout endpoint the provider POSTs to. The protocol is in `sso.oidc`."""

import secrets

from django.http import HttpResponseRedirect, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from audit.actors import Actor
from audit.events import AuditEvent, Outcome
from audit.services import Target, audit_record
from sso import oidc, signin


def login_start(request, connection, *, next_url: str = "", test: bool = False, reauth: bool = False):
    """A new flow (state, nonce, sealed PKCE verifier) and the redirect to the provider."""
    oidc.authorization_endpoint(connection)  # refused before any flow starts if not discovered yet
    nonce = secrets.token_urlsafe(32)
    verifier, challenge = oidc.pkce_pair()
    flow, state = signin.flow_start(
        request,
        connection,
        next_url=next_url,
        test=test,
        reauth=reauth,
        nonce=nonce,
        verifier_sealed=oidc.verifier_seal(connection, nonce, verifier),
    )
    location = oidc.authorization_url(
        connection,
        state=state,
        nonce=nonce,
        code_challenge=challenge,
        login_hint=request.GET.get("login_hint", ""),
        reauth=reauth,
    )
    return HttpResponseRedirect(location)


@never_cache
@require_GET
def login_view(request, org, connection):
    connection = signin.connection_for(org, connection, "oidc")
    try:
        return login_start(request, connection, next_url=request.GET.get("next", ""))
    except signin.SsoRefused as exc:
        return signin.refuse(request, connection, exc)


@never_cache
@require_GET
def callback_view(request, org, connection):
    connection = signin.connection_for(org, connection, "oidc")
    try:
        return _callback(request, connection)
    except signin.SsoRefused as exc:
        return signin.refuse(request, connection, exc)


def _callback(request, connection):
    params = request.GET
    flow = signin.flow_take(request, connection, params.get("state", ""))
    oidc.response_issuer_check(connection, params.get("iss"))
    if "error" in params:
        raise signin.SsoRefused(
            "idp_error",
            detail="Your identity provider did not sign you in. Start again from the sign-in page.",
        )
    code = params.get("code", "")
    if not code or len(code) > 2000:
        raise signin.SsoRefused(
            "code_missing",
            detail="The identity provider's answer had no code. Start again from the sign-in page.",
        )
    verifier = oidc.verifier_unseal(connection, flow)
    tokens = oidc.token_exchange(connection, code=code, verifier=verifier)
    id_claims = oidc.id_token_verify(connection, tokens["id_token"], nonce=flow.nonce)
    access_token = tokens.get("access_token") if isinstance(tokens.get("access_token"), str) else ""
    userinfo = oidc.userinfo_fetch(connection, access_token, id_claims["sub"])
    assertion = oidc.assertion_from(connection, id_claims, userinfo)
    return signin.sign_in(request, connection, flow, assertion)


@csrf_exempt
@never_cache
@require_POST
def backchannel_logout_view(request, org, connection):
    connection = signin.connection_for(org, connection, "oidc", disabled_too=True)
    try:
        claims = oidc.logout_token_verify(connection, request.POST.get("logout_token"))
    except oidc.LogoutRefused as exc:
        audit_record(
            org=connection.org,
            actor=Actor.anonymous(),
            event=AuditEvent.SSO_LOGOUT,
            outcome=Outcome.DENIED,
            target=Target.of(connection),
            data={"connection": connection.slug, "sessions": 0, "reason": exc.reason},
        )
        return JsonResponse(
            {"error": "invalid_request", "error_description": "The logout token was not accepted."},
            status=400,
        )
    ended = signin.idp_sessions_end(
        connection, subject=claims.get("sub") or "", idp_session=claims.get("sid") or ""
    )
    return JsonResponse({"sessions_ended": ended}, status=200)
