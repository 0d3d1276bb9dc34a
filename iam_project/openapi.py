"""The protocol endpoints in the OpenAPI schema: OAuth 2.0 (with delegation and the agent's view of
its runs), trust signals, AuthZEN, SCIM 2.0 and the SSO endpoints an IdP calls.

They are plain Django views (their wire formats are fixed by RFCs and they authenticate their
callers themselves), which drf-spectacular does not walk, so each operation is written out here as
an OpenAPI path item and `protocol_paths`, a postprocessing hook, adds them with their components.
The values the views check (grant types, token types, signal types and severities, run states,
AuthZEN semantics, SCIM's schema URNs) are read from the code, not copied. A route that is served
but not described here, or described with a method it does not serve, fails
tests/web/test_openapi_coverage.py, which also compares the documented security with what each view
answers a caller without credentials.
"""

from agents import exchange
from agents.models import RunStatus
from agents.oauth import GRANT_TYPES
from scim.protocol.discovery import LIST_SCHEMA, RESOURCE_TYPE_SCHEMA, SPC_SCHEMA
from scim.protocol.errors import CONTENT_TYPE as SCIM_JSON
from scim.protocol.filters import ENTERPRISE, GROUP_CORE, USER_CORE
from scim.protocol.listing import SEARCH_SCHEMA
from scim.protocol.patch import PATCH_SCHEMA
from trust.api import AUTHZEN_MAX_EVALUATIONS, AUTHZEN_SEMANTICS
from trust.models import Severity, SignalType
from web.schema import (
    AGENT_CLIENT,
    CONNECTION_CLIENT,
    ERROR_SCHEMAS,
    PROTOCOL_SECURITY_SCHEMES,
    SCIM_TOKEN,
    answer,
    body,
    path_parameter,
    query_parameter,
    ref,
)

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
ORG = path_parameter("org", "The org's slug; the issuer is `{BASE}/oauth/{org}`.")
PUBLIC = [{}]
# client_secret_basic, or client_secret_post (the empty requirement: the credentials are form fields).
AGENT_BASIC_OR_POST = [{AGENT_CLIENT: []}, {}]
CONNECTION_BASIC_OR_POST = [{CONNECTION_CLIENT: []}, {}]

NO_STORE = {"Cache-Control": "`no-store`", "Pragma": "`no-cache`"}


def _oauth_errors(*statuses: int) -> dict:
    texts = {
        400: "RFC 6749 §5.2 error (`invalid_request`, `invalid_grant`, `invalid_scope`, ...).",
        401: "`invalid_client`: the client could not be authenticated (`WWW-Authenticate: Basic`).",
        404: "`not_found`.",
        405: "The method is not allowed here.",
        413: "`invalid_request`: the request body is too large.",
        429: "`slow_down`: too many requests (`Retry-After: 60`).",
        503: "`temporarily_unavailable`: try again shortly.",
    }
    return {str(status): answer(texts[status], ref("OAuthError")) for status in statuses}


CLIENT_FIELDS = {
    "client_id": {"type": "string", "description": "client_secret_post only (else HTTP Basic)."},
    "client_secret": {"type": "string", "format": "password",
                      "description": "client_secret_post only, never together with HTTP Basic."},
}


def _form(properties: dict, required: tuple = (), *, client_fields: bool = True) -> dict:
    schema = {"type": "object", "properties": {**properties, **(CLIENT_FIELDS if client_fields else {})}}
    if required:
        schema["required"] = list(required)
    return body(schema, FORM)


def _operation(tag: str, operation_id: str, summary: str, description: str, security: list, responses: dict,
               *, request: dict | None = None, parameters: list | None = None) -> dict:
    operation = {"tags": [tag], "operationId": operation_id, "summary": summary, "description": description,
                 "security": security, "responses": responses}
    if request is not None:
        operation["requestBody"] = request
    if parameters:
        operation["parameters"] = parameters
    return operation


