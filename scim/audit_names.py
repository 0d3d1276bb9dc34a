"""How the audit log names SCIM tokens, provisioned users and groups, and group mappings (audit.naming)."""

from django.urls import reverse

from audit.naming import Namer, uuid_ids
from scim.models import GroupMapping, ScimGroup, ScimToken, ScimUser


def token_names(org, ids):
    rows = ScimToken.objects.for_org(org).filter(pk__in=uuid_ids(ids)).values_list("pk", "name")
    return {str(pk): (f"SCIM token {name}", reverse("provisioning:tokens", kwargs={"org": org.slug}))
            for pk, name in rows}


def user_names(org, ids):
    rows = ScimUser.objects.for_org(org).filter(pk__in=uuid_ids(ids)).values_list("pk", "user_name",
                                                                                   "membership_id")
    return {str(pk): (f"SCIM user {name}", reverse("accounts:member-detail", kwargs={
        "org": org.slug, "pk": member}) if member else None) for pk, name, member in rows}


def group_names(org, ids):
    rows = ScimGroup.objects.for_org(org).filter(pk__in=uuid_ids(ids)).values_list("pk", "display_name")
    return {str(pk): (f"SCIM group {name}", None) for pk, name in rows}


def mapping_names(org, ids):
    rows = (GroupMapping.objects.for_org(org).filter(pk__in=uuid_ids(ids))
            .values_list("pk", "group__display_name", "kind"))
    url = reverse("provisioning:mappings", kwargs={"org": org.slug})
    return {str(pk): (f"mapping of {group} ({kind})", url) for pk, group, kind in rows}


NAMERS = (
    Namer("scimtoken", token_names),
    Namer("scimuser", user_names),
    Namer("scim_user", user_names),
    Namer("scimgroup", group_names),
    Namer("groupmapping", mapping_names),
)
