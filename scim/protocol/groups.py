"""/Groups: list, search, create, read, replace (PUT), patch and delete, as scim.protocol.users does
for Users; a PATCH's operations are applied by scim.groups to the locked row."""

from django.http import HttpResponse

from scim import groups as service
from scim.models import ScimGroup
from scim.protocol import patch
from scim.protocol.dispatch import read_one, resource_id, resource_query, scim_json, scim_view
from scim.protocol.filters import GROUP_CORE
from scim.protocol.listing import list_groups, list_params, members_of, search_params, wants_members
from scim.protocol.projection import project
from scim.protocol.resources import etag, group_fields, group_representation


def _group_response(call, group: ScimGroup, status: int = 200) -> HttpResponse:
    attributes, excluded = resource_query(call)
    with_members = wants_members({"attributes": attributes, "excluded": excluded})
    members = members_of([group]).get(group.pk, []) if with_members else []
    body = project(group_representation(group, members, with_members), attributes, excluded, GROUP_CORE)
    return scim_json(status, body, version=group.version,
                     location=body.get("meta", {}).get("location") if status == 201 else None)


@scim_view
def groups(call):
    if call.request.method == "GET":
        return list_groups(call, list_params(call.request.GET))
    if call.request.method == "POST":
        group = service.group_create(org=call.org, actor=call.actor, fields=group_fields(call.body()))
        return _group_response(call, group, 201)
    raise call.method_not_allowed()


@scim_view
def groups_search(call):
    if call.request.method != "POST":
        raise call.method_not_allowed()
    return list_groups(call, search_params(call))


def _patched(ops, pk: str):
    def change(current: ScimGroup) -> service.GroupChange:
        doc, members = patch.apply_group(group_representation(current, with_members=False), ops, pk)
        return service.GroupChange(group_fields({**doc, "members": []}), members.replace, members.add,
                                   members.remove)
    return change


@scim_view
def group(call, pk):
    pk_value = resource_id(pk, "Group")
    method = call.request.method
    if method == "GET":
        return read_one(call, ScimGroup, pk_value, "Group", _group_response)
    if method == "DELETE":
        service.group_delete(org=call.org, actor=call.actor, pk=pk_value, accepts=call.accepts)
        return HttpResponse(status=204)
    if method == "PUT":
        fields = group_fields(call.body())
        change = lambda current: service.GroupChange(fields, replace=fields["members"])  # noqa: E731
    elif method == "PATCH":
        change = _patched(patch.operations(call.body()), str(pk_value))
    else:
        raise call.method_not_allowed()
    updated = service.group_update(org=call.org, actor=call.actor, pk=pk_value, change=change,
                                   accepts=call.accepts, method=method)
    if method == "PATCH" and not call.request.GET.get("attributes") and not call.request.GET.get(
            "excludedAttributes"):
        # RFC 7644 §3.5.2: 204 when the client did not ask for the resource; IdPs that push
        # thousands of member changes do not want the whole member list back each time.
        response = HttpResponse(status=204)
        response["ETag"] = etag(updated.version)
        return response
    return _group_response(call, updated)
