"""SCIM representations of our rows, and the reading of what IdPs send.

Output follows RFC 7643: empty attributes are left out, `meta` carries `version` (the weak ETag)
and `location`, `password` is never returned. Input is read leniently where real IdPs need it
(attribute names in any case, booleans as "True"/"False" strings, a manager as a bare id) and
strictly where it matters (types, required `userName`/`displayName`, unknown extensions).
"""

from datetime import UTC

from django.conf import settings

from scim.models import ScimGroup, ScimUser
from scim.protocol.errors import ScimError, bad_request
from scim.protocol.filters import ENTERPRISE, GROUP_CORE, USER_CORE
from scim.protocol.text import is_text

USER_STRINGS = {  # SCIM name -> model field
    "externalId": "external_id", "displayName": "display_name", "nickName": "nick_name",
    "profileUrl": "profile_url", "title": "title", "userType": "user_type",
    "preferredLanguage": "preferred_language", "locale": "locale", "timezone": "time_zone",
}
NAME_PARTS = ("formatted", "familyName", "givenName", "middleName", "honorificPrefix", "honorificSuffix")
ENTERPRISE_STRINGS = ("employeeNumber", "costCenter", "organization", "division", "department")
MULTI_SUB = {
    "emails": ("value", "type", "primary", "display"),
    "phoneNumbers": ("value", "type", "primary", "display"),
    "addresses": ("formatted", "streetAddress", "locality", "region", "postalCode", "country", "type",
                  "primary"),
}
# Core attributes we neither store nor accept: a PATCH naming one is refused, not silently dropped.
UNSUPPORTED_USER_ATTRIBUTES = {"ims", "photos", "entitlements", "roles", "x509certificates"}
FIELD_LIMIT = 254


def base_url() -> str:
    return settings.IAM_CANONICAL_ORIGIN.rstrip("/") + "/scim/v2"


def etag(version: int) -> str:
    return f'W/"{version}"'


def if_match_accepts(header: str | None):
    """RFC 7644 §3.14: If-Match as a test of a resource's version (`*` matches any; otherwise one of
    the listed tags, weak or strong). None when the client sent none."""
    if header is None:
        return None
    tags = [t.strip() for t in header.split(",")]

    def accepts(version: int) -> bool:
        current = etag(version)
        return "*" in tags or current in tags or current.removeprefix("W/") in tags

    return accepts


def _meta(resource_type: str, obj, path: str) -> dict:
    return {"resourceType": resource_type, "created": _iso(obj.created_at),
            "lastModified": _iso(obj.updated_at), "location": f"{base_url()}/{path}/{obj.pk}",
            "version": etag(obj.version)}


def _iso(value) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def user_representation(user: ScimUser, groups: list | None = None) -> dict:
    """`groups`: (id, display name) pairs, when the caller has them (prefetched)."""
    body: dict = {"schemas": [USER_CORE], "id": str(user.pk), "userName": user.user_name}
    for scim_name, field in USER_STRINGS.items():
        if getattr(user, field):
            body[scim_name] = getattr(user, field)
    name = {k: v for k, v in (user.name or {}).items() if v not in (None, "")}
    if name:
        body["name"] = name
    if user.active is not None:
        body["active"] = user.active
    for attr, field in (("emails", "emails"), ("phoneNumbers", "phone_numbers"), ("addresses", "addresses")):
        if getattr(user, field):
            body[attr] = getattr(user, field)
    if groups is None:
        groups = [(g.pk, g.display_name) for g in user.groups.all()]
    if groups:
        body["groups"] = [{"value": str(pk), "display": display, "$ref": f"{base_url()}/Groups/{pk}",
                           "type": "direct"} for pk, display in groups]
    enterprise = {k: v for k, v in (user.enterprise or {}).items() if v not in (None, "", {})}
    if enterprise:
        body["schemas"].append(ENTERPRISE)
        body[ENTERPRISE] = enterprise
    body["meta"] = _meta("User", user, "Users")
    return body


def group_representation(group: ScimGroup, members: list | None = None, with_members: bool = True) -> dict:
    """`members`: (id, display) pairs, when the caller has them (display: as the IdP labelled the
    member, else its userName)."""
    body: dict = {"schemas": [GROUP_CORE], "id": str(group.pk), "displayName": group.display_name}
    if group.external_id:
        body["externalId"] = group.external_id
    if with_members:
        if members is None:
            members = [(pk, display or user_name) for pk, display, user_name in
                       group.scimgroupmember_set.values_list("user_id", "display", "user__user_name")]
        if members:
            body["members"] = [{"value": str(pk), "display": display, "$ref": f"{base_url()}/Users/{pk}",
                                "type": "User"} for pk, display in members]
    body["meta"] = _meta("Group", group, "Groups")
    return body


# --- reading what clients send -------------------------------------------------------------------

class CaseInsensitive:
    """A JSON object read with attribute names in any case (RFC 7643 §2.1)."""

    def __init__(self, data: dict):
        self.data = {str(k).lower(): v for k, v in data.items()}

    def get(self, name: str, default=None):
        return self.data.get(name.lower(), default)

    def __contains__(self, name: str) -> bool:
        return name.lower() in self.data


