"""Pages: the invitation link's own page (accept, setting a first password if needed, or decline),
and the signed-in banner's accept and decline buttons. The rules live in accounts.invitations."""

from django import forms
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods, require_POST

from accounts import invitations
from accounts.models import Membership
from accounts.passwords import PASSWORD_MAX_LENGTH
from core.errors import ServiceError
from rbac import policies
from web.forms import PageForm
from web.pages import form_apply_service_error


class InvitationAcceptForm(PageForm):
    """The password fields appear only when accepting must set the account's first password."""

    new_password = forms.CharField(
        strip=False, required=False, label="Choose a password",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    new_password_again = forms.CharField(
        strip=False, required=False, label="The password, again",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, *args, needs_password: bool, **kwargs):
        super().__init__(*args, **kwargs)
        if not needs_password:
            del self.fields["new_password"], self.fields["new_password_again"]

    def clean(self):
        data = super().clean()
        if "new_password" not in self.fields:
            return data
        first, second = data.get("new_password"), data.get("new_password_again")
        if not first:
            self.add_error("new_password", "Choose a password for your account.")
        elif len(first) > PASSWORD_MAX_LENGTH:
            self.add_error("new_password", "That password is too long.")
        elif first != second:
            self.add_error("new_password_again", "The two passwords differ.")
        return data


def _private(response):
    # The link's secret is in the URL: no other origin may see it in a Referer. Same-origin (not
    # no-referrer) so that the browser still sends an Origin with the form, as CSRF checks need.
    response["Referrer-Policy"] = "same-origin"
    response["Cache-Control"] = "no-store"
    return response


def _invalid_link(request):
    return _private(render(request, "accounts/invitation_invalid.html", status=400))


@never_cache
@csrf_protect
@require_http_methods(["GET", "HEAD", "POST"])
def invitation_view(request, token: str):
    try:
        invitation = invitations.invitation_check(raw=token)
    except invitations.InvitationRejected:
        return _invalid_link(request)
    needs_password = invitations.needs_password(invitation)
    form = InvitationAcceptForm(request.POST or None, needs_password=needs_password)
    status = 200
    if request.method == "POST":
        decision = request.POST.get("decision")
        org = invitation.membership.org
        if decision == "decline":
            try:
                invitations.invitation_decline_link(raw=token)
            except invitations.InvitationRejected:
                return _invalid_link(request)
            messages.success(request, f"You declined the invitation to {org.name}.")
            return redirect("accounts:login")
        status = 400
        if decision == "accept" and form.is_valid():
            try:
                membership = policies.invitation_accept(raw=token,
                                                           new_password=form.cleaned_data.get("new_password"))
            except invitations.InvitationRejected:
                return _invalid_link(request)
            except ServiceError as exc:  # the policy refused the password; the link stays usable
                form_apply_service_error(form, exc)
                status = exc.status
            else:
                return _accepted(request, membership, password_set=needs_password)
    context = {"invitation": invitation, "org": None, "invited_org": invitation.membership.org,
               "form": form, "needs_password": needs_password}
    return _private(render(request, "accounts/invitation.html", context, status=status))


def _accepted(request, membership, *, password_set: bool):
    org = membership.org
    if request.user.is_authenticated and request.user.pk == membership.user_id and not password_set:
        messages.success(request, f"You joined {org.name}.")
        return redirect("accounts:members", org=org.slug)
    if request.user.is_authenticated:
        logout(request)  # signed in as someone else, or the new password ended this session
    messages.success(request, f"You joined {org.name}. Sign in to continue.")
    return redirect("accounts:login")


def _own_invitation(request, pk) -> Membership:
    membership = invitations.invitation_of(request.user, pk)
    if membership is None:
        raise Http404("No such invitation.")
    return membership


@login_required
@require_POST
def invitation_answer_view(request, pk, decision: str):
    """The banner's buttons: accept or decline an invitation to the signed-in account."""
    membership = _own_invitation(request, pk)
    org = membership.org
    try:
        if decision == "accept":
            policies.invitation_accept_signed_in(user=request.user, membership=membership)
            messages.success(request, f"You joined {org.name}.")
            return redirect("accounts:members", org=org.slug)
        invitations.invitation_decline(user=request.user, membership=membership)
        messages.success(request, f"You declined the invitation to {org.name}.")
    except ServiceError as exc:
        messages.error(request, exc.detail)
    return redirect("accounts:home")


urlpatterns = [
    path("invitation/<str:token>/", invitation_view, name="invitation"),
    path("invitations/<uuid:pk>/accept/", invitation_answer_view, {"decision": "accept"},
         name="invitation-accept"),
    path("invitations/<uuid:pk>/decline/", invitation_answer_view, {"decision": "decline"},
         name="invitation-decline"),
]
