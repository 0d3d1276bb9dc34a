"""Pages: sign in, sign out, re-authentication and password change. The rules live in
accounts.login_flow, accounts.lockout and the services; these views only translate."""

import time

from django.contrib import messages
from django.contrib.auth import logout, update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods, require_POST

from accounts import lockout, login_flow, services
from accounts.forms import LOGIN_ERROR, LoginForm, PasswordChangeForm, ReauthForm
from accounts.reauth import reauth_resume_take
from accounts.selectors import orgs_for_user
from audit.actors import Actor
from audit.events import AuditEvent, Outcome
from audit.services import audit_record
from core.errors import ServiceError
from web.pages import form_apply_service_error

UNAVAILABLE = "Sign-in is temporarily unavailable. Please try again in a minute."
SSO_REQUIRED = "Your organization signs you in through its identity provider. Continue with single sign-on."


def safe_next(request) -> str | None:
    target = request.POST.get("next") or request.GET.get("next")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return None


def landing(request):
    """Where a signed-in user goes: `next`, else their first org's overview, else the no-org page."""
    target = safe_next(request)
    if target:
        return redirect(target)
    orgs = orgs_for_user(request.user)
    return redirect("console:overview", org=orgs[0].slug) if orgs else redirect("accounts:home")


def _render_login(request, form, status, retry_after=None, error=None, sso_url=None):
    if error:
        form.add_error(None, error)
    context = {"form": form, "next": safe_next(request) or "", "sso_url": sso_url}
    response = render(request, "accounts/login.html", context, status=status)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


@never_cache
@csrf_protect
@require_http_methods(["GET", "HEAD", "POST"])
def login_view(request):
    if request.method != "POST":
        if request.user.is_authenticated:
            return landing(request)
        return _render_login(request, LoginForm(), 200)
    form = LoginForm(request.POST)
    email, password = request.POST.get("email", ""), request.POST.get("password", "")
    if email and not password:
        return _home_realm(request, form, email)
    try:
        outcome = login_flow.password_login(request, email=email, password=password)
    except lockout.LoginUnavailable:
        audit_record(org=None, actor=Actor.anonymous(), event=AuditEvent.LOGIN_UNAVAILABLE,
                     outcome=Outcome.FAILURE, data={"reason": "lockout_store_unreachable"})
        return _render_login(request, form, 503, error=UNAVAILABLE)
    if outcome.status == "mfa":
        return redirect(_with_next("accounts:mfa-verify", request))
    if outcome.status == "complete":
        if outcome.password_change_due:
            return redirect(_with_next("accounts:password-change", request))
        return landing(request)
    if outcome.reason == "sso_required":
        return _render_login(request, form, 403, error=SSO_REQUIRED, sso_url=_realm_url(request, email))
    if outcome.http_status == 429:
        error = "Too many attempts. Wait a moment before trying again."
        return _render_login(request, form, 429, retry_after=outcome.retry_after, error=error)
    # One message for every other failure: the page never says which part was wrong.
    return _render_login(request, form, outcome.http_status, error=LOGIN_ERROR)


def _realm_url(request, email: str) -> str | None:
    """Where the person's identity provider signs them in (login_flow.HOME_REALM), with `next`."""
    url = login_flow.home_realm(email)
    target = safe_next(request)
    return url + (f"?{urlencode({'next': target})}" if url and target else "") if url else None


def _home_realm(request, form, email: str):
    """An email alone: a person at an org's verified SSO domain goes to that org's IdP; anyone else
    is asked for their password (the same page whether or not the account exists)."""
    url = _realm_url(request, email)
    if url:
        return redirect(url)
    form = LoginForm({"email": email[:254]})
    form.is_valid()
    return _render_login(request, form, 200, error="Enter your password.")


