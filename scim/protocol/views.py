"""The SCIM 2.0 server (RFC 7644) at /scim/v2/, one org per bearer token.

Plain Django views rather than django-scim2's: see docs/architecture.md ("SCIM") for what its views
and adapters lacked. Every request: bearer token → org (scim.tokens), rate limit per client IP and
per token, then the resource handler; every failure is an RFC 7644 §3.12 error body.
"""

import json
import logging

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from scim2_models import InvalidPathException, Path

from audit.events import AuditEvent
from audit.services import Target, audit_record
from core.ratelimit import counters_incr
from core.tenancy import org_scope_enter
from scim import services
from scim.models import ScimGroup, ScimUser
from scim.protocol import discovery, patch
from scim.protocol.errors import CONTENT_TYPE, ScimError, bad_request, not_found
from scim.protocol.filters import GROUP_CORE, GROUPS, USER_CORE, USERS, UnknownAttribute, attribute_key
from scim.protocol.ids import uuid_or_none
from scim.protocol.projection import project
from scim.protocol.resources import (
    CaseInsensitive,
    etag,
    group_fields,
    group_representation,
    user_fields,
    user_representation,
)
from scim.tokens import actor_for, scim_token_authenticate

logger = logging.getLogger(__name__)
SEARCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
MAX_BODY = 1024 * 1024
DEFAULT_PAGE = 100


def _json(status: int, body: dict, *, version: int | None = None,
          location: str | None = None) -> HttpResponse:
    response = HttpResponse(json.dumps(body), status=status, content_type=CONTENT_TYPE)
    if version is not None:
        response["ETag"] = etag(version)
    if location:
        response["Location"] = location
    return response


class Call:
    """One authenticated SCIM request."""

    def __init__(self, request, token):
        self.request, self.token, self.org, self.actor = request, token, token.org, actor_for(token)

    def body(self) -> dict:
        if len(self.request.body) > MAX_BODY:
            raise ScimError(413, "The request body is too large.")
        try:
            data = json.loads(self.request.body or b"null")
        except (ValueError, UnicodeDecodeError):
            raise ScimError(400, "The body is not valid JSON.", "invalidSyntax")
        if not isinstance(data, dict):
            raise ScimError(400, "The body must be a JSON object.", "invalidSyntax")
        return data

    @property
    def if_match(self) -> str | None:
        return self.request.headers.get("If-Match")


def _authenticate(request):
    header = request.headers.get("Authorization", "")
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise ScimError(401, "A SCIM bearer token is required.")
    token = scim_token_authenticate(raw.strip())
    if token is None:
        raise ScimError(401, "The bearer token is not valid.")
    return token


def _client_ip(request) -> str:
    return getattr(getattr(request, "audit_context", None), "ip", None) or "unknown"


def _failures_key(request) -> str:
    return f"scim:authfail:{_client_ip(request)}"


def _refuse_guessers(request) -> None:
    """Before any token lookup: an address that keeps presenting bad tokens is refused for a while.
    Only failures count per address, because IdPs send every customer's traffic from a few shared
    addresses; the request limit is per token."""
    try:
        failures = cache.get(_failures_key(request)) or 0
    except Exception:
        raise ScimError(503, "Try again shortly.")
    if failures >= settings.IAM_SCIM_AUTH_FAILURE_LIMIT:
        raise ScimError(429, "Too many failed authentications from this address.")


def _count_failure(request) -> None:
    try:
        counters_incr([_failures_key(request)], 60)
    except Exception:
        logger.warning("could not count a failed SCIM authentication", exc_info=True)


def _throttle(token_key: str) -> None:
    try:
        (count,) = counters_incr([f"scim:token:{token_key}"], 60)
    except Exception:
        raise ScimError(503, "Try again shortly.")
    if count > settings.IAM_SCIM_RATE_LIMIT:
        raise ScimError(429, "Too many requests.")


