"""Pages: the second-factor challenge at login, and the person's own Security page (enrolling an
authenticator app, recovery codes, removing factors). Rules live in accounts.mfa, accounts.factors
and accounts.passkeys; these views only translate. Passkey JSON endpoints: accounts.views.passkeys.

Every enrollment or removal needs a fresh proof (accounts.reauth): a session left open on a shared
machine must not be enough to add an attacker's authenticator or strip the owner's.
"""

from base64 import b32encode

import qrcode
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods
from qrcode.image.svg import SvgPathImage

from accounts import factors, lockout, login_flow, mfa
from accounts.forms import ReauthForm
from accounts.reauth import reauth_required
from accounts.selectors import orgs_for_user
from accounts.views import passkeys as passkey_views
from accounts.views.login import UNAVAILABLE, landing, safe_next
from accounts.views.passkeys import after_enrollment_url, with_next
from core.errors import ServiceError
from web.pages import confirmed

TOTP_DRAFT_KEY = "iam_totp_draft"  # the unconfirmed device this session is enrolling
KIND_LABELS = {"totp": "authenticator app", "passkey": "passkey", "recovery": "recovery codes"}


@never_cache
@csrf_protect
@require_http_methods(["GET", "HEAD", "POST"])
def mfa_verify_view(request):
    user = login_flow.pending_user(request)
    if user is None:
        return redirect("accounts:login")
    form = ReauthForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            method = mfa.verify_code(user, form.cleaned_data["code"])
        except lockout.LoginUnavailable:
            form.add_error(None, UNAVAILABLE)
            status = 503
        else:
            if method:
                first = login_flow.pending_method(request)
                login_flow.complete_login(request, user, method=first, mfa_method=method)
                return landing(request)
            form.add_error("code", "That code is not valid. Try the current one.")
            status = 401
    next_url = safe_next(request) or ""
    own = factors.factors_for_user(user)
    context = {"form": form, "next": next_url, "has_passkey": bool(own.passkeys),
               "has_code_factor": bool(own.totp or own.recovery),
               "passkey_verify_url": with_next(reverse("accounts:mfa-passkey-verify"), next_url)}
    return render(request, "accounts/mfa_verify.html", context, status=status)


# --- the Security page ---------------------------------------------------------------------------


@never_cache
@login_required
@require_http_methods(["GET", "HEAD"])
def security_view(request):
    return _render_security(request, status=200)


def _render_security(request, status: int, error: str = ""):
    user = request.user
    context = {"factors": factors.factors_for_user(user), "mandating": factors.mfa_mandating_orgs(user),
               "next": safe_next(request) or "", "user_orgs": orgs_for_user(user), "error": error}
    return render(request, "accounts/security.html", context, status=status)


# --- authenticator app -------------------------------------------------------------------------


@never_cache
@login_required
@reauth_required("mfa.enroll_totp")
@require_http_methods(["GET", "HEAD", "POST"])
def totp_enroll_view(request):
    user = request.user
    existing = factors.factors_for_user(user)
    if existing.totp:
        messages.info(request, "An authenticator app is already set up. Remove it first to replace it.")
        return redirect("accounts:mfa-setup")
    device = factors.totp_device_pending(user=user, device_id=request.session.get(TOTP_DRAFT_KEY))
    request.session[TOTP_DRAFT_KEY] = device.pk
    status, error = 200, ""
    if request.method == "POST":
        if factors.totp_device_confirm(user=user, device_id=device.pk, code=request.POST.get("code", "")):
            request.session.pop(TOTP_DRAFT_KEY, None)
            messages.success(request, "Your authenticator app is set up.")
            return redirect(after_enrollment_url(safe_next(request) or "", not existing.primary))
        status, error = 400, "That code did not match. Enter the code your app shows now."
    secret = _base32(device)
    context = {"qr_svg": _qr_svg(device.config_url), "secret": secret, "secret_text": secret.replace(" ", ""),
               "error": error,
               "next": safe_next(request) or "", "user_orgs": orgs_for_user(user)}
    response = render(request, "accounts/mfa_totp.html", context, status=status)
    response["Cache-Control"] = "no-store"  # the page carries the key
    return response


def _qr_svg(data: str) -> str:
    # Drawn here as inline SVG: the key never goes to a third-party QR service or an image URL.
    image = qrcode.make(data, image_factory=SvgPathImage, box_size=8, border=2)
    return image.to_string(encoding="unicode")


def _base32(device) -> str:
    # The same encoding as the otpauth:// URL, grouped in fours for typing it in by hand.
    text = b32encode(device.bin_key).decode()
    return " ".join(text[i:i + 4] for i in range(0, len(text), 4))


# --- recovery codes ----------------------------------------------------------------------------


@never_cache
@login_required
@reauth_required("mfa.recovery_codes")
@require_http_methods(["GET", "HEAD", "POST"])
def recovery_codes_view(request):
    user = request.user
    status, codes, error = 200, None, ""
    own = factors.factors_for_user(user)
    # Replacing codes ends the old ones, so that needs the page's confirmation; a first set does not.
    replacing = bool(own.recovery) and not confirmed(request)
    if request.method == "POST" and not replacing:
        try:
            codes = factors.recovery_codes_generate(user=user)
        except ServiceError as exc:
            status, error = exc.status, exc.detail
        own = factors.factors_for_user(user)
    # The copy button and the download are built from this response only (a data: URL): the codes
    # are never kept anywhere to be fetched again.
    context = {"codes": codes, "codes_text": "".join(f"{code}\n" for code in codes or ()), "error": error,
               "factors": own, "next": safe_next(request) or "", "user_orgs": orgs_for_user(user)}
    response = render(request, "accounts/mfa_recovery_codes.html", context, status=status)
    response["Cache-Control"] = "no-store"  # shown once: no copy may stay in a cache
    return response


# --- removal -----------------------------------------------------------------------------------


@never_cache
@login_required
@reauth_required("mfa.remove")
@require_http_methods(["GET", "HEAD", "POST"])
def factor_remove_view(request, kind: str, pk: int):
    """GET asks for confirmation (it is also where re-authentication returns to); POST removes,
    once confirmed there (a POST without the confirmation is shown the question and changes nothing)."""
    device = factors.factor_for_user(user=request.user, kind=kind, pk=pk)
    if device is None:
        raise Http404("No such factor.")
    if request.method == "POST" and confirmed(request):
        try:
            factors.factor_remove(user=request.user, device=device)
        except ServiceError as exc:
            return _render_security(request, status=exc.status, error=exc.detail)
        messages.success(request, f"Removed {KIND_LABELS[kind]} “{device.name}”.")
        return redirect("accounts:mfa-setup")
    own = factors.factors_for_user(request.user)
    last = kind != "recovery" and not [d for d in own.primary if d != device]
    context = {"device": device, "kind": kind, "label": KIND_LABELS[kind], "last_factor": last,
               "recovery_left": own.recovery_remaining if own.recovery else 0,
               "mandating": factors.mfa_mandating_orgs(request.user) if last else [],
               "user_orgs": orgs_for_user(request.user)}
    return render(request, "accounts/mfa_remove.html", context)


urlpatterns = [
    path("login/mfa/", mfa_verify_view, name="mfa-verify"),
    path("account/security/", security_view, name="mfa-setup"),
    path("account/mfa/totp/", totp_enroll_view, name="mfa-totp"),
    path("account/mfa/recovery-codes/", recovery_codes_view, name="mfa-recovery-codes"),
    path("account/mfa/<str:kind>/<int:pk>/remove/", factor_remove_view, name="mfa-remove"),
    *passkey_views.urlpatterns,
]
