"""The verification page of the device authorization grant (RFC 8628 §3.3): `/device/`.

A signed-in person (others are sent to log in and come back) types the user code, or arrives with it
prefilled from `verification_uri_complete`; a code only fills the form, it never approves by
itself (§5.4: an attacker can send anyone a complete URI). The consent page then shows which agent
asks, for which service and which scopes, on behalf of which org, what of that the person can give
(their permissions now ∩ the agent's grant ∩ its owners' power ∩ the service's scopes), when and
from where it asked, and a warning to approve only a request they started themselves (RFC 10027's
cross-device consent phishing). The person approves for a lifetime within the org's policy, or
denies. The code is bound to the session that entered it, so the answer cannot be posted for a
code the person never saw; the org's session policy (MFA mandate and the rest) applies through the
guard, and approving is a change that needs a recent sign-in, like every other.
"""

from django import forms
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from accounts.policy import SESSION_DENIALS
from accounts.reauth import auth_is_fresh, reauth_redirect
from agents import device
from agents.models import DeviceAuthorization
from audit.actors import Actor
from core.errors import ServiceError
from rbac.guard import SessionPolicyDenied, access_for_request
from web.forms import PageForm

SESSION_KEY = "iam_device_authorization"
LIFETIME_CHOICES = [
    (3600, "1 hour"),
    (8 * 3600, "8 hours"),
    (24 * 3600, "1 day"),
    (7 * 24 * 3600, "7 days"),
    (30 * 24 * 3600, "30 days"),
    (90 * 24 * 3600, "90 days"),
]


class UserCodeForm(PageForm):
    user_code = forms.CharField(
        max_length=20,
        label="Code shown by the agent",
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "autocapitalize": "characters", "spellcheck": "false"}
        ),
    )


class ConsentForm(PageForm):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("deny", "Deny")])
    lifetime_seconds = forms.IntegerField(required=False, min_value=300)
    authorization = forms.UUIDField(required=False, widget=forms.HiddenInput)


def _render_code(request, form, status=200, error=None):
    return render(request, "agents/device_code.html", {"form": form, "error": error}, status=status)


def _consent(request, authorization: DeviceAuthorization, access, form=None, status=200):
    offer = device.device_offer(authorization, access.membership)
    choices = [(seconds, label) for seconds, label in LIFETIME_CHOICES if seconds <= offer.max_lifetime]
    if not choices or choices[-1][0] != offer.max_lifetime:
        choices.append((offer.max_lifetime, f"{offer.max_lifetime // 3600} hours (the organization's limit)"))
    default = next((s for s, _ in choices if s == 24 * 3600), choices[0][0])
    return render(
        request,
        "agents/device_consent.html",
        {
            "offer": offer,
            "org": authorization.org,
            "form": form,
            "lifetimes": choices,
            "default_lifetime": default,
        },
        status=status,
    )


def _access(request, authorization, user_code: str = ""):
    """The person's access in the org that asks (None: not a member, which looks like a bad code),
    or a redirect the org's session policy wants first (a second factor, a fresh sign-in), which
    comes back to the code form, filled in."""
    try:
        return access_for_request(request, authorization.org.slug), None
    except SessionPolicyDenied as denied:
        target = reverse(SESSION_DENIALS[denied.reason])
        back = reverse("agents:device") + (f"?{urlencode({'user_code': user_code})}" if user_code else "")
        return None, redirect(f"{target}?{urlencode({'next': back})}")


def _bound(request) -> DeviceAuthorization | None:
    pk = request.session.get(SESSION_KEY)
    if not pk:
        return None
    return (
        DeviceAuthorization.objects.unscoped()  # the id this session entered the code of
        .select_related("org", "agent")
        .filter(pk=pk)
        .first()
    )


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def device_view(request):
    if request.method == "GET":
        return _render_code(
            request, UserCodeForm(initial={"user_code": request.GET.get("user_code", "")[:20]})
        )
    if "decision" in request.POST:
        return _decide(request)
    form = UserCodeForm(request.POST)
    if not form.is_valid():
        return _render_code(request, form, status=400)
    try:
        authorization = device.device_find(form.cleaned_data["user_code"], user=request.user)
    except device.DeviceCodeThrottled:
        return _render_code(
            request, form, status=429, error="Too many codes tried. Wait a few minutes, then try again."
        )
    access = None
    if authorization is not None:
        access, detour = _access(request, authorization, form.cleaned_data["user_code"])
        if detour is not None:
            return detour
    if authorization is not None and access is None:  # a live code of an org this person is not in
        device.user_code_rejected(request.user, "not_member")
    if authorization is None or access is None:
        return _render_code(
            request,
            form,
            status=400,
            error="That code is not valid. Check it, or ask the agent for a new one.",
        )
    request.session[SESSION_KEY] = str(authorization.pk)
    return _consent(request, authorization, access)


def _decide(request):
    authorization = _bound(request)
    form = ConsentForm(request.POST)
    valid = form.is_valid()
    if authorization is None or (
        valid and form.cleaned_data.get("authorization") not in (None, authorization.pk)
    ):
        return _render_code(
            request, UserCodeForm(), status=400, error="Enter the code shown by the agent first."
        )
    access, detour = _access(request, authorization)
    if detour is not None:
        return detour
    if access is None:
        return _render_code(request, UserCodeForm(), status=400, error="That code is not valid.")
    if not valid:  # a lifetime or decision the form cannot take: say so on the consent page
        return _consent(request, authorization, access, form=form, status=400)
    approve = form.cleaned_data["decision"] == "approve"
    if approve and not auth_is_fresh(request):
        return reauth_redirect(request)
    try:
        delegation = device.device_decide(
            authorization=authorization,
            membership=access.membership,
            approve=approve,
            lifetime_seconds=form.cleaned_data.get("lifetime_seconds"),
            actor=Actor.for_user(request.user),
        )
    except ServiceError as exc:
        form.add_error(None, exc.detail)
        if exc.code == "device_code_spent":
            request.session.pop(SESSION_KEY, None)
            return _render_code(request, UserCodeForm(), status=exc.status, error=exc.detail)
        return _consent(request, authorization, access, form=form, status=exc.status)
    request.session.pop(SESSION_KEY, None)
    return render(
        request,
        "agents/device_done.html",
        {
            "approved": approve,
            "delegation": delegation,
            "agent": authorization.agent,
            "org": authorization.org,
        },
    )
