"""Template context every page shares."""

from django.utils.functional import SimpleLazyObject

from accounts.invitations import invitations_pending_for


def pending_invitations(request) -> dict:
    """The signed-in person's unanswered invitations, for the banner (queried only when shown)."""
    return {"pending_invitations": SimpleLazyObject(lambda: invitations_pending_for(request.user))}
