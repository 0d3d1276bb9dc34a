"""Secrets that pages show once, after a redirect (POST, redirect, GET).

A page that mints a secret (an API key, an agent's or a connection's client secret, a SCIM token)
does not render it in the POST's response: a refresh of that page would post the form again and mint
a second credential. The POST keeps the new secret in the session instead and answers 303 to a GET
that names it by a random handle (`?shown=<handle>`); that GET takes it out of the session and shows
it, with `Cache-Control: no-store`. The same address again (a refresh, the back button) finds
nothing, says so, and mints nothing.

Sessions are rows in the database, so the secret is sealed there (AES-256-GCM under
`IAM_ENCRYPTION_KEYS`, bound to the person, the org, the kind and the handle: core.secrets.seal),
kept for at most SHOWN_ONCE_SECONDS and only for the MAX_PENDING newest; a copy of the database
alone yields none of them.
"""

import secrets
import time
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from django.http import HttpResponseRedirect
from django.utils.http import urlencode

from core.secrets import seal, unseal

SESSION_KEY = "iam_shown_once"
HANDLE_PARAM = "shown"
SHOWN_ONCE_SECONDS = 300
MAX_PENDING = 5
MAX_HANDLE = 64


@dataclass(frozen=True)
class Shown:
    """What a GET with a handle finds: the secret and the ids the POST named, or `secret` None when
    it was already shown (or never kept in this session, or kept too long ago)."""

    kind: str | None
    secret: str | None
    refs: dict = field(default_factory=dict)


def _context(request, org, kind: str, handle: str) -> str:
    return f"shown-once:{request.user.pk}:{org.pk}:{kind}:{handle}"


def secret_hold(request, *, org, kind: str, secret: str, **refs) -> str:
    """Keep `secret` in the session for one showing; returns the handle to redirect with. `refs`
    (ids, never secrets) come back with it."""
    handle = secrets.token_urlsafe(16)
    now = time.time()
    pending = {h: e for h, e in request.session.get(SESSION_KEY, {}).items()
               if now - e["at"] < SHOWN_ONCE_SECONDS}
    pending[handle] = {"kind": kind, "org": str(org.pk), "at": now,
                       "refs": {name: str(value) for name, value in refs.items()},
                       "sealed": seal(secret.encode(), context=_context(request, org, kind, handle))}
    newest = sorted(pending.items(), key=lambda item: item[1]["at"])[-MAX_PENDING:]
    request.session[SESSION_KEY] = dict(newest)
    return handle


def secret_take(request, *, org, kinds) -> Shown | None:
    """The secret the request's handle names, taken out of the session; None when the request
    names no handle (an ordinary visit of the page)."""
    handle = request.GET.get(HANDLE_PARAM)
    if handle is None:
        return None
    handle = handle[:MAX_HANDLE]
    pending = request.session.get(SESSION_KEY, {})
    entry = pending.get(handle)
    if entry is None or entry["kind"] not in kinds or entry["org"] != str(org.pk):
        return Shown(None, None)
    del pending[handle]
    request.session[SESSION_KEY] = pending
    if time.time() - entry["at"] >= SHOWN_ONCE_SECONDS:
        return Shown(entry["kind"], None, entry["refs"])
    try:
        secret = unseal(entry["sealed"], context=_context(request, org, entry["kind"], handle)).decode()
    except (InvalidTag, KeyError, ValueError):  # sealed under a retired key, or for someone else
        secret = None
    return Shown(entry["kind"], secret, entry["refs"])


def redirect_to_shown(url: str, handle: str) -> HttpResponseRedirect:
    """303 See Other: the browser follows with a GET, so the page it ends on never re-posts."""
    response = HttpResponseRedirect(f"{url}?{urlencode({HANDLE_PARAM: handle})}", status=303)
    return no_store(response)


def no_store(response):
    """A page that shows a secret (or says it was shown) is never kept by a browser or a proxy."""
    response["Cache-Control"] = "no-store"
    return response