# --- OAuth 2.0 ----------------------------------------------------------------------------------
OAUTH_SCHEMAS = {
    "TokenResponse": {
        "type": "object", "required": ["access_token", "token_type", "expires_in", "scope"],
        "properties": {
            "access_token": {"type": "string", "description": "A JWT per RFC 9068 (`typ: at+jwt`)."},
            "token_type": {"type": "string", "enum": ["Bearer"]},
            "expires_in": {"type": "integer"},
            "scope": {"type": "string", "description": "The granted scopes, space-separated."},
            "issued_token_type": {"type": "string", "enum": [exchange.ACCESS_TOKEN_TYPE],
                                  "description": "Token exchange only (RFC 8693 §2.2.1)."},
            "refresh_token": {"type": "string", "description": "Device code and refresh token grants, "
                              "unless the org's policy forbids it; rotated on every use."},
        },
    },
    "IntrospectionResponse": {
        "type": "object", "required": ["active"],
        "description": "RFC 7662 §2.2. A token of another org or audience, revoked, expired or not a "
        "token at all is `{\"active\": false}` and nothing else.",
        "properties": {
            "active": {"type": "boolean"},
            "token_type": {"type": "string", "enum": ["Bearer"]},
            "scope": {"type": "string"},
            "client_id": {"type": "string"},
            "sub": {"type": "string", "description": "`agent:<id>` or, for a delegated token, `user:<id>`."},
            "aud": {"type": "string"},
            "iss": {"type": "string"},
            "exp": {"type": "integer"}, "iat": {"type": "integer"}, "nbf": {"type": "integer"},
            "jti": {"type": "string"},
            "org": {"type": "string", "description": "The org's slug."},
            "run": {"type": "string", "description": "The task run the token is bound to."},
            "act": {"type": "object", "additionalProperties": True,
                    "description": "RFC 8693 §4.1, exactly as the token carries it."},
            "may_act": {"type": "object", "additionalProperties": True,
                        "description": "RFC 8693 §4.4: the one agent that may exchange the token."},
            "delegation": {"type": "string", "description": "The delegation a person granted."},
        },
    },
    "AuthorizationServerMetadata": {
        "type": "object", "description": "RFC 8414 §2.",
        "required": ["issuer", "token_endpoint", "jwks_uri", "introspection_endpoint", "revocation_endpoint",
                     "grant_types_supported", "token_endpoint_auth_methods_supported"],
        "properties": {
            **{name: {"type": "string", "format": "uri"} for name in (
                "issuer", "token_endpoint", "jwks_uri", "introspection_endpoint", "revocation_endpoint",
                "device_authorization_endpoint")},
            **{name: {"type": "array", "items": {"type": "string"}} for name in (
                "grant_types_supported", "token_endpoint_auth_methods_supported",
                "introspection_endpoint_auth_methods_supported", "revocation_endpoint_auth_methods_supported",
                "response_types_supported", "scopes_supported",
                "token_endpoint_auth_signing_alg_values_supported")},
        },
    },
    "JWKS": {
        "type": "object", "required": ["keys"], "description": "RFC 7517 §5: the org's public signing "
        "keys, the current one and those still verifying tokens.",
        "properties": {"keys": {"type": "array", "items": {"type": "object", "additionalProperties": True,
                                                             "properties": {"kid": {"type": "string"},
                                                                            "kty": {"type": "string"},
                                                                            "alg": {"type": "string"},
                                                                            "use": {"type": "string"}}}}},
    },
    "DeviceAuthorizationResponse": {
        "type": "object", "description": "RFC 8628 §3.2.",
        "required": ["device_code", "user_code", "verification_uri", "verification_uri_complete",
                     "expires_in", "interval"],
        "properties": {
            "device_code": {"type": "string"}, "user_code": {"type": "string"},
            "verification_uri": {"type": "string", "format": "uri", "description": "`{BASE}/device/`."},
            "verification_uri_complete": {"type": "string", "format": "uri"},
            "expires_in": {"type": "integer"}, "interval": {"type": "integer"},
        },
    },
    "RunState": {
        "type": "object", "required": ["id", "status"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "status": {"type": "string", "enum": list(RunStatus.values)},
            "stop_by": {"type": "string", "format": "date-time",
                        "description": "While `stopping`: when the run is terminated."},
        },
    },
}

