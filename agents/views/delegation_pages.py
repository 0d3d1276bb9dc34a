"""Pages: "Agents acting for me" — every delegation the signed-in person granted, in every org, with
revoke one and revoke all (a person revokes their own delegations whatever their role), each asked
for first with what it ends (a POST without `confirm=yes` answers the question and changes nothing);
and the org's delegations list for its admins (search, filters, paging)."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from accounts.selectors import orgs_for_user
from agents import policies
from agents.api import DelegationViewSet
from agents.delegation import live_delegations
from agents.forms import agent_lookup
from agents.models import Agent, Delegation, DelegationStatus, RefreshToken
from agents.revocation import RevocationUnavailable
from agents.views import BadFilter, choice_filter, confirmed, text_filter
from audit.events import AuditEvent
from audit.models import AuditEntry
from core.credentials import credential_live_q
from core.errors import ServiceError
from core.permissions import Perm
from web.forms import PageForm
from web.pages import OrgPageMixin
from web.paging import list_page


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
        {"live": [d for d in rows if d.pk in live], "ended": [d for d in rows if d.pk not in live][:50],
         "user_orgs": orgs_for_user(request.user)},
    )


def _own_consequences(delegations) -> dict:
    """What revoking these of the person's own delegations ends, in every org they were granted in:
    the refresh tokens still usable under them, and the tokens issued under them so far (token.issued
    entries naming them). Two queries, whatever the number."""
    now = timezone.now()
    ids = [d.pk for d in delegations]
    refresh = (RefreshToken.objects.unscoped()  # under the person's own delegations, in every org
               .filter(credential_live_q(now), delegation_id__in=ids, spent_at__isnull=True).count())
    issued = (AuditEntry.objects.unscoped()  # the tokens their agents got under them, in every org
              .filter(event_code=AuditEvent.TOKEN_ISSUED.code, actor_type="agent",
                      actor_id__in={str(d.agent_id) for d in delegations},
                      data__delegation__in=[str(pk) for pk in ids]).count())
    return {"refresh_tokens": refresh, "tokens_issued": issued}


def _confirm_revoke(request, delegations, *, everything: bool):
    context = {"delegations": delegations, "everything": everything, "user_orgs": orgs_for_user(request.user),
               **_own_consequences(delegations)}
    return render(request, "agents/account_delegation_revoke.html", context)


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
    if not confirmed(request):
        asked = list(mine.order_by("created_at"))
        if not asked:
            messages.error(request, "That delegation has already ended.")
            return redirect("agents:account-delegations")
        return _confirm_revoke(request, asked, everything=form.cleaned_data["all"])
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


# The org's delegations page ---------------------------------------------------------------------

DELEGATION_STATES = ("live", "ended")


class DelegationListView(OrgPageMixin, View):
    """Every delegation in the org, as the API lists them (DelegationViewSet's ordering and search),
    filtered by state (live, ended) and agent. Revoking one is asked for on its confirmation page."""

    required = {"get": Perm.AGENT_READ}
    template = "agents/delegations.html"

    def get(self, request, org):
        status, filter_error, shown = 200, "", {}
        rows = Delegation.objects.for_org(self.org).select_related("agent")
        try:
            state = choice_filter(request, "state", DELEGATION_STATES)
            if state:
                live = live_delegations(rows).values("pk")
                rows = rows.filter(pk__in=live) if state == "live" else rows.exclude(pk__in=live)
                shown["state"] = state
            agent_text = text_filter(request, "agent", 100)
            if agent_text:
                agent = agent_lookup(Agent.objects.for_org(self.org), agent_text)
                if agent is None:
                    raise BadFilter(f"No agent of this organization is named {agent_text}.")
                rows = rows.filter(agent=agent)
                shown.update(agent=agent_text, agent_name=agent.name)
        except BadFilter as bad:
            rows, status, filter_error, shown = rows.none(), 400, str(bad), {}
        page = list_page(request, rows, ordering=DelegationViewSet.list_ordering,
                         search_fields=DelegationViewSet.search_fields)
        now = timezone.now()
        for d in page.rows:
            d.live_now = d.status == DelegationStatus.ACTIVE and d.expires_at > now
        return self.render_page(self.template, status=status, page=page, delegations=page.rows,
                                filters=shown, filter_error=filter_error, states=DELEGATION_STATES)
