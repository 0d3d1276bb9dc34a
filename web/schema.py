"""The OpenAPI description of the whole product, for drf-spectacular.

The admin API is made of DRF views, which drf-spectacular describes itself; `admin_api_tags` (a
postprocessing hook) files each of its operations under its resource family's tag and adds the
error answers every one of them can give (web.api_errors). The protocol endpoints (OAuth 2.0, SCIM
2.0, trust signals, AuthZEN, the SSO endpoints IdPs call) are plain Django views, which
drf-spectacular does not walk: their operations are written out as OpenAPI path items in
iam_project.openapi and added by its postprocessing hook, with the shared pieces defined here
(security schemes, the error bodies of each surface, small builders). tests/web/test_openapi_coverage.py
checks every routed API and protocol surface against the schema, and the schema against what the views
answer.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "rbac.authentication.ApiKeyAuthentication"
    name = "orgApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "iamk_<lookup id>_<secret>",
            "description": "An org API key. It acts only in its own org and holds exactly the "
            "permissions it was minted with.",
        }


class AgentTokenAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "agents.authentication.AgentTokenAuthentication"
    name = "agentToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT (RFC 9068)",
            "description": "An agent's capability token from /oauth/{org}/token, issued for the audience "
            "{BASE}/api/v1/orgs/{org}/. Scopes that name catalogue permissions are what it may do.",
        }


# --- the protocol endpoints' security schemes -------------------------------------------------
# OpenAPI has no scheme for credentials in a form body (client_secret_post, RFC 6749 §2.3.1): the
# operations that also take them list the empty requirement `{}` beside HTTP Basic and describe
# `client_id` and `client_secret` in their request bodies.
AGENT_CLIENT, CONNECTION_CLIENT, SCIM_TOKEN = "agentClient", "connectionClient", "scimToken"
PROTOCOL_SECURITY_SCHEMES = {
    AGENT_CLIENT: {
        "type": "http", "scheme": "basic",
        "description": "An agent's `client_id` and `client_secret` (client_secret_basic, RFC 6749 "
        "§2.3.1: each form-urlencoded, then base64). Where the operation also lists no requirement "
        "(`{}`), the same two values may travel as form fields instead (client_secret_post), never both.",
    },
    CONNECTION_CLIENT: {
        "type": "http", "scheme": "basic",
        "description": "A connection's (downstream service's) `client_id` and `client_secret`, the "
        "credentials it was given when it was registered (`POST connections`), over HTTP Basic.",
    },
    SCIM_TOKEN: {
        "type": "http", "scheme": "bearer", "bearerFormat": "SCIM token",
        "description": "A SCIM token of the org (`POST scim-tokens` or Provisioning → SCIM tokens); "
        "the token alone decides the org a request acts in.",
    },
}

# --- the error bodies, one per surface ----------------------------------------------------------
SCIM_ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
ERROR_SCHEMAS = {
    "AdminError": {
        "type": "object",
        "description": "Every admin API error (web.api_errors).",
        "required": ["error", "detail"],
        "properties": {
            "error": {"type": "string", "description": "A stable code, e.g. `validation_error`, "
                      "`not_authenticated`, `permission_denied`, `not_found`, `throttled`."},
            "detail": {"type": "string", "description": "A message for a person."},
            "fields": {"type": "object", "additionalProperties": True,
                       "description": "Validation errors only: the messages for each field."},
        },
    },
    "OAuthError": {
        "type": "object",
        "description": "An RFC 6749 §5.2 error body, never cached (`Cache-Control: no-store`). A 401 "
        "carries `WWW-Authenticate: Basic`, a 429 `Retry-After`. The signals and AuthZEN endpoints "
        "answer in the same shape.",
        "required": ["error", "error_description"],
        "properties": {
            "error": {"type": "string", "description": "`invalid_request`, `invalid_client`, "
                      "`invalid_grant`, `unauthorized_client`, `unsupported_grant_type`, "
                      "`invalid_scope`, `invalid_target`, `authorization_pending`, `slow_down`, "
                      "`access_denied`, `expired_token`, `temporarily_unavailable`, ..."},
            "error_description": {"type": "string"},
        },
        "additionalProperties": True,
    },
    "ScimError": {
        "type": "object",
        "description": "An RFC 7644 §3.12 error (`application/scim+json`).",
        "required": ["schemas", "status", "detail"],
        "properties": {
            "schemas": {"type": "array", "items": {"type": "string", "enum": [SCIM_ERROR_SCHEMA]}},
            "status": {"type": "string", "description": "The HTTP status, as a string."},
            "scimType": {"type": "string", "description": "RFC 7644 Table 9, e.g. `invalidFilter`, "
                         "`invalidSyntax`, `invalidValue`, `uniqueness`, `mutability`."},
            "detail": {"type": "string"},
        },
    },
}


# --- builders for hand-written path items ---------------------------------------------------------
def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def body(schema: dict, *media_types: str, required: bool = True) -> dict:
    return {"required": required, "content": {media: {"schema": schema} for media in media_types}}


def answer(description: str, schema: dict | None = None, media_type: str = "application/json",
           headers: dict | None = None) -> dict:
    response = {"description": description}
    if schema is not None:
        response["content"] = {media_type: {"schema": schema}}
    if headers:
        response["headers"] = {name: {"schema": {"type": "string"}, "description": text}
                               for name, text in headers.items()}
    return response


def path_parameter(name: str, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"},
            "description": description}


def query_parameter(name: str, description: str, schema: dict | None = None) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema or {"type": "string"},
            "description": description}


# --- the admin API: tags and error answers --------------------------------------------------------
# Each admin resource's family. A resource missing here keeps drf-spectacular's default tag, which
# the declared tag list does not hold, so tests/web/test_openapi_coverage.py fails.
ADMIN_TAGS = {
    "members": "Members", "teams": "Teams", "roles": "Roles", "permissions": "Roles",
    "api-keys": "API keys", "agents": "Agents", "connections": "Connections",
    "delegations": "Delegation", "runs": "Dispatch", "approvals": "Dispatch", "trust-gates": "Dispatch",
    "trust-roots": "Trust", "trust-policy": "Trust", "audit": "Audit", "exports": "Audit",
    "scim-tokens": "Provisioning", "scim-mappings": "Provisioning", "scim-groups": "Provisioning",
    "sso-connections": "SSO", "domains": "SSO", "security-policy": "Security policy",
}
# Sub-resources that belong to another family than their parent.
ADMIN_SUBRESOURCE_TAGS = {("agents", "attestations"): "Trust", ("agents", "trust"): "Trust"}
ADMIN_PREFIX = "/api/v1/orgs/{org}/"
ADMIN_ERRORS = {
    "400": "Invalid input (`validation_error` with `fields`) or a refusal of the service.",
    "401": "No credentials, or credentials that are not valid.",
    "403": "The caller lacks the permission this operation needs.",
    "404": "No such object in this org (also another org's object, or an API key of another org).",
    "429": "Too many requests (`Retry-After`).",
}
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def admin_api_tags(result, generator, request, public):
    """POSTPROCESSING_HOOK: each admin API operation under its family's tag, with the error answers
    (`AdminError`) it can give beside the ones drf-spectacular found."""
    result.setdefault("components", {}).setdefault("schemas", {})["AdminError"] = ERROR_SCHEMAS["AdminError"]
    for path, item in result.get("paths", {}).items():
        if not path.startswith(ADMIN_PREFIX):
            continue
        segments = path[len(ADMIN_PREFIX):].split("/")
        sub = segments[2] if len(segments) > 2 else None
        tag = ADMIN_SUBRESOURCE_TAGS.get((segments[0], sub)) or ADMIN_TAGS.get(segments[0])
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            if tag is not None:
                operation["tags"] = [tag]
            responses = operation.setdefault("responses", {})
            for status, description in ADMIN_ERRORS.items():
                if status == "400" and method in ("get", "delete"):
                    continue
                responses.setdefault(status, answer(description, ref("AdminError")))
    return result