TOKEN_REQUEST = _form({
    "grant_type": {"type": "string", "enum": GRANT_TYPES},
    "scope": {"type": "string", "description": "Space-separated; at most the agent's (or the subject "
              "token's) scopes."},
    "resource": {"type": "string", "format": "uri", "description": "RFC 8707: a connection's audience."},
    "run": {"type": "string", "description": "client_credentials: bind the token to this run of the agent "
            "(`authorization_pending` while it waits for approval)."},
    "may_act": {"type": "string", "description": "The `client_id` of the one agent that may exchange the "
                "token (one the agent's owners allowed)."},
    "agent_version": {"type": "string", "description": "The agent's version, checked against its "
                      "approved versions."},
    "device_code": {"type": "string", "description": f"`{GRANT_TYPES[1]}` only (RFC 8628 §3.4)."},
    "refresh_token": {"type": "string", "description": "`refresh_token` grant only."},
    "subject_token": {"type": "string", "description": "Token exchange (RFC 8693): an access token of "
                      "this issuer."},
    "subject_token_type": {"type": "string", "enum": [exchange.ACCESS_TOKEN_TYPE]},
    "actor_token": {"type": "string"},
    "actor_token_type": {"type": "string", "enum": [exchange.ACCESS_TOKEN_TYPE]},
    "audience": {"type": "string", "description": "Token exchange: instead of `resource`."},
}, ("grant_type",))

OAUTH_PATHS = {
    "/oauth/{org}/token": {"parameters": [ORG], "post": _operation(
        "OAuth 2.0", "oauth_token", "Token endpoint (RFC 6749)",
        "Grants: `client_credentials`; the device code grant (RFC 8628) and `refresh_token` for a "
        "person's delegation; token exchange (RFC 8693) for an agent acting on another's token, whose "
        "refusals follow RFC 8693 §2.2.2 (`invalid_request`, `invalid_scope`, `invalid_target`). "
        "Parameters travel in the body only.",
        AGENT_BASIC_OR_POST,
        {"200": answer("The token.", ref("TokenResponse"), headers=NO_STORE), **_oauth_errors(
            400, 401, 405, 413, 429, 503)},
        request=TOKEN_REQUEST)},
    "/oauth/{org}/introspect": {"parameters": [ORG], "post": _operation(
        "OAuth 2.0", "oauth_introspect", "Token introspection (RFC 7662)",
        "A connection learns about tokens for its own audience in its own org.",
        CONNECTION_BASIC_OR_POST,
        {"200": answer("The token's state.", ref("IntrospectionResponse"), headers=NO_STORE),
         **_oauth_errors(400, 401, 405, 413)},
        request=_form({"token": {"type": "string"}}, ("token",)))},
    "/oauth/{org}/revoke": {"parameters": [ORG], "post": _operation(
        "OAuth 2.0", "oauth_revoke", "Token revocation (RFC 7009)",
        "An agent revokes one of its access or refresh tokens; an unknown or foreign token also gets 200.",
        AGENT_BASIC_OR_POST,
        {"200": answer("Revoked (or nothing to revoke).", {"type": "object"}, headers=NO_STORE),
         **_oauth_errors(400, 401, 405, 413, 503)},
        request=_form({"token": {"type": "string", "description": "An access token or a refresh "
                                 "token of this agent."}}, ("token",)))},
    "/.well-known/oauth-authorization-server/oauth/{org}": {"parameters": [ORG], "get": _operation(
        "OAuth 2.0", "oauth_metadata", "Authorization server metadata (RFC 8414)",
        "The issuer's endpoints and what they support; cacheable for five minutes.", PUBLIC,
        {"200": answer("The metadata.", ref("AuthorizationServerMetadata")),
         **_oauth_errors(404, 405)})},
    "/oauth/{org}/jwks.json": {"parameters": [ORG], "get": _operation(
        "OAuth 2.0", "oauth_jwks", "The issuer's signing keys (JWKS, RFC 7517)",
        "Verify capability tokens with the key the token header's `kid` names.", PUBLIC,
        {"200": answer("The key set.", ref("JWKS")), **_oauth_errors(404, 405)})},
    "/oauth/{org}/device_authorization": {"parameters": [ORG], "post": _operation(
        "Delegation", "oauth_device_authorization", "Device authorization (RFC 8628)",
        "An agent asks a person to act for them: the person enters `user_code` at `verification_uri` "
        "while the agent polls the token endpoint with the device code grant.",
        AGENT_BASIC_OR_POST,
        {"200": answer("The codes.", ref("DeviceAuthorizationResponse"), headers=NO_STORE),
         **_oauth_errors(400, 401, 405, 413, 429, 503)},
        request=_form({"scope": {"type": "string"}, "resource": {"type": "string", "format": "uri"}}))},
    "/oauth/{org}/runs/{run_id}": {
        "parameters": [ORG, path_parameter("run_id", "The run's id.")],
        "get": _operation(
            "Dispatch", "oauth_run_state", "The agent reads its run",
            "A suspended or contained agent still learns that its runs have ended. Another agent's run, "
            "or another org's, is a 404 like an unknown one.",
            [{AGENT_CLIENT: []}],
            {"200": answer("The run's state.", ref("RunState"), headers=NO_STORE),
             **_oauth_errors(401, 404, 405, 429, 503)})},
}

