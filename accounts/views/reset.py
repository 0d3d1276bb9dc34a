"""Pages: "forgot your password" (request a link) and the link's own page (choose a new password).
The rules live in accounts.reset; these views only translate.

The mailed link carries the secret in its path, so it is opened once and left at once: its GET keeps
the link's hash (`token_hash`, never the secret, which the database must not hold) in the session
and redirects to `password/reset/new/`, whose address holds nothing secret. That page may then use
`Referrer-Policy: same-origin`: its form's POST carries a real `Origin` (under `no-referrer` Chromium
sends `Origin: null`, which Django's CSRF check rightly refuses), and no other site ever receives a
referrer from it. The link's own responses stay `no-referrer`, so the secret is never handed on.
"""

from django import forms
from django.contrib import messages
from django.contrib.auth import logout
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods

from accounts import reset
from accounts.passwords import PASSWORD_MAX_LENGTH
from audit.actors import Actor
from audit.events import AuditEvent, Outcome
from audit.services import audit_record
from core.errors import ServiceError
from web.forms import PageForm
from web.pages import form_apply_service_error

UNAVAILABLE = "Password reset is temporarily unavailable. Please try again in a minute."
THROTTLED = "Too many reset requests from your network. Wait a while before trying again."


class ResetRequestForm(PageForm):
    email = forms.EmailField(max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"}))


class ResetConfirmForm(PageForm):
    # No max_length on the field: an over-long password reaches the policy validator, which says why.
    new_password = forms.CharField(
        strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )
    new_password_again = forms.CharField(
        strip=False, label="New password, again",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self):
        data = super().clean()
        first, second = data.get("new_password"), data.get("new_password_again")
        if first and len(first) > PASSWORD_MAX_LENGTH:
            self.add_error("new_password", "That password is too long.")
        elif first and second and first != second:
            self.add_error("new_password_again", "The two passwords differ.")
        return data


RESET_LINK_KEY = "iam_reset_link"  # the opened link's token_hash, while its form is being filled in


def _no_referrer(response):
    # The address holds the link's secret: never hand it on to another page, even on our own origin.
    response["Referrer-Policy"] = "no-referrer"
    return response


def _same_origin(response):
    # No secret in this address. A referrer (and with it a real Origin) goes to our own pages only.
    response["Referrer-Policy"] = "same-origin"
    return response


@never_cache
@csrf_protect
@require_http_methods(["GET", "HEAD", "POST"])
def reset_request_view(request):
    form = ResetRequestForm(request.POST or None)
    if request.method != "POST" or not form.is_valid():
        status = 400 if request.method == "POST" else 200
        return render(request, "accounts/reset_request.html", {"form": form}, status=status)
    try:
        outcome = reset.reset_request(email=form.cleaned_data["email"], ip=request.audit_context.ip)
    except reset.ResetUnavailable:
        audit_record(org=None, actor=Actor.anonymous(), event=AuditEvent.LOGIN_UNAVAILABLE,
                     outcome=Outcome.FAILURE, data={"reason": "reset_store_unreachable"})
        form.add_error(None, UNAVAILABLE)
        return render(request, "accounts/reset_request.html", {"form": form}, status=503)
    if outcome.status == "ip_throttled":
        form.add_error(None, THROTTLED)
        response = render(request, "accounts/reset_request.html", {"form": form}, status=429)
        response["Retry-After"] = str(outcome.retry_after)
        return response
    # The same page whether or not the address has an account, and whether or not a mail went out.
    return render(request, "accounts/reset_sent.html", {"ttl_minutes": reset.ttl_seconds() // 60})


def _invalid_link(request, referrer_policy=_no_referrer, rejected=None):
    request.session.pop(RESET_LINK_KEY, None)
    context = {"sso_required": rejected is not None and rejected.code == "sso_required",
               "detail": rejected.detail if rejected is not None else ""}
    return referrer_policy(render(request, "accounts/reset_invalid.html", context, status=400))


@never_cache
@require_http_methods(["GET", "HEAD"])
def reset_link_view(request, token: str):
    """The mailed link: checked, kept in the session by its hash, and left for the form page."""
    digest = reset.token_hash(token)
    try:
        reset.reset_token_check(digest=digest)
    except reset.ResetRejected as rejected:
        return _invalid_link(request, rejected=rejected)
    request.session[RESET_LINK_KEY] = digest
    return _no_referrer(redirect("accounts:password-reset-confirm"))


@never_cache
@csrf_protect
@require_http_methods(["GET", "HEAD", "POST"])
def reset_confirm_view(request):
    digest = request.session.get(RESET_LINK_KEY, "")
    if not digest:  # no link was opened in this browser: nothing was presented, nothing to audit
        return _invalid_link(request, _same_origin)
    if request.method != "POST":
        try:
            reset.reset_token_check(digest=digest)
        except reset.ResetRejected as rejected:
            return _invalid_link(request, _same_origin, rejected)
        return _same_origin(render(request, "accounts/reset_confirm.html", {"form": ResetConfirmForm()}))
    form = ResetConfirmForm(request.POST)
    status = 400
    if form.is_valid():
        try:
            reset.reset_complete(digest=digest, new_password=form.cleaned_data["new_password"])
        except reset.ResetRejected as rejected:
            return _invalid_link(request, _same_origin, rejected)
        except ServiceError as exc:  # the policy refused the password; the link stays usable
            form_apply_service_error(form, exc)
            status = exc.status
        else:
            if request.user.is_authenticated:
                logout(request)  # its session row is already gone; drop the cookie too
            request.session.pop(RESET_LINK_KEY, None)
            # Not logged in on purpose: the next login asks for the second factor as usual.
            messages.success(request, "Your password has been changed. Sign in with the new one.")
            return redirect("accounts:login")
    return _same_origin(render(request, "accounts/reset_confirm.html", {"form": form}, status=status))


urlpatterns = [
    path("password/reset/", reset_request_view, name="password-reset"),
    # Before the link's route: "new" is never a token (they are 43 characters).
    path("password/reset/new/", reset_confirm_view, name="password-reset-confirm"),
    path("password/reset/<str:token>/", reset_link_view, name="password-reset-link"),
]
