"""The discovery documents (RFC 7644 §4): what this server supports, exactly.

Schemas come from scim2-models' definitions of the RFC 7643 schemas, cut down to the attributes we
store: a client (or a compliance checker) that reads them and sends what they list gets every
value back.
"""

import functools

import scim2_models as sm
from django.conf import settings

from scim.protocol.dispatch import MAX_BODY, scim_json, scim_view
from scim.protocol.errors import ScimError, not_found
from scim.protocol.filters import ENTERPRISE, GROUP_CORE, USER_CORE
from scim.protocol.resources import base_url

LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"

USER_ATTRIBUTES = {"userName", "name", "displayName", "nickName", "profileUrl", "title", "userType",
                   "preferredLanguage", "locale", "timezone", "active", "password", "emails",
                   "phoneNumbers", "addresses", "groups"}
SUB_ATTRIBUTES = {
    "emails": {"value", "type", "primary", "display"},
    "phoneNumbers": {"value", "type", "primary", "display"},
    "addresses": {"formatted", "streetAddress", "locality", "region", "postalCode", "country", "type",
                  "primary"},
    "groups": {"value", "$ref", "display", "type"},
    "members": {"value", "$ref", "display", "type"},
}


def service_provider_config() -> dict:
    return {
        "schemas": [SPC_SCHEMA],
        "documentationUri": f"{settings.IAM_CANONICAL_ORIGIN.rstrip('/')}/api/docs/",
        "patch": {"supported": True},
        # No Bulk endpoint; maxPayloadSize is still the largest body any endpoint reads (413 above it).
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": MAX_BODY},
        "filter": {"supported": True, "maxResults": settings.IAM_SCIM_MAX_PAGE},
        "changePassword": {"supported": True},
        "sort": {"supported": True},
        "etag": {"supported": True},
        "authenticationSchemes": [{
            "type": "oauthbearertoken", "name": "OAuth Bearer Token", "primary": True,
            "description": "A SCIM token issued to the organization (Provisioning → SCIM tokens).",
            "specUri": "https://www.rfc-editor.org/rfc/rfc6750",
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": f"{base_url()}/ServiceProviderConfig"},
    }


def resource_types() -> list[dict]:
    return [
        {"schemas": [RESOURCE_TYPE_SCHEMA], "id": "User", "name": "User", "endpoint": "/Users",
         "description": "A person in this organization", "schema": USER_CORE,
         "schemaExtensions": [{"schema": ENTERPRISE, "required": False}],
         "meta": {"resourceType": "ResourceType", "location": f"{base_url()}/ResourceTypes/User"}},
        {"schemas": [RESOURCE_TYPE_SCHEMA], "id": "Group", "name": "Group", "endpoint": "/Groups",
         "description": "A group of people, which group mappings can turn into roles and teams",
         "schema": GROUP_CORE,
         "meta": {"resourceType": "ResourceType", "location": f"{base_url()}/ResourceTypes/Group"}},
    ]


def _trim(attributes: list[dict], keep: set[str] | None) -> list[dict]:
    kept = []
    for attribute in attributes:
        if keep is not None and attribute["name"] not in keep:
            continue
        attribute = dict(attribute)
        if attribute["name"] in SUB_ATTRIBUTES and attribute.get("subAttributes"):
            attribute["subAttributes"] = [s for s in attribute["subAttributes"]
                                          if s["name"] in SUB_ATTRIBUTES[attribute["name"]]]
        kept.append(attribute)
    return kept


@functools.cache
def _schema_documents() -> tuple[dict, ...]:
    context = sm.Context.RESOURCE_QUERY_RESPONSE
    user = sm.User.to_schema().model_dump(scim_ctx=context)
    user["attributes"] = _trim(user["attributes"], USER_ATTRIBUTES)
    enterprise = sm.EnterpriseUser.to_schema().model_dump(scim_ctx=context)
    group = sm.Group.to_schema().model_dump(scim_ctx=context)
    group["attributes"] = _trim(group["attributes"], {"displayName", "members"})
    return user, enterprise, group


def schemas() -> list[dict]:
    documents = []
    for document in _schema_documents():
        document = dict(document)
        document["meta"] = {"resourceType": "Schema", "location": f"{base_url()}/Schemas/{document['id']}"}
        documents.append(document)
    return documents


def list_response(resources: list, total: int, start_index: int = 1) -> dict:
    return {"schemas": [LIST_SCHEMA], "totalResults": total, "startIndex": start_index,
            "itemsPerPage": len(resources), "Resources": resources}


# --- the discovery endpoints ------------------------------------------------------------------------

@scim_view
def service_provider_config_endpoint(call):
    if call.request.method != "GET":
        raise call.method_not_allowed()
    return scim_json(200, service_provider_config())


@scim_view
def resource_types_endpoint(call, name=None):
    if call.request.method != "GET":
        raise call.method_not_allowed()
    types = resource_types()
    if name is None:
        return scim_json(200, list_response(types, len(types)))
    found = next((t for t in types if t["id"] == name), None)
    if found is None:
        raise not_found("ResourceType")
    return scim_json(200, found)


@scim_view
def schemas_endpoint(call, urn=None):
    if call.request.method != "GET":
        raise call.method_not_allowed()
    documents = schemas()
    if urn is None:
        return scim_json(200, list_response(documents, len(documents)))
    found = next((d for d in documents if d["id"] == urn), None)
    if found is None:
        raise not_found("Schema")
    return scim_json(200, found)


@scim_view
def unsupported(call, **_):
    raise ScimError(501, "Not supported by this server (see ServiceProviderConfig).")


@scim_view
def unknown(call, **_):
    raise not_found("Endpoint")
