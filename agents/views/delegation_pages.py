"""Page: "Agents acting for me" — every delegation the signed-in person granted, in every org, with
revoke one and revoke all. A person revokes their own delegations whatever their role."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from agents import policies
from agents.delegation import live_delegations
from agents.models import Delegation
from agents.revocation import RevocationUnavailable
from core.errors import ServiceError
from web.forms import PageForm


class DelegationRevokeForm(PageForm):
    delegation = forms.UUIDField(required=False)
    all = forms.BooleanField(required=False)


def _mine(user):
    return (
        Delegation.objects.unscoped()  # the person's own delegations, in every org
        .filter(user=user)
        .select_related("agent", "org")
    )


@never_cache
@login_required
@require_GET
def delegations_view(request):
    rows = list(_mine(request.user).order_by("-created_at")[:200])
    live = {d.pk for d in live_delegations(_mine(request.user))}
    return render(
        request,
        "agents/account_delegations.html",
        {"live": [d for d in rows if d.pk in live], "ended": [d for d in rows if d.pk not in live][:50]},
    )


@never_cache
@login_required
@require_POST
def delegations_revoke_view(request):
    form = DelegationRevokeForm(request.POST)
    if not form.is_valid() or not (form.cleaned_data["all"] or form.cleaned_data["delegation"]):
        messages.error(request, "Choose a delegation to revoke.")
        return redirect("agents:account-delegations")
    mine = live_delegations(_mine(request.user))
    if not form.cleaned_data["all"]:
        mine = mine.filter(pk=form.cleaned_data["delegation"])
    revoked = 0
    try:
        for delegation in mine.order_by("created_at"):
            revoked += policies.delegation_revoke_own(user=request.user, delegation=delegation)
    except ServiceError as exc:
        messages.error(request, exc.detail)
        return redirect("agents:account-delegations")
    except RevocationUnavailable:  # the cutoff could not be written: nothing was revoked
        messages.error(request, "Revoking is unavailable for a moment. Nothing changed; try again shortly.")
        return redirect("agents:account-delegations")
    if revoked:
        messages.success(
            request,
            f"Revoked {revoked} delegation{'s' if revoked != 1 else ''}. "
            "Tokens issued under it stop working on their next use.",
        )
    else:
        messages.error(request, "That delegation has already ended.")
    return redirect("agents:account-delegations")