def scim_view(handler):
    """Authentication, throttling, error bodies, and an audit entry for refused writes."""

    @csrf_exempt
    def view(request, **kwargs):
        call = None
        try:
            _refuse_guessers(request)
            try:
                token = _authenticate(request)
            except ScimError:
                _count_failure(request)
                raise
            _throttle(token.lookup_id)
            org_scope_enter(token.org)  # the token alone decides the org this request acts in
            call = Call(request, token)
            return handler(call, **kwargs)
        except ScimError as exc:
            if call is not None and exc.denial is not None:
                d = exc.denial
                audit_record(org=d.org, actor=d.actor, event=d.event, outcome="denied", target=d.target,
                             data=d.data)
            if call is not None and exc.cross_tenant is not None:
                what, ident = exc.cross_tenant
                audit_record(org=call.org, actor=call.actor, event=AuditEvent.SCIM_CROSS_TENANT_DENIED,
                             target=Target("scim_user", ident[:64]),
                             data={"method": request.method, "resource": what, "id": ident[:64]})
            if call is not None and request.method in ("POST", "PUT", "PATCH", "DELETE") and exc.status in (
                    400, 409, 412, 413):
                audit_record(org=call.org, actor=call.actor, event=AuditEvent.SCIM_REQUEST_REJECTED,
                             outcome="denied", data={
                                 "method": request.method, "resource": request.path[:200],
                                 "status": exc.status, "scim_type": exc.scim_type, "detail": exc.detail})
            response = exc.response()
            if exc.status in (429, 503):
                response["Retry-After"] = "60"
            return response
        except Exception:
            logger.exception("SCIM request failed")
            return ScimError(500, "The server could not complete the request.").response()

    return view


def _method_not_allowed(call) -> ScimError:
    return ScimError(405, f"{call.request.method} is not supported here.")


# --- discovery ------------------------------------------------------------------------------------

@scim_view
def service_provider_config(call):
    if call.request.method != "GET":
        raise _method_not_allowed(call)
    return _json(200, discovery.service_provider_config())


@scim_view
def resource_types(call, name=None):
    if call.request.method != "GET":
        raise _method_not_allowed(call)
    types = discovery.resource_types()
    if name is None:
        return _json(200, discovery.list_response(types, len(types)))
    found = next((t for t in types if t["id"] == name), None)
    if found is None:
        raise not_found("ResourceType")
    return _json(200, found)


@scim_view
def schemas(call, urn=None):
    if call.request.method != "GET":
        raise _method_not_allowed(call)
    documents = discovery.schemas()
    if urn is None:
        return _json(200, discovery.list_response(documents, len(documents)))
    found = next((d for d in documents if d["id"] == urn), None)
    if found is None:
        raise not_found("Schema")
    return _json(200, found)


@scim_view
def unsupported(call, **_):
    raise ScimError(501, "Not supported by this server (see ServiceProviderConfig).")


@scim_view
def unknown(call, **_):
    raise not_found("Endpoint")


# --- listing ------------------------------------------------------------------------------------