# --- trust signals and AuthZEN ------------------------------------------------------------------
TRUST_SCHEMAS = {
    "Signal": {
        "type": "object", "required": ["agent", "type", "severity"],
        "properties": {
            "agent": {"type": "string", "description": "The agent's `client_id`; it must call this service."},
            "type": {"type": "string", "enum": list(SignalType.values)},
            "severity": {"type": "string", "enum": list(Severity.values)},
        },
    },
    "AuthzenEntity": {"type": "object", "properties": {
        "type": {"type": "string"}, "id": {"type": "string"},
        "properties": {"type": "object", "additionalProperties": True}}},
    "AuthzenEvaluation": {
        "type": "object", "required": ["subject", "action", "resource"],
        "description": "Only `subject {type: \"agent\", id: <client_id>}`, `action {name: \"dispatch\"}` "
        "and `resource {type: \"operation\", id: <operation>}` are evaluated; others are refused in "
        "the decision's context.",
        "properties": {
            "subject": ref("AuthzenEntity"),
            "action": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
            "resource": ref("AuthzenEntity"),
            "context": {"type": "object", "additionalProperties": True},
        },
    },
    "AuthzenEvaluations": {
        "type": "object",
        "description": "The top-level entities are defaults for each evaluation; without `evaluations` "
        "the request is one evaluation.",
        "properties": {
            "subject": ref("AuthzenEntity"), "resource": ref("AuthzenEntity"),
            "action": {"type": "object", "properties": {"name": {"type": "string"}}},
            "context": {"type": "object", "additionalProperties": True},
            "evaluations": {"type": "array", "maxItems": AUTHZEN_MAX_EVALUATIONS,
                            "items": {"type": "object", "additionalProperties": True}},
            "options": {"type": "object", "properties": {
                "evaluations_semantic": {"type": "string", "enum": list(AUTHZEN_SEMANTICS)}}},
        },
    },
    "AuthzenDecision": {
        "type": "object", "required": ["decision"],
        "properties": {
            "decision": {"type": "boolean", "description": "`true` only when dispatch would be allowed."},
            "context": {"type": "object", "additionalProperties": True, "description": "`id`, `outcome` "
                        "(allow, escalate, block), `trust`, `reasons`, `reason_admin`, `reason_user`."},
        },
    },
    "AuthzenMetadata": {
        "type": "object",
        "properties": {name: {"type": "string", "format": "uri"} for name in (
            "policy_decision_point", "access_evaluation_endpoint", "access_evaluations_endpoint")},
    },
}

