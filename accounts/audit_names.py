"""How the audit log names the people, memberships, API keys and the org itself (audit.naming)."""

from django.urls import reverse
from django.utils.http import urlencode

from accounts.models import ApiKey, Membership
from audit.naming import Namer, uuid_ids


def _member_url(org, membership_pk) -> str:
    return reverse("accounts:member-detail", kwargs={"org": org.slug, "pk": membership_pk})


def user_names(org, ids):
    """A person (an actor's or a target's user id) by email, linking to their membership in this org."""
    rows = (Membership.objects.for_org(org).filter(user_id__in=uuid_ids(ids))
            .values_list("user_id", "pk", "user__email"))
    return {str(user_id): (email, _member_url(org, pk)) for user_id, pk, email in rows}


def user_find(org, text):
    """The user id of the member of this org with email `text` (any case), if there is one."""
    found = (Membership.objects.for_org(org).filter(user__email__iexact=text.strip())
             .values_list("user_id", flat=True).first())
    return str(found) if found else None


def membership_names(org, ids):
    rows = Membership.objects.for_org(org).filter(pk__in=uuid_ids(ids)).values_list("pk", "user__email")
    return {str(pk): (email, _member_url(org, pk)) for pk, email in rows}


def api_key_names(org, ids):
    rows = ApiKey.objects.for_org(org).filter(pk__in=uuid_ids(ids)).values_list("pk", "name")
    base = reverse("accounts:api-keys", kwargs={"org": org.slug})
    return {str(pk): (f"API key {name}", f"{base}?{urlencode({'q': name})}") for pk, name in rows}


def organization_names(org, ids):
    """The org itself (policy changes, exports): no query, it is in hand."""
    own = str(org.pk)
    return {own: (org.name, reverse("console:overview", kwargs={"org": org.slug}))} if own in ids else {}


NAMERS = (
    Namer("user", user_names, find=user_find),
    Namer("membership", membership_names),
    Namer("apikey", api_key_names),
    Namer("organization", organization_names),
)
