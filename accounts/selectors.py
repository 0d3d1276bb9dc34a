"""Reads about people and their memberships."""

from django.db.models import Q

from accounts.models import ACTING_STATUSES, Membership, MembershipStatus


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


def member_search(text: str) -> Q:
    """Members whose address or name contains `text`. A pending invitation is found by the address
    the org typed only: its account's name is not the org's to see, nor to guess at."""
    return Q(user__email__icontains=text) | (
        ~Q(status=MembershipStatus.INVITED) & Q(user__display_name__icontains=text))