TRUST_PATHS = {
    "/oauth/{org}/signals": {"parameters": [ORG], "post": _operation(
        "Trust signals", "trust_signal_report", "A downstream service reports what an agent did",
        "Authenticated as the connection (its introspection credentials, HTTP Basic). The scorer weighs "
        "the signal by its type and severity.",
        [{CONNECTION_CLIENT: []}],
        {"202": answer("Recorded.", {"type": "object", "properties": {"id": {"type": "string"}}},
                       headers=NO_STORE),
         **_oauth_errors(400, 401, 405, 413, 429, 503)},
        request=body(ref("Signal"), JSON))},
    "/authzen/{org}/access/v1/evaluation": {"parameters": [ORG], "post": _operation(
        "AuthZEN", "authzen_evaluation", "Access evaluation (AuthZEN 1.0)",
        "May this agent be dispatched for this operation now? Every evaluation is on record.",
        [{CONNECTION_CLIENT: []}],
        {"200": answer("The decision.", ref("AuthzenDecision"), headers=NO_STORE),
         **_oauth_errors(400, 401, 405, 429, 503)},
        request=body(ref("AuthzenEvaluation"), JSON))},
    "/authzen/{org}/access/v1/evaluations": {"parameters": [ORG], "post": _operation(
        "AuthZEN", "authzen_evaluations", "Access evaluations, boxcarred (AuthZEN 1.0)",
        f"At most {AUTHZEN_MAX_EVALUATIONS} evaluations, each counted against the connection's limit.",
        [{CONNECTION_CLIENT: []}],
        {"200": answer("One decision per evaluation, in order (fewer when a semantic stopped early).",
                       {"type": "object", "properties": {"evaluations": {
                           "type": "array", "items": ref("AuthzenDecision")}}}, headers=NO_STORE),
         **_oauth_errors(400, 401, 405, 429, 503)},
        request=body(ref("AuthzenEvaluations"), JSON))},
    "/.well-known/authzen-configuration/authzen/{org}": {"parameters": [ORG], "get": _operation(
        "AuthZEN", "authzen_metadata", "Policy decision point metadata (AuthZEN)",
        "Cacheable for five minutes.", PUBLIC,
        {"200": answer("The metadata.", ref("AuthzenMetadata")), **_oauth_errors(404, 405)})},
}

