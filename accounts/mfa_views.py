"""Pages: the second-factor challenge at login (TOTP or a recovery code)."""

from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods

from accounts import lockout, login_flow, mfa
from accounts.forms import ReauthForm
from accounts.login_views import UNAVAILABLE, landing, safe_next


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
                login_flow.complete_login(request, user, method="password", mfa_method=method)
                return landing(request)
            form.add_error("code", "That code is not valid. Try the current one.")
            status = 401
    return render(request, "accounts/mfa_verify.html", {"form": form, "next": safe_next(request) or ""},
                  status=status)


urlpatterns = [
    path("login/mfa/", mfa_verify_view, name="mfa-verify"),
]
