"""Pages: agents (grant, secrets, status, revocation), connections and runs.

Every write goes through agents.policies, which checks the caller and calls one effect that keeps
the rules and audits; a ServiceError is shown on the form (or as a message) with its own status. A
page that mints a secret redirects to a GET that shows it once (accounts.views.shown_once). An
action that takes access away at once (suspending an agent, terminating a run, ending a secret with
no overlap, rotating or deleting a connection) is asked for on a confirmation page first, and a
POST that does not carry that confirmation changes nothing.
"""

CONFIRM_FIELD = "confirm"


def confirmed(request) -> bool:
    """Whether the POST came from the confirmation page's button."""
    return request.POST.get(CONFIRM_FIELD) == "yes"