# --- SCIM 2.0 -------------------------------------------------------------------------------------
SCIM_SCHEMAS = {
    "ScimMeta": {"type": "object", "readOnly": True, "properties": {
        "resourceType": {"type": "string"}, "created": {"type": "string", "format": "date-time"},
        "lastModified": {"type": "string", "format": "date-time"},
        "location": {"type": "string", "format": "uri"}, "version": {"type": "string"}}},
    "ScimUser": {
        "type": "object", "required": ["userName"], "additionalProperties": True,
        "description": f"RFC 7643 §4.1 (`{USER_CORE}`) with the enterprise extension (`{ENTERPRISE}`); "
        "`GET /Schemas` lists exactly the attributes kept.",
        "properties": {
            "schemas": {"type": "array", "items": {"type": "string"}},
            "id": {"type": "string", "readOnly": True}, "externalId": {"type": "string"},
            "userName": {"type": "string"}, "displayName": {"type": "string"}, "active": {"type": "boolean"},
            "name": {"type": "object", "additionalProperties": True},
            "emails": {"type": "array", "items": {"type": "object", "additionalProperties": True}},
            "groups": {"type": "array", "readOnly": True, "items": {"type": "object",
                                                                     "additionalProperties": True}},
            "password": {"type": "string", "writeOnly": True},
            ENTERPRISE: {"type": "object", "additionalProperties": True},
            "meta": ref("ScimMeta"),
        },
    },
    "ScimGroup": {
        "type": "object", "required": ["displayName"], "additionalProperties": True,
        "description": f"RFC 7643 §4.2 (`{GROUP_CORE}`).",
        "properties": {
            "schemas": {"type": "array", "items": {"type": "string"}},
            "id": {"type": "string", "readOnly": True}, "externalId": {"type": "string"},
            "displayName": {"type": "string"},
            "members": {"type": "array", "items": {
                "type": "object", "additionalProperties": True,
                "properties": {"value": {"type": "string"}, "display": {"type": "string"}}}},
            "meta": ref("ScimMeta"),
        },
    },
    "ScimListResponse": {
        "type": "object", "required": ["schemas", "totalResults", "Resources"],
        "properties": {
            "schemas": {"type": "array", "items": {"type": "string", "enum": [LIST_SCHEMA]}},
            "totalResults": {"type": "integer"}, "startIndex": {"type": "integer"},
            "itemsPerPage": {"type": "integer"},
            "Resources": {"type": "array", "items": {"type": "object", "additionalProperties": True}},
        },
    },
    "ScimSearchRequest": {
        "type": "object", "description": "RFC 7644 §3.4.3.",
        "properties": {
            "schemas": {"type": "array", "items": {"type": "string", "enum": [SEARCH_SCHEMA]}},
            "filter": {"type": "string"}, "startIndex": {"type": "integer"}, "count": {"type": "integer"},
            "sortBy": {"type": "string"},
            "sortOrder": {"type": "string", "enum": ["ascending", "descending"]},
            "attributes": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            "excludedAttributes": {"oneOf": [{"type": "string"}, {"type": "array",
                                                                   "items": {"type": "string"}}]},
        },
    },
    "ScimPatchOp": {
        "type": "object", "required": ["schemas", "Operations"], "description": "RFC 7644 §3.5.2; paths "
        "may be value-filtered, e.g. `members[value eq \"...\"]`.",
        "properties": {
            "schemas": {"type": "array", "items": {"type": "string", "enum": [PATCH_SCHEMA]}},
            "Operations": {"type": "array", "items": {"type": "object", "required": ["op"], "properties": {
                "op": {"type": "string", "description": "`add`, `remove` or `replace` (any case)."},
                "path": {"type": "string"}, "value": {}}}},
        },
    },
    "ScimServiceProviderConfig": {"type": "object", "additionalProperties": True, "properties": {
        "schemas": {"type": "array", "items": {"type": "string", "enum": [SPC_SCHEMA]}},
        **{name: {"type": "object", "additionalProperties": True} for name in (
            "patch", "bulk", "filter", "changePassword", "sort", "etag")},
        "authenticationSchemes": {"type": "array",
                                  "items": {"type": "object", "additionalProperties": True}}}},
    "ScimResourceType": {"type": "object", "additionalProperties": True, "properties": {
        "schemas": {"type": "array", "items": {"type": "string", "enum": [RESOURCE_TYPE_SCHEMA]}},
        "id": {"type": "string"}, "name": {"type": "string"}, "endpoint": {"type": "string"},
        "schema": {"type": "string"}, "schemaExtensions": {"type": "array", "items": {"type": "object"}}}},
    "ScimSchema": {"type": "object", "additionalProperties": True, "description": "RFC 7643 §7.",
                   "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                                  "attributes": {"type": "array", "items": {"type": "object"}}}},
}

SCIM_ERROR_TEXTS = {
    400: "Invalid syntax, filter or value (`scimType` says which).",
    401: "No SCIM token, or not a valid one.",
    404: "No such resource in the token's org.", 405: "The method is not supported here.",
    409: "`uniqueness`, or `mutability` (the org's last owner).", 412: "`If-Match` names another version.",
    413: "The request body is too large.", 429: "Too many requests (`Retry-After`).",
    503: "Try again shortly (`Retry-After`).",
}
ETAG = {"ETag": "The resource's version (weak validator)."}
PROJECTION = [query_parameter("attributes", "Comma-separated attributes to return."),
              query_parameter("excludedAttributes", "Comma-separated attributes to leave out.")]
LISTING = [
    query_parameter("filter", "RFC 7644 §3.4.2.2, e.g. `userName eq \"ada@example.com\"`."),
    query_parameter("startIndex", "1-based.", {"type": "integer", "minimum": 1}),
    query_parameter("count", "Page size (bounded by the server's maximum).",
                    {"type": "integer", "minimum": 0}),
    query_parameter("sortBy", "An attribute path."),
    query_parameter("sortOrder", "", {"type": "string", "enum": ["ascending", "descending"]}),
    *PROJECTION,
]
IF_MATCH = {"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"},
            "description": "Only if the resource is still at this version (else 412)."}
