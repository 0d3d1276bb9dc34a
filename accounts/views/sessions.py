"""Page: "Your sessions" — every place the signed-in person is signed in, and ending them.

Signing out a session (or all the others) is asked for first: the buttons post without
`confirm=yes`, which answers the question of what ends and changes nothing; only the question's own
button carries the confirmation."""

from django import forms
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from accounts import services, user_sessions
from accounts.login_flow import session_label
from accounts.selectors import orgs_for_user
from audit.actors import Actor
from audit.events import AuditEvent, Outcome
from audit.services import Target, audit_record
from core.errors import ServiceError
from web.forms import PageForm
from web.pages import confirmed


class SessionRevokeForm(PageForm):
    session = forms.RegexField(regex=r"^[0-9a-f]{12}$")  # a session_label, never a session key


def _rows(request):
    return user_sessions.session_list_for_user(user=request.user, current_key=request.session.session_key)


def _page(request, status=200):
    rows = _rows(request)
    context = {"rows": rows, "others": sum(not r.current for r in rows),
               "user_orgs": orgs_for_user(request.user)}
    return render(request, "accounts/sessions.html", context, status=status)


def _confirm(request, *, row=None, others=()):
    """The question: which session ends (or which others), and what that means."""
    context = {"row": row, "other_rows": list(others), "user_orgs": orgs_for_user(request.user)}
    return render(request, "accounts/session_revoke.html", context)


@never_cache
@login_required
@require_GET
def sessions_view(request):
    return _page(request)


@never_cache
@login_required
@require_POST
def session_revoke_view(request):
    form = SessionRevokeForm(request.POST)
    actor = Actor.for_user(request.user)
    if not form.is_valid():
        audit_record(org=None, actor=actor, event=AuditEvent.SESSION_REVOKED, outcome=Outcome.DENIED,
                     target=Target.of(request.user), data={"reason": "malformed"})
        messages.error(request, "That session could not be found.")
        return _page(request, status=400)
    label = form.cleaned_data["session"]
    if not confirmed(request):
        row = next((r for r in _rows(request) if r.label == label), None)
        if row is None:
            messages.error(request, "That session could not be found. It may already have ended.")
            return _page(request, status=404)
        return _confirm(request, row=row)
    try:
        user_sessions.session_revoke_one(user=request.user, label=label, actor=actor)
    except ServiceError as exc:
        messages.error(request, "That session could not be found. It may already have ended.")
        return _page(request, status=exc.status)
    if label == session_label(request.session.session_key):
        logout(request)  # the caller ended the session they are using
        return redirect("accounts:login")
    messages.success(request, "The session was signed out.")
    return redirect("accounts:sessions")


@never_cache
@login_required
@require_POST
def sessions_revoke_others_view(request):
    if not confirmed(request):
        others = [r for r in _rows(request) if not r.current]
        if not others:
            messages.info(request, "You have no other sessions.")
            return redirect("accounts:sessions")
        return _confirm(request, others=others)
    count = services.sessions_revoke(user=request.user, reason="user_signed_out_others",
                                     except_key=request.session.session_key)
    messages.success(request, f"Signed out {count} other session{'s' if count != 1 else ''}.")
    return redirect("accounts:sessions")


urlpatterns = [
    path("account/sessions/", sessions_view, name="sessions"),
    path("account/sessions/revoke/", session_revoke_view, name="session-revoke"),
    path("account/sessions/revoke-others/", sessions_revoke_others_view, name="sessions-revoke-others"),
]