def boolean(value, attr: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"  # Entra sends "True" / "False"
    raise bad_request(f"'{attr}' must be true or false.")


def string(value, attr: str, *, limit: int = FIELD_LIMIT, required: bool = False) -> str:
    if value is None:
        if required:
            raise bad_request(f"'{attr}' is required.")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise bad_request(f"'{attr}' must be a string.")
    text = str(value).replace("\x00", "").strip()
    if not is_text(text):  # a PATCH path's filter can spell a lone surrogate the body check never saw
        raise bad_request(f"'{attr}' is not valid Unicode text.")
    if required and not text:
        raise bad_request(f"'{attr}' is required.")
    if len(text) > limit:
        raise bad_request(f"'{attr}' is longer than {limit} characters.")
    return text


def check_schemas(data: CaseInsensitive, core: str) -> None:
    """`schemas` must name the resource's core schema. Other URNs are ignored, as their attributes
    are: Entra's tutorial still sends a retired ADSCIM group schema."""
    schemas = data.get("schemas")
    if schemas is None:
        return  # optional on input in practice; many clients leave it out
    if not isinstance(schemas, list) or not all(isinstance(s, str) for s in schemas):
        raise ScimError(400, "'schemas' must be a list of URNs.", "invalidSyntax")
    if core.lower() not in {s.lower() for s in schemas}:
        raise ScimError(400, f"'schemas' must include {core}.", "invalidSyntax")


def multi_valued(value, attr: str) -> list[dict]:
    if value is None:
        return []
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise bad_request(f"'{attr}' must be a list.")
    subs = MULTI_SUB[attr]
    items, primary_seen = [], False
    for raw in value:
        if not isinstance(raw, dict):
            raise bad_request(f"Each of '{attr}' must be an object.")
        entry = CaseInsensitive(raw)
        item = {}
        for sub in subs:
            if sub not in entry or entry.get(sub) is None:
                continue
            if sub == "primary":
                item["primary"] = boolean(entry.get(sub), f"{attr}.primary")
                if item["primary"]:
                    if primary_seen:
                        raise bad_request(f"Only one of '{attr}' can be primary.")
                    primary_seen = True
            else:
                item[sub] = string(entry.get(sub), f"{attr}.{sub}", limit=500)
        if item.get("value") or attr == "addresses" and any(k != "primary" for k in item):
            items.append(item)
    return items


def user_fields(body: dict) -> dict:
    """Model field values for a whole User (POST, PUT, or the result of a PATCH)."""
    if not isinstance(body, dict):
        raise ScimError(400, "The body must be a JSON object.", "invalidSyntax")
    data = CaseInsensitive(body)
    check_schemas(data, USER_CORE)
    for name in UNSUPPORTED_USER_ATTRIBUTES:
        if data.get(name):
            raise ScimError(400, f"'{name}' is not supported here.", "invalidValue")
    fields = {"user_name": string(data.get("userName"), "userName", required=True,
                                  limit=ScimUser._meta.get_field("user_name").max_length)}
    for scim_name, field in USER_STRINGS.items():
        limit = ScimUser._meta.get_field(field).max_length
        fields[field] = string(data.get(scim_name), scim_name, limit=limit)
    # Unassigned (never sent, or removed by a PATCH) counts as active, as it does in every IdP.
    fields["active"] = boolean(data.get("active"), "active") if data.get("active") is not None else None
    name = data.get("name")
    if name is not None and not isinstance(name, dict):
        raise bad_request("'name' must be an object.")
    name = CaseInsensitive(name or {})
    fields["name"] = {part: string(name.get(part), f"name.{part}") for part in NAME_PARTS if name.get(part)}
    fields["emails"] = multi_valued(data.get("emails"), "emails")
    fields["phone_numbers"] = multi_valued(data.get("phoneNumbers"), "phoneNumbers")
    fields["addresses"] = multi_valued(data.get("addresses"), "addresses")
    extension = data.get(ENTERPRISE)
    if extension is not None and not isinstance(extension, dict):
        raise bad_request("The enterprise extension must be an object.")
    extension = CaseInsensitive(extension or {})
    enterprise = {k: string(extension.get(k), k) for k in ENTERPRISE_STRINGS if extension.get(k)}
    manager = extension.get("manager")
    if isinstance(manager, str | int) and str(manager).strip():
        enterprise["manager"] = {"value": string(manager, "manager")}  # Entra sends the bare id
    elif isinstance(manager, dict):
        manager = CaseInsensitive(manager)
        value = {k: string(manager.get(k), f"manager.{k}") for k in ("value", "displayName", "$ref")
                 if manager.get(k)}
        if value:
            enterprise["manager"] = value
    elif manager is not None:
        raise bad_request("'manager' must be an object or an id.")
    fields["enterprise"] = enterprise
    password = data.get("password")
    fields["password"] = string(password, "password", limit=1024) if password is not None else None
    return fields


def group_fields(body: dict) -> dict:
    if not isinstance(body, dict):
        raise ScimError(400, "The body must be a JSON object.", "invalidSyntax")
    data = CaseInsensitive(body)
    check_schemas(data, GROUP_CORE)
    fields = {"display_name": string(data.get("displayName"), "displayName", required=True),
              "external_id": string(data.get("externalId"), "externalId")}
    members = data.get("members")
    fields["members"] = member_ids(members) if members is not None else []
    return fields


def member_ids(value) -> list[tuple[str, str]]:
    """(id, display) for each member given; display is "" when the client sent none."""
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise bad_request("'members' must be a list.")
    ids = []
    for raw in value:
        if not isinstance(raw, dict):
            raise bad_request("Each member must be an object with a 'value'.")
        entry = CaseInsensitive(raw)
        if entry.get("type") is not None and str(entry.get("type")).lower() not in ("user", ""):
            raise bad_request("Only users can be group members here.")
        ids.append((string(entry.get("value"), "members.value", required=True),
                    string(entry.get("display"), "members.display")))
    return ids