IF_NONE_MATCH = {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"},
                 "description": "304 when the resource is still at this version."}


def _scim_errors(*statuses: int) -> dict:
    return {str(status): answer(SCIM_ERROR_TEXTS[status], ref("ScimError"), SCIM_JSON)
            for status in (401, 429, 503, *statuses)}


def _scim(operation_id: str, summary: str, responses: dict, *, request: str | None = None,
          parameters: list | None = None, description: str = "") -> dict:
    return _operation("SCIM 2.0", operation_id, summary, description, [{SCIM_TOKEN: []}], responses,
                      request=body(ref(request), SCIM_JSON, JSON) if request else None, parameters=parameters)


def _scim_ok(description: str, schema: str, status: int = 200, headers: dict | None = None) -> dict:
    return {str(status): answer(description, ref(schema), SCIM_JSON, headers)}


def _scim_resource_paths(plural: str, resource: str) -> dict:
    name, one = f"/scim/v2/{plural}", f"/scim/v2/{plural}/{{pk}}"
    lower = plural.lower()
    return {
        name: {
            "get": _scim(f"scim_{lower}_list", f"List or filter {plural}",
                         {**_scim_ok("A page of them.", "ScimListResponse"), **_scim_errors(400)},
                         parameters=LISTING),
            "post": _scim(f"scim_{lower}_create", f"Create a {resource}",
                          {**_scim_ok("Created.", resource, 201, {**ETAG, "Location": "The resource's URL."}),
                           **_scim_errors(400, 409, 413)},
                          request=resource, parameters=PROJECTION),
        },
        f"{name}/.search": {"post": _scim(
            f"scim_{lower}_search", f"Search {plural} (POST)",
            {**_scim_ok("A page of them.", "ScimListResponse"), **_scim_errors(400, 413)},
            request="ScimSearchRequest")},
        one: {
            "parameters": [path_parameter("pk", f"The {resource}'s `id`.")],
            "get": _scim(f"scim_{lower}_read", f"Read a {resource}",
                         {**_scim_ok("The resource.", resource, headers=ETAG),
                          "304": answer("Not modified (`If-None-Match`)."), **_scim_errors(404)},
                         parameters=[*PROJECTION, IF_NONE_MATCH]),
            "put": _scim(f"scim_{lower}_replace", f"Replace a {resource}",
                         {**_scim_ok("Replaced.", resource, headers=ETAG),
                          **_scim_errors(400, 404, 409, 412, 413)},
                         request=resource, parameters=[*PROJECTION, IF_MATCH]),
            "patch": _scim(f"scim_{lower}_patch", f"Patch a {resource}",
                           {**_scim_ok("Patched.", resource, headers=ETAG),
                            **({"204": answer("Patched; the group is not returned unless `attributes` or "
                                              "`excludedAttributes` asks for it.", headers=ETAG)}
                               if resource == "ScimGroup" else {}),
                            **_scim_errors(400, 404, 409, 412, 413)},
                           request="ScimPatchOp", parameters=[*PROJECTION, IF_MATCH]),
            "delete": _scim(f"scim_{lower}_delete", f"Delete (deprovision) a {resource}",
                            {"204": answer("Deleted."), **_scim_errors(404, 409, 412)},
                            parameters=[IF_MATCH]),
        },
    }


