"""Lists and searches (RFC 7644 §3.4): filters become ORM queries (scim.protocol.filters), then
sorting, paging by `startIndex`/`count` (at most IAM_SCIM_MAX_PAGE), and `attributes` projection.
`/.search` at the root spans Users, then Groups."""

import re

from django.conf import settings
from django.db.models import F
from scim2_models import InvalidPathException, Path

from scim.models import ScimGroup, ScimUser
from scim.protocol.discovery import list_response
from scim.protocol.dispatch import scim_json, scim_view
from scim.protocol.errors import ScimError, bad_request
from scim.protocol.filters import GROUP_CORE, GROUPS, USER_CORE, USERS, UnknownAttribute, attribute_key
from scim.protocol.projection import project
from scim.protocol.resources import CaseInsensitive, group_representation, user_representation

SEARCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
DEFAULT_PAGE = 100


# startIndex and count are read as 64-bit integers: a larger one means the same (past every row,
# or the largest page) and every client can parse the startIndex we echo.
INT_BOUND = 2 ** 63 - 1
_INTEGER = re.compile(r"\s*([+-]?)(\d+)\s*", re.ASCII)


def _int(value, name: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, float) and value.is_integer():  # a JSON search body may say 10.0
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return max(-INT_BOUND, min(value, INT_BOUND))
    match = _INTEGER.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise bad_request(f"'{name}' must be an integer.")
    sign, digits = match.groups()
    # Over 19 digits is past the bound whatever they are, and int() of thousands of digits is slow.
    magnitude = INT_BOUND if len(digits.lstrip("0")) > 19 else min(int(digits), INT_BOUND)
    return -magnitude if sign == "-" else magnitude


def list_params(source) -> dict:
    data = CaseInsensitive(source)
    start = _int(data.get("startIndex"), "startIndex")
    count = _int(data.get("count"), "count")
    order = str(data.get("sortOrder") or "ascending").lower()
    if order not in ("ascending", "descending"):
        raise bad_request("'sortOrder' is ascending or descending.")
    return {
        "filter": data.get("filter"), "start": max(1, start or 1),  # RFC 7644 §3.4.2.4: <1 means 1
        "count": min(max(0, DEFAULT_PAGE if count is None else count), settings.IAM_SCIM_MAX_PAGE),
        "sort_by": data.get("sortBy"), "descending": order == "descending",
        "attributes": data.get("attributes"), "excluded": data.get("excludedAttributes"),
    }


def _sort_field(translator, sort_by) -> str:
    try:
        node = Path(str(sort_by)).ast
    except (InvalidPathException, ValueError):
        raise bad_request(f"Cannot sort by '{sort_by}'.")
    field = translator.fields.get(attribute_key(getattr(node, "attr_path", node), translator.core_urn))
    # A to-many path (groups.display) has no one value per row to sort by.
    if field is None or field.kind in ("multi", "reference") or field.to_many:
        raise bad_request(f"Cannot sort by '{sort_by}'.")
    return field.lookup


def _listing(call, queryset, translator, params: dict, *, unknown_is_false: bool = False):
    if params["filter"]:
        if not isinstance(params["filter"], str):
            raise ScimError(400, "'filter' must be a string.", "invalidFilter")
        condition, crosses_relation = translator.translate(params["filter"],
                                                           unknown_is_false=unknown_is_false)
        queryset = queryset.filter(condition)
        if crosses_relation:
            queryset = queryset.distinct()
    if params["sort_by"]:
        # Selected, because under DISTINCT PostgreSQL orders only by what the query selects and a
        # JSON key (name.familyName) is otherwise not; it is the row's own value, so rows stay distinct.
        queryset = queryset.annotate(scim_sort=F(_sort_field(translator, params["sort_by"])))
        queryset = queryset.order_by("-scim_sort" if params["descending"] else "scim_sort", "pk")
    else:
        queryset = queryset.order_by("created_at", "pk")
    total = queryset.count()
    offset = params["start"] - 1
    # Past the last row the page is empty without asking: no database takes an offset past 64 bits.
    page = list(queryset[offset:offset + params["count"]]) if params["count"] and offset < total else []
    return total, page