def _int(value, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad_request(f"'{name}' must be an integer.")


def _list_params(source) -> dict:
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
    page = list(queryset[offset:offset + params["count"]]) if params["count"] else []
    return total, page


def _list_users(call, params):
    total, page = _listing(call, ScimUser.objects.for_org(call.org), USERS, params)
    memberships = _groups_of(page)
    resources = [project(user_representation(u, memberships.get(u.pk, [])), params["attributes"],
                         params["excluded"], USER_CORE) for u in page]
    return _json(200, discovery.list_response(resources, total, params["start"]))


def _groups_of(users) -> dict:
    found: dict = {}
    rows = (ScimGroup.members.through.objects.filter(user__in=[u.pk for u in users])
            .values_list("user_id", "group_id", "group__display_name"))
    for user_id, group_id, name in rows:
        found.setdefault(user_id, []).append((group_id, name))
    return found


def _members_of(groups) -> dict:
    found: dict = {}
    rows = (ScimGroup.members.through.objects.filter(group__in=[g.pk for g in groups])
            .values_list("group_id", "user_id", "display", "user__user_name").order_by("created_at"))
    for group_id, user_id, display, name in rows:
        found.setdefault(group_id, []).append((user_id, display or name))
    return found


def _wants_members(params) -> bool:
    excluded = str(params.get("excluded") or "").lower()
    attributes = str(params.get("attributes") or "").lower()
    if "members" in [a.strip() for a in excluded.split(",")]:
        return False
    return not attributes or "members" in attributes


def _list_groups(call, params):
    total, page = _listing(call, ScimGroup.objects.for_org(call.org), GROUPS, params)
    with_members = _wants_members(params)
    members = _members_of(page) if with_members else {}
    resources = [project(group_representation(g, members.get(g.pk, []), with_members), params["attributes"],
                         params["excluded"], GROUP_CORE) for g in page]
    return _json(200, discovery.list_response(resources, total, params["start"]))


def _search_params(call) -> dict:
    body = call.body()
    data = CaseInsensitive(body)
    schemas_ = data.get("schemas")
    if schemas_ is not None and SEARCH_SCHEMA.lower() not in {str(s).lower() for s in schemas_ or []}:
        raise ScimError(400, f"'schemas' must be [{SEARCH_SCHEMA!r}].", "invalidSyntax")
    for key in ("attributes", "excludedAttributes"):
        if isinstance(data.get(key), list):
            body = {**body, key: ",".join(str(v) for v in data.get(key))}
    return _list_params(body)


@scim_view
def root_search(call):
    """RFC 7644 §3.4.3: a search across Users and then Groups. An attribute only one of them has
    is simply false for the other; one that neither has is a 400."""
    if call.request.method != "POST":
        raise _method_not_allowed(call)
    params = _search_params(call)
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
            groups_of = _groups_of(page)
            resources += [project(user_representation(u, groups_of.get(u.pk, [])), params["attributes"],
                                  params["excluded"], core) for u in page]
        else:
            members = _members_of(page)
            resources += [project(group_representation(g, members.get(g.pk, [])), params["attributes"],
                                  params["excluded"], core) for g in page]
    return _json(200, discovery.list_response(resources, grand_total, params["start"]))


# --- users --------------------------------------------------------------------------------------

def _resource_id(pk: str, resource: str):
    """Ids are UUIDs; anything else is as missing as an unknown one."""
    parsed = uuid_or_none(pk)
    if parsed is None:
        raise not_found(resource)
    return parsed


def _resource_query(call) -> tuple:
    return call.request.GET.get("attributes"), call.request.GET.get("excludedAttributes")


def _user_response(call, scim_user: ScimUser, status: int = 200) -> HttpResponse:
    attributes, excluded = _resource_query(call)
    body = project(user_representation(scim_user), attributes, excluded, USER_CORE)
    return _json(status, body, version=scim_user.version,
                 location=body.get("meta", {}).get("location") if status == 201 else None)


def _read_one(call, model, pk, resource: str, respond) -> HttpResponse:
    found = model.objects.for_org(call.org).filter(pk=pk).first()
    if found is None:
        raise not_found(resource)
    if call.request.headers.get("If-None-Match") == etag(found.version):
        return HttpResponse(status=304)
    return respond(call, found)


def _cross_tenant(call, resource: str, model, pk) -> None:
    """A write aimed at another org's id: the same 404, plus an audit entry in the caller's org."""
    if model.objects.unscoped().filter(pk=pk).exists():
        audit_record(org=call.org, actor=call.actor, event=AuditEvent.SCIM_CROSS_TENANT_DENIED,
                     target=Target(resource.lower().rstrip("s"), str(pk)),
                     data={"method": call.request.method, "resource": resource, "id": str(pk)})


@scim_view
def users(call):
    if call.request.method == "GET":
        return _list_users(call, _list_params(call.request.GET))
    if call.request.method == "POST":
        scim_user = services.user_create(org=call.org, actor=call.actor, fields=user_fields(call.body()))
        return _user_response(call, scim_user, 201)
    raise _method_not_allowed(call)


@scim_view
def users_search(call):
    if call.request.method != "POST":
        raise _method_not_allowed(call)
    return _list_users(call, _search_params(call))


@scim_view
def user(call, pk):
    pk_value = _resource_id(pk, "User")
    method = call.request.method
    if method == "GET":
        return _read_one(call, ScimUser, pk_value, "User", _user_response)
    if method not in ("PUT", "PATCH", "DELETE"):
        raise _method_not_allowed(call)
    try:
        if method == "DELETE":
            services.user_delete(org=call.org, actor=call.actor, pk=pk_value, if_match=call.if_match)
            return HttpResponse(status=204)
        if method == "PUT":
            fields = user_fields(call.body())
        else:
            ops = patch.operations(call.body())
            with transaction.atomic():
                current = services.user_locked(call.org, pk_value)
                fields = user_fields(patch.apply_user(user_representation(current), ops, str(pk_value)))
                scim_user = services.user_replace(org=call.org, actor=call.actor, pk=pk_value, fields=fields,
                                                  if_match=call.if_match, method=method)
            return _user_response(call, scim_user)
        scim_user = services.user_replace(org=call.org, actor=call.actor, pk=pk_value, fields=fields,
                                          if_match=call.if_match, method=method)
        return _user_response(call, scim_user)
    except ScimError as exc:
        if exc.status == 404:
            _cross_tenant(call, "Users", ScimUser, pk_value)
        raise


# --- groups -------------------------------------------------------------------------------------

def _group_response(call, group: ScimGroup, status: int = 200) -> HttpResponse:
    attributes, excluded = _resource_query(call)
    params = {"attributes": attributes, "excluded": excluded}
    with_members = _wants_members(params)
    members = _members_of([group]).get(group.pk, []) if with_members else []
    body = project(group_representation(group, members, with_members), attributes, excluded, GROUP_CORE)
    return _json(status, body, version=group.version,
                 location=body.get("meta", {}).get("location") if status == 201 else None)


@scim_view
def groups(call):
    if call.request.method == "GET":
        return _list_groups(call, _list_params(call.request.GET))
    if call.request.method == "POST":
        group = services.group_create(org=call.org, actor=call.actor, fields=group_fields(call.body()))
        return _group_response(call, group, 201)
    raise _method_not_allowed(call)


@scim_view
def groups_search(call):
    if call.request.method != "POST":
        raise _method_not_allowed(call)
    return _list_groups(call, _search_params(call))


@scim_view
def group(call, pk):
    pk_value = _resource_id(pk, "Group")
    method = call.request.method
    if method == "GET":
        return _read_one(call, ScimGroup, pk_value, "Group", _group_response)
    if method not in ("PUT", "PATCH", "DELETE"):
        raise _method_not_allowed(call)
    try:
        if method == "DELETE":
            services.group_delete(org=call.org, actor=call.actor, pk=pk_value, if_match=call.if_match)
            return HttpResponse(status=204)
        if method == "PUT":
            fields = group_fields(call.body())
            updated = services.group_update(org=call.org, actor=call.actor, pk=pk_value, fields=fields,
                                            if_match=call.if_match, method=method,
                                            replace_members=fields["members"])
            return _group_response(call, updated)
        ops = patch.operations(call.body())
        with transaction.atomic():
            current = services.group_locked(call.org, pk_value)
            doc, members = patch.apply_group(group_representation(current, with_members=False), ops,
                                             str(pk_value))
            fields = group_fields({**doc, "members": []})
            updated = services.group_update(
                org=call.org, actor=call.actor, pk=pk_value, fields=fields, if_match=call.if_match,
                method=method, replace_members=members.replace, add=members.add, remove=members.remove)
        if not call.request.GET.get("attributes") and not call.request.GET.get("excludedAttributes"):
            # RFC 7644 §3.5.2: 204 when the client did not ask for the resource; IdPs that push
            # thousands of member changes do not want the whole member list back each time.
            response = HttpResponse(status=204)
            response["ETag"] = etag(updated.version)
            return response
        return _group_response(call, updated)
    except ScimError as exc:
        if exc.status == 404 and "Member" not in exc.detail:
            _cross_tenant(call, "Groups", ScimGroup, pk_value)
        raise
