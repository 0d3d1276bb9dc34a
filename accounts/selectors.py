"""Reads about people and their memberships."""

from accounts.models import ACTING_STATUSES, Membership


def orgs_for_user(user) -> list:
    """The orgs a user may act in (active or invited membership), for the switcher and home."""
    if not user.is_authenticated:
        return []
    memberships = (Membership.objects.unscoped()  # the person's memberships in every org
                   .filter(user=user, status__in=ACTING_STATUSES).select_related("org").order_by("org__name"))
    return [m.org for m in memberships]


def shared_with_other_org(user, org) -> bool:
    """Whether another org than `org` has this person as a member (in any status)."""
    return Membership.objects.unscoped().filter(user=user).exclude(org=org).exists()  # across orgs