def list_users(call, params):
    total, page = _listing(call, ScimUser.objects.for_org(call.org), USERS, params)
    memberships = groups_of(page)
    resources = [project(user_representation(u, memberships.get(u.pk, [])), params["attributes"],
                         params["excluded"], USER_CORE) for u in page]
    return scim_json(200, list_response(resources, total, params["start"]))


def groups_of(users) -> dict:
    found: dict = {}
    rows = (ScimGroup.members.through.objects.filter(user__in=[u.pk for u in users])
            .values_list("user_id", "group_id", "group__display_name"))
    for user_id, group_id, name in rows:
        found.setdefault(user_id, []).append((group_id, name))
    return found


def members_of(groups) -> dict:
    found: dict = {}
    rows = (ScimGroup.members.through.objects.filter(group__in=[g.pk for g in groups])
            .values_list("group_id", "user_id", "display", "user__user_name").order_by("created_at"))
    for group_id, user_id, display, name in rows:
        found.setdefault(group_id, []).append((user_id, display or name))
    return found


def wants_members(params) -> bool:
    excluded = str(params.get("excluded") or "").lower()
    attributes = str(params.get("attributes") or "").lower()
    if "members" in [a.strip() for a in excluded.split(",")]:
        return False
    return not attributes or "members" in attributes


def list_groups(call, params):
    total, page = _listing(call, ScimGroup.objects.for_org(call.org), GROUPS, params)
    with_members = wants_members(params)
    members = members_of(page) if with_members else {}
    resources = [project(group_representation(g, members.get(g.pk, []), with_members), params["attributes"],
                         params["excluded"], GROUP_CORE) for g in page]
    return scim_json(200, list_response(resources, total, params["start"]))


def search_params(call) -> dict:
    body = call.body()
    data = CaseInsensitive(body)
    schemas_ = data.get("schemas")
    if schemas_ is not None and SEARCH_SCHEMA.lower() not in {str(s).lower() for s in schemas_ or []}:
        raise ScimError(400, f"'schemas' must be [{SEARCH_SCHEMA!r}].", "invalidSyntax")
    for key in ("attributes", "excludedAttributes"):
        if isinstance(data.get(key), list):
            body = {**body, key: ",".join(str(v) for v in data.get(key))}
    return list_params(body)


@scim_view
def root_search(call):
    """RFC 7644 §3.4.3: a search across Users and then Groups. An attribute only one of them has
    is simply false for the other; one that neither has is a 400."""
    if call.request.method != "POST":
        raise call.method_not_allowed()
    params = search_params(call)
    types = ((ScimUser, USERS, USER_CORE), (ScimGroup, GROUPS, GROUP_CORE))
    if params["filter"]:
        if not isinstance(params["filter"], str):
            raise ScimError(400, "'filter' must be a string.", "invalidFilter")
        nowhere = set.intersection(*(t.unknown_attributes(params["filter"]) for _, t, _ in types))
        if nowhere:
            raise UnknownAttribute(sorted(nowhere)[0])
    parts = []
    for model, translator, core in types:
        total, _ = _listing(call, model.objects.for_org(call.org), translator,
                            {**params, "count": 0, "sort_by": None}, unknown_is_false=True)
        parts.append((model, translator, core, total))
    grand_total = sum(p[3] for p in parts)
    offset, remaining, resources = params["start"] - 1, params["count"], []
    for model, translator, core, total in parts:
        if remaining <= 0:
            break
        if offset >= total:
            offset -= total
            continue
        _, page = _listing(call, model.objects.for_org(call.org), translator,
                           {**params, "start": offset + 1, "count": remaining, "sort_by": None},
                           unknown_is_false=True)
        offset = 0
        remaining -= len(page)
        if model is ScimUser:
            groups = groups_of(page)
            resources += [project(user_representation(u, groups.get(u.pk, [])), params["attributes"],
                                  params["excluded"], core) for u in page]
        else:
            members = members_of(page)
            resources += [project(group_representation(g, members.get(g.pk, [])), params["attributes"],
                                  params["excluded"], core) for g in page]
    return scim_json(200, list_response(resources, grand_total, params["start"]))
