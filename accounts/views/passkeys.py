"""Passkey pages and the JSON endpoints static/js/webauthn.js talks to.

The endpoints are POST-only and CSRF-protected (the script sends the page's token in X-CSRFToken), so
another site can neither start a ceremony in the victim's session nor read its options. Errors
are `{"error": code, "detail": ...}` like the admin API. Rules live in accounts.passkeys.
"""

import json

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods, require_POST

from accounts import factors, lockout, login_flow, passkeys
from accounts.reauth import auth_is_fresh, reauth_record_refusal, reauth_required
from accounts.selectors import orgs_for_user
from accounts.views.login import UNAVAILABLE, landing, safe_next

REJECTED = "That passkey could not be verified. Try again, or use a code instead."


def _error(code: str, detail: str, status: int) -> JsonResponse:
    return JsonResponse({"error": code, "detail": detail}, status=status)


def _options(options_json: str) -> JsonResponse:
    return JsonResponse(json.loads(options_json), headers={"Cache-Control": "no-store"})


def _body(request) -> dict:
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def with_next(url: str, next_url: str) -> str:
    return f"{url}?{urlencode({'next': next_url})}" if next_url else url


def after_enrollment_url(next_url: str, was_first: bool) -> str:
    """The first factor leads on to recovery codes; later ones back to where the person came from."""
    if was_first:
        return with_next(reverse("accounts:mfa-recovery-codes"), next_url)
    return next_url or reverse("accounts:mfa-setup")


def _enrollment_refusal(request) -> JsonResponse | None:
    """Adding a passkey needs a signed-in session that proved itself recently (accounts.reauth)."""
    if not request.user.is_authenticated:
        return _error("not_authenticated", "Sign in first.", 401)
    if not auth_is_fresh(request):
        reauth_record_refusal(request, "mfa.enroll_webauthn")
        return _error("reauth_required", "Confirm it's you again before adding a passkey.", 403)
    return None


# --- registration (signed in, fresh proof) -----------------------------------------------------


@never_cache
@login_required
@reauth_required("mfa.enroll_webauthn")
@require_http_methods(["GET", "HEAD"])
def passkey_enroll_view(request):
    context = {"next": safe_next(request) or "", "user_orgs": orgs_for_user(request.user)}
    return render(request, "accounts/mfa_passkey.html", context)


@csrf_protect
@require_POST
def passkey_register_options(request):
    refusal = _enrollment_refusal(request)
    if refusal:
        return refusal
    return _options(passkeys.registration_options(session=request.session, user=request.user))


@csrf_protect
@require_POST
def passkey_register_verify(request):
    refusal = _enrollment_refusal(request)
    if refusal:
        return refusal
    body = _body(request)
    was_first = not factors.factors_for_user(request.user).primary
    try:
        passkeys.registration_verify(session=request.session, user=request.user,
                                     credential=body.get("credential"), name=str(body.get("name") or ""))
    except passkeys.PasskeyRejected as exc:
        return _error("passkey_rejected", f"The passkey was not added ({exc.reason}).", 400)
    return JsonResponse({"redirect": after_enrollment_url(safe_next(request) or "", was_first)})


# --- assertion (the second factor at login) ----------------------------------------------------


@never_cache
@csrf_protect
@require_POST
def passkey_login_options(request):
    user = login_flow.pending_user(request)
    if user is None:
        return _error("no_pending_login", "Sign in with your password first.", 401)
    if not passkeys.has_passkey(user):
        return _error("no_passkey", "You have no passkey; use a code instead.", 400)
    return _options(passkeys.authentication_options(session=request.session, user=user))


@never_cache
@csrf_protect
@require_POST
def passkey_login_verify(request):
    user = login_flow.pending_user(request)
    if user is None:
        return _error("no_pending_login", "Sign in with your password first.", 401)
    body = _body(request)
    if "clientError" in body:
        passkeys.authentication_abandoned(session=request.session, user=user, error=str(body["clientError"]))
        return _error("passkey_cancelled", "The passkey was not used. Try again, or use a code instead.", 400)
    try:
        passkeys.authentication_verify(session=request.session, user=user, credential=body.get("credential"))
    except lockout.LoginUnavailable:
        return _error("unavailable", UNAVAILABLE, 503)
    except passkeys.PasskeyRejected:
        # One message whatever the reason (the audit log has it): no oracle for an attacker.
        return _error("passkey_rejected", REJECTED, 401)
    login_flow.complete_login(request, user, method=login_flow.pending_method(request), mfa_method="webauthn")
    return JsonResponse({"redirect": landing(request)["Location"]})


urlpatterns = [
    path("account/mfa/passkey/", passkey_enroll_view, name="mfa-passkey"),
    path("account/mfa/passkey/options/", passkey_register_options, name="mfa-passkey-register-options"),
    path("account/mfa/passkey/verify/", passkey_register_verify, name="mfa-passkey-register-verify"),
    path("login/mfa/passkey/options/", passkey_login_options, name="mfa-passkey-options"),
    path("login/mfa/passkey/verify/", passkey_login_verify, name="mfa-passkey-verify"),
]