@never_cache
@login_required
@require_http_methods(["GET", "HEAD"])
def sso_required_view(request):
    """A signed-in person's session may not act in an org that requires its SSO: say so, and
    offer that org's sign-in."""
    target = safe_next(request) or ""
    org_slug = target.split("/")[2] if target.startswith("/orgs/") and target.count("/") >= 3 else ""
    sso_url = login_flow.org_sign_in(org_slug) if org_slug else None
    if sso_url and target:
        sso_url += f"?{urlencode({'next': target})}"
    sso_url = sso_url or _realm_url(request, request.user.email)
    return render(request, "accounts/sso_required.html",
                  {"sso_url": sso_url, "user_orgs": orgs_for_user(request.user)})


def _with_next(url_name: str, request) -> str:
    target = safe_next(request)
    return reverse(url_name) + (f"?{urlencode({'next': target})}" if target else "")


@require_POST
def logout_view(request):
    if request.user.is_authenticated:
        services.logout_record(user=request.user)
    logout(request)
    return redirect("accounts:login")


@never_cache
@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def reauth_view(request):
    """Prove the password (or a second factor) again; issues a new session key on success."""
    form = ReauthForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            method = login_flow.reauthenticate(request, password=form.cleaned_data["password"],
                                               code=form.cleaned_data["code"])
        except lockout.LoginUnavailable:
            form.add_error(None, UNAVAILABLE)
            status = 503
        else:
            if method:
                target = safe_next(request)
                kept = reauth_resume_take(request, target)
                if kept is not None:  # the form that sent the person here, ready to submit again
                    context = {"action": target, "fields": kept, "user_orgs": orgs_for_user(request.user)}
                    return render(request, "accounts/reauth_resume.html", context)
                return landing(request)
            form.add_error(None, "That did not match. Try again.")
            status = 401
    next_url = safe_next(request) or ""
    context = {"form": form, "next": next_url, "user_orgs": orgs_for_user(request.user),
               "sso_url": login_flow.reauth_at_idp(request, next_url)}
    return render(request, "accounts/reauth.html", context, status=status)


@never_cache
@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def password_change_view(request):
    """The current password is checked like a login password (accounts.login_flow.password_recheck):
    a wrong one counts towards the account's lockout and back-off, over them the answer is 429 with
    Retry-After, and every refusal is audited. A stolen session cannot guess its way to a new password."""
    form = PasswordChangeForm(request.POST or None)
    status, retry_after = 200, None
    if request.method == "POST" and form.is_valid():
        try:
            status, retry_after = _password_change(request, form)
        except lockout.LoginUnavailable:
            form.add_error(None, UNAVAILABLE)
            status = 503
        if status == 302:
            messages.success(request, "Your password has been changed. Other sessions were ended.")
            return landing(request)
    context = {"form": form, "next": safe_next(request) or "", "user_orgs": orgs_for_user(request.user),
               "expired": login_flow.password_change_due(request.user)}
    response = render(request, "accounts/password_change.html", context, status=status)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


def _password_change(request, form) -> tuple[int, int | None]:
    """(status, retry_after): 302 once the password is changed, else the form carries the error."""
    user = request.user
    check = login_flow.password_recheck(user, form.cleaned_data["current_password"])
    if not check.ok:
        audit_record(org=None, actor=Actor.for_user(user), event=AuditEvent.REAUTH_FAILED,
                     outcome=Outcome.FAILURE, data={"method": "password", "reason": check.reason})
        if check.reason == "mismatch":
            form.add_error("current_password", "That is not your current password.")
            return 400, None
        form.add_error(None, "Too many attempts. Wait a moment before trying again.")
        return 429, check.retry_after
    lockout.clear(user.email)  # proved, as a completed login would
    try:
        services.password_set(user=user, new_password=form.cleaned_data["new_password"],
                              reason="changed", keep_session_key=request.session.session_key)
    except ServiceError as exc:
        form_apply_service_error(form, exc)
        return exc.status, None
    update_session_auth_hash(request, user)  # keep this session, new key
    request.session[login_flow.AUTH_TIME_KEY] = time.time()
    return 302, None
