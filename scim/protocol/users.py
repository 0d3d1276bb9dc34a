"""/Users: list, search, create, read, replace (PUT), patch and delete. Each write is one call of
scim.users, which owns the request's transaction and the row lock; a PATCH's operations are applied
by that service to the locked row (the `change` it is handed)."""

from django.http import HttpResponse

from scim import users as service
from scim.models import ScimUser
from scim.protocol import patch
from scim.protocol.dispatch import read_one, resource_id, resource_query, scim_json, scim_view
from scim.protocol.filters import USER_CORE
from scim.protocol.listing import list_params, list_users, search_params
from scim.protocol.projection import project
from scim.protocol.resources import user_fields, user_representation


def _user_response(call, scim_user: ScimUser, status: int = 200) -> HttpResponse:
    attributes, excluded = resource_query(call)
    body = project(user_representation(scim_user), attributes, excluded, USER_CORE)
    return scim_json(status, body, version=scim_user.version,
                     location=body.get("meta", {}).get("location") if status == 201 else None)


@scim_view
def users(call):
    if call.request.method == "GET":
        return list_users(call, list_params(call.request.GET))
    if call.request.method == "POST":
        scim_user = service.user_create(org=call.org, actor=call.actor, fields=user_fields(call.body()))
        return _user_response(call, scim_user, 201)
    raise call.method_not_allowed()


@scim_view
def users_search(call):
    if call.request.method != "POST":
        raise call.method_not_allowed()
    return list_users(call, search_params(call))


@scim_view
def user(call, pk):
    pk_value = resource_id(pk, "User")
    method = call.request.method
    if method == "GET":
        return read_one(call, ScimUser, pk_value, "User", _user_response)
    if method == "DELETE":
        service.user_delete(org=call.org, actor=call.actor, pk=pk_value, accepts=call.accepts)
        return HttpResponse(status=204)
    if method == "PUT":
        fields = user_fields(call.body())
        change = lambda current: fields  # noqa: E731
    elif method == "PATCH":
        ops = patch.operations(call.body())
        change = lambda current: user_fields(  # noqa: E731
            patch.apply_user(user_representation(current), ops, str(pk_value)))
    else:
        raise call.method_not_allowed()
    scim_user = service.user_update(org=call.org, actor=call.actor, pk=pk_value, change=change,
                                    accepts=call.accepts, method=method)
    return _user_response(call, scim_user)