SCIM_PATHS = {
    "/scim/v2/ServiceProviderConfig": {"get": _scim(
        "scim_service_provider_config", "What this server supports (RFC 7644 §5)",
        {**_scim_ok("The configuration.", "ScimServiceProviderConfig"), **_scim_errors()},
        description="Bulk is not supported: `/Bulk` (and `/Me`) answer 501.")},
    "/scim/v2/ResourceTypes": {"get": _scim(
        "scim_resource_types", "The resource types (User, Group)",
        {**_scim_ok("All of them.", "ScimListResponse"), **_scim_errors()})},
    "/scim/v2/ResourceTypes/{name}": {
        "parameters": [path_parameter("name", "`User` or `Group`.")],
        "get": _scim("scim_resource_type", "One resource type",
                     {**_scim_ok("The resource type.", "ScimResourceType"), **_scim_errors(404)})},
    "/scim/v2/Schemas": {"get": _scim(
        "scim_schemas", "The schemas (User, enterprise User, Group), cut to the attributes kept",
        {**_scim_ok("All of them.", "ScimListResponse"), **_scim_errors()})},
    "/scim/v2/Schemas/{urn}": {
        "parameters": [path_parameter("urn", "The schema's URN, e.g. `" + USER_CORE + "`.")],
        "get": _scim("scim_schema", "One schema",
                     {**_scim_ok("The schema.", "ScimSchema"), **_scim_errors(404)})},
    **_scim_resource_paths("Users", "ScimUser"),
    **_scim_resource_paths("Groups", "ScimGroup"),
    "/scim/v2/.search": {"post": _scim(
        "scim_search", "Search Users and then Groups (RFC 7644 §3.4.3)",
        {**_scim_ok("A page of them.", "ScimListResponse"), **_scim_errors(400, 413)},
        request="ScimSearchRequest")},
}

# --- SSO: the endpoints an IdP calls --------------------------------------------------------------
SSO_PARAMETERS = [path_parameter("org", "The org's slug."),
                  path_parameter("connection", "The SSO connection's slug.")]
SSO_PATHS = {
    "/sso/{org}/{connection}/saml/metadata/": {"parameters": SSO_PARAMETERS, "get": _operation(
        "SSO", "sso_saml_metadata", "SAML service provider metadata",
        "The SP's entity id, ACS URL and signing certificate, for the IdP.", PUBLIC,
        {"200": answer("The metadata.", {"type": "string"}, "application/samlmetadata+xml"),
         "404": answer("No such SAML connection (an HTML page)."),
         "405": answer("Use GET.")})},
    "/sso/{org}/{connection}/oidc/backchannel-logout/": {"parameters": SSO_PARAMETERS, "post": _operation(
        "SSO", "sso_oidc_backchannel_logout", "OpenID Connect back-channel logout",
        "The provider ends the sessions its signed `logout_token` names (the token is the credential).",
        PUBLIC,
        {"200": answer("The sessions ended.", {"type": "object", "properties": {
            "sessions_ended": {"type": "integer"}}}),
         "400": answer("The logout token was not accepted.", ref("OAuthError")),
         "404": answer("No such OIDC connection (an HTML page)."),
         "405": answer("Use POST.")},
        request=_form({"logout_token": {"type": "string", "description": "A JWT (OIDC Back-Channel "
                                        "Logout 1.0 §2.4)."}}, ("logout_token",), client_fields=False))},
}

PROTOCOL_PATHS = {**OAUTH_PATHS, **TRUST_PATHS, **SCIM_PATHS, **SSO_PATHS}
PROTOCOL_SCHEMAS = {**OAUTH_SCHEMAS, **TRUST_SCHEMAS, **SCIM_SCHEMAS,
                    "OAuthError": ERROR_SCHEMAS["OAuthError"], "ScimError": ERROR_SCHEMAS["ScimError"]}


def protocol_paths(result, generator, request, public):
    """POSTPROCESSING_HOOK: the protocol endpoints' operations, schemas and security schemes."""
    components = result.setdefault("components", {})
    components.setdefault("schemas", {}).update(PROTOCOL_SCHEMAS)
    components.setdefault("securitySchemes", {}).update(PROTOCOL_SECURITY_SCHEMES)
    paths = result.setdefault("paths", {})
    for path, item in PROTOCOL_PATHS.items():
        # drf-spectacular reads every member of a path item as an operation: the parameters shared
        # by a path's operations are written into each.
        shared = item.get("parameters", [])
        paths[path] = {method: {**operation, "parameters": [*shared, *operation.get("parameters", [])]}
                       if shared else operation
                       for method, operation in item.items() if method != "parameters"}
    return result
