"""The re-authentication gate ("sudo") for changes.

Inside a valid session, every change to an org (any POST, PUT, PATCH or DELETE to its pages or its
admin API) and the few reads that hand out a whole org's data (the access-review export) need a
password or second factor proven within `IAM_REAUTH_WINDOW_SECONDS` (default 10 minutes). One rule,
`reauth_needed`, decides for both surfaces, so a page and its API can never disagree. Pages send a
stale session to `/reauth/`; the API answers 403 `reauth_required`. API keys and agents are not
sessions: the gate does not apply to them (no interactive proof is possible).
"""

import functools
import time

from django.conf import settings
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode

from accounts.policy import AUTH_TIME_KEY
from audit.actors import Actor
from audit.events import AuditEvent, Outcome
from audit.services import audit_record

REAUTH_URL_NAME = "accounts:reauth"
CHANGING_METHODS = frozenset({"post", "put", "patch", "delete"})


def reauth_needed(method: str, name: str, sensitive_reads=frozenset()) -> bool:
    """Whether a request needs a fresh proof: every change, and the reads a view names as sensitive
    (`name` is the API action or the page's HTTP method, looked up in the view's `reauth_reads`)."""
    return method.lower() in CHANGING_METHODS or name in sensitive_reads


def auth_is_fresh(request) -> bool:
    proven = request.session.get(AUTH_TIME_KEY)
    return bool(proven) and time.time() - proven <= settings.IAM_REAUTH_WINDOW_SECONDS


RESUME_KEY = "iam_reauth_resume"
RESUME_MAX_CHARS = 20_000
_NOT_KEPT = ("csrfmiddlewaretoken",)
_SECRET_WORDS = ("password", "secret", "code", "token")


def reauth_redirect(request):
    """Send a stale session to prove itself. A form it was submitting is kept in the session (its
    fields, never a password, secret or code, nor the CSRF token) so that the re-authentication page
    can offer to submit it again instead of losing it."""
    target = request.get_full_path()
    if request.method == "POST":
        fields = [(name, value) for name, values in request.POST.lists() for value in values
                  if name not in _NOT_KEPT and not any(word in name.lower() for word in _SECRET_WORDS)]
        if sum(len(n) + len(v) for n, v in fields) <= RESUME_MAX_CHARS:
            request.session[RESUME_KEY] = {"path": target, "fields": fields, "at": time.time()}
    return redirect(f"{reverse(REAUTH_URL_NAME)}?{urlencode({'next': target})}")


def reauth_resume_take(request, path: str | None) -> list | None:
    """The kept form for `path` (once; None when there is none, or it is older than the window)."""
    kept = request.session.pop(RESUME_KEY, None)
    if not kept or not path or kept.get("path") != path:
        return None
    if time.time() - kept.get("at", 0) > settings.IAM_REAUTH_WINDOW_SECONDS:
        return None
    return kept["fields"]


def reauth_record_refusal(request, action: str) -> None:
    audit_record(org=None, actor=Actor.for_user(request.user), event=AuditEvent.REAUTH_REQUIRED,
                 outcome=Outcome.DENIED, data={"action": action})


def reauth_required(action: str):
    """For function views: a stale session is sent to prove itself again first (audited)."""

    def decorate(view):
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            if not auth_is_fresh(request):
                reauth_record_refusal(request, action)
                return reauth_redirect(request)
            return view(request, *args, **kwargs)

        return wrapper

    return decorate
