"""Pages: agents (grant, secrets, status, revocation), connections and runs.

Every write goes through agents.policies, which checks the caller and calls one effect that keeps
the rules and audits; a ServiceError is shown on the form (or as a message) with its own status. A
page that mints a secret redirects to a GET that shows it once (accounts.views.shown_once). An
action that takes access away (suspending or revoking an agent, rotating its secret, terminating a
run, rotating or deleting a connection, revoking a delegation) is asked for on a confirmation page
first that spells out what stops and for how many, and a POST that does not carry that
confirmation changes nothing.

Lists page and search through web.paging with their API list's ordering and search fields; their
filters are GET fields checked here (an unknown value is a 400 that says so, never ignored).
"""

from web.pages import confirmed  # noqa: F401 (the agent pages import it from here)


class BadFilter(Exception):
    """A list filter's value is not one of its choices (the page answers 400 with the message)."""


def text_filter(request, name: str, max_length: int) -> str:
    """A typed GET filter (a picker's text): stripped, cut to `max_length`, and NUL dropped, which no
    stored value holds (PostgreSQL refuses it in a query)."""
    return request.GET.get(name, "").replace("\x00", "").strip()[:max_length]


def choice_filter(request, name: str, choices) -> str:
    """A GET filter's value: "" for none, one of `choices`, or BadFilter."""
    value = request.GET.get(name, "").strip()
    if value and value not in choices:
        raise BadFilter(f"Unknown {name} {value[:40]!r}: choose one of {', '.join(choices)}.")
    return value
