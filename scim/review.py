"""SCIM in the access-review export: the org's SCIM tokens, and the names its IdP gave its people.

A SCIM token is a principal: it creates, changes and deprovisions members and fills the groups that
map to roles. Its grant (`scopes`) is the SCIM resources it writes; its `effective_permissions` are
the same while it works, and nothing once it is revoked or expired or its creator can no longer
mint one (scim.tokens: they must hold every permission). People provisioned over SCIM carry the
org's own view of them (`ScimUser`), which the account's display name may not match: the export's
`name` column is the IdP's displayName, else name.formatted, else given, middle and family names.
"""



from audit.exports import ReviewSource, iso
from core.permissions import ALL_PERMS
from rbac.review import credential_rows, credential_status
from scim.models import ScimToken, ScimUser

SCIM_RESOURCES = "Users Groups"  # RFC 7643 resource types a token writes


def _token_row(token: ScimToken, held, now) -> list:
    status = credential_status(token, now)
    works = status == "active" and held is not None and ALL_PERMS <= held
    maker = token.created_by
    return [
        "scim_token", token.pk, token.name, "", status, "manual", "", "", "", SCIM_RESOURCES if works else "",
        "", iso(token.last_used_at), iso(token.created_at), maker.email if maker else "", SCIM_RESOURCES, "",
        iso(token.created_at),
    ]


def scim_token_rows(org):
    return credential_rows(org, ScimToken.objects.for_org(org), _token_row)


SCIM_TOKENS = ReviewSource(rows=scim_token_rows, count=lambda org: ScimToken.objects.for_org(org).count())


def scim_name(display_name: str, name: dict) -> str:
    name = name if isinstance(name, dict) else {}
    parts = (name.get("givenName"), name.get("middleName"), name.get("familyName"))
    return (display_name or name.get("formatted") or " ".join(str(p) for p in parts if p)).strip()


def scim_member_names(org, memberships) -> dict:
    """{membership pk: {"name": ...}} for the chunk's SCIM-provisioned people who have a SCIM name;
    one query (rbac.review.human_source overlays)."""
    rows = (ScimUser.objects.for_org(org).filter(membership_id__in=[m.pk for m in memberships])
            .values_list("membership_id", "display_name", "name"))
    return {pk: {"name": name} for pk, display, raw in rows if (name := scim_name(display, raw))}
