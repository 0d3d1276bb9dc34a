"""Reads about people and their memberships."""

from accounts.models import ACTING_STATUSES


def orgs_for_user(user) -> list:
    """The orgs a user may act in (active or invited membership), for the switcher and home."""
    if not user.is_authenticated:
        return []
    memberships = (
        user.memberships.filter(status__in=ACTING_STATUSES).select_related("org").order_by("org__name")
    )
    return [m.org for m in memberships]
