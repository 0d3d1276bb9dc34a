"""The OpenAPI schema describes the whole product as the views serve it: every routed API and
protocol surface with each method it answers, under a declared tag, with the security its view
asks for, and with the wire formats the endpoints really return."""

import functools
import json
import re
import uuid
from urllib.parse import urlencode

import jsonschema
import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.generators import SchemaGenerator

from agents.oauth import GRANT_TYPES
from scim.protocol.errors import ERROR_SCHEMA
from scim.protocol.filters import USER_CORE
from scim.tokens import scim_token_create
from tests.agents.conftest import FORM, basic, build_world

METHODS = ("get", "post", "put", "patch", "delete")

# Routes that are no API or protocol surface, by name: everything else the project routes must be
# in the schema. Each is a page for a person's browser or a step of a browser flow.
BROWSER_ROUTES = {
    *(f"accounts:{name}" for name in (
        "home", "login", "logout", "reauth", "sso-required", "password-change",  # sign-in pages
        "mfa-verify", "mfa-setup", "mfa-totp", "mfa-recovery-codes", "mfa-remove",  # second factors
        # WebAuthn ceremonies: JSON, but called by the sign-in and security pages' own script.
        "mfa-passkey", "mfa-passkey-register-options", "mfa-passkey-register-verify",
        "mfa-passkey-options", "mfa-passkey-verify",
        "password-reset", "password-reset-confirm", "password-reset-link",
        "sessions", "session-revoke", "sessions-revoke-others",  # the person's own sessions
        "invitation", "invitation-accept", "invitation-decline")),
    # RFC 8628's verification page and a person's own delegations.
    "agents:device", "agents:account-delegations", "agents:account-delegations-revoke",
    # SSO steps the person's browser takes (redirects to and from the IdP; SAML's ACS is the
    # HTTP-POST binding, a form the IdP's page posts from the browser).
    "sso:reauth", "sso:org-signin", "sso:oidc-login", "sso:oidc-callback", "sso:saml-login",
    "sso:saml-acs", "sso:saml-finish",
}
OTHER_ROUTES = {
    "healthz": "the load balancer's liveness probe, not part of the product's interface",
    "api-schema": "the schema itself", "api-docs": "the schema's browsable page",
    "scim:unsupported": "/Bulk and /Me: 501 to every method (ServiceProviderConfig says bulk is off)",
    "scim:unknown": "any other /scim/v2 path: SCIM's 404 to every method",
}
CONSOLE_PREFIX = "orgs/"  # the console's pages (web.routing.org_pages)


@functools.cache
def schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def _routes(patterns, prefix="", namespace=""):
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            inner = f"{pattern.namespace}:" if pattern.namespace else namespace
            yield from _routes(pattern.url_patterns, route, inner)
        elif isinstance(pattern, URLPattern):
            yield route, f"{namespace}{pattern.name}" if pattern.name else None, pattern.callback


def _candidates(route: str) -> list[str]:
    """The OpenAPI paths a route may be documented as (a regex's optional characters either way)."""
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", route.replace("^", "").replace("$", ""))
    path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", path).replace("\\.", ".")
    variants = [path]
    while any(re.search(r"[^)\]]\?", v) for v in variants):
        expanded = []
        for variant in variants:
            match = re.search(r"([^)\]])\?", variant)
            if match is None:
                expanded.append(variant)
                continue
            head, tail = variant[:match.start()], variant[match.end():]
            expanded += [head + match.group(1) + tail, head + tail]
        variants = expanded
    return ["/" + v for v in variants]


def _shape(path: str) -> str:
    return re.sub(r"\{\w+\}", "{}", path)


def surfaces():
    """(route, name, callback) of every routed API and protocol surface."""
    found = []
    for route, name, callback in _routes(get_resolver().url_patterns):
        if route.startswith(CONSOLE_PREFIX) or name in BROWSER_ROUTES or name in OTHER_ROUTES:
            continue
        found.append((route, name, callback))
    return found


def documented(route: str) -> tuple[str, dict] | tuple[None, None]:
    by_shape = {_shape(path): (path, item) for path, item in schema()["paths"].items()}
    for candidate in _candidates(route):
        if _shape(candidate) in by_shape:
            return by_shape[_shape(candidate)]
    return None, None


@pytest.fixture
def world(db):
    world = build_world()
    _, world.scim_token = scim_token_create(access=world.access, name="Okta")
    return world


def _concrete(path: str, world) -> str:
    values = {"org": world.slug, "connection": "no-such-connection", "name": "User", "urn": USER_CORE}
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), str(uuid.uuid4())), path)


def _served_methods(client, route, callback, world) -> set[str]:
    """The methods a route answers: a DRF view's handlers, or what a plain view does not refuse
    with 405 (SCIM is asked with a valid token: it authenticates before it looks at the method)."""
    cls = getattr(callback, "cls", None)
    if cls is not None:
        # DRF adds HEAD to a viewset's action map once it has served a GET (the map is the route's
        # own dict), so only the documented methods count: HEAD is GET's, as OpenAPI has it.
        actions = getattr(callback, "actions", None)
        return set(actions) & set(METHODS) if actions else {m for m in METHODS if hasattr(cls, m)}
    url = _concrete(_candidates(route)[0], world)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {world.scim_token}"} if url.startswith("/scim/") else {}
    return {method for method in METHODS
            if client.generic(method.upper(), url, b"", content_type="application/json",
                              **headers).status_code != 405}


def test_the_schema_validates_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))


def test_every_api_and_protocol_route_is_documented_with_the_methods_it_serves(world):
    client = Client()
    problems = []
    routes = surfaces()
    assert {"oauth:token", "scim:users", "trust-signals", "authzen-evaluation", "sso:saml-metadata",
            "sso:oidc-backchannel-logout", "api:member-list"} <= {name for _, name, _ in routes}
    for route, name, callback in routes:
        path, item = documented(route)
        served = _served_methods(client, route, callback, world)
        if path is None:
            problems.append(f"{name} ({route}) is not in the schema; it serves {sorted(served)}")
            continue
        listed = {method for method in item if method in METHODS}
        if listed != served:
            problems.append(f"{name} {path}: documented {sorted(listed)}, served {sorted(served)}")
    assert not problems, "\n".join(problems)


def _operations():
    for path, item in schema()["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def test_every_operation_has_one_declared_tag():
    declared = {tag["name"] for tag in settings.SPECTACULAR_SETTINGS["TAGS"]}
    assert all(tag.get("description") for tag in settings.SPECTACULAR_SETTINGS["TAGS"])
    wrong = [(path, method, operation.get("tags")) for path, method, operation in _operations()
             if len(operation.get("tags") or []) != 1 or operation["tags"][0] not in declared]
    assert not wrong, wrong
    used = {operation["tags"][0] for _, _, operation in _operations()}
    assert used == declared, f"declared but unused: {declared - used}"


def _admin_security(callback) -> set[str]:
    return {OpenApiAuthenticationExtension.get_match(auth).name
            for auth in callback.cls().get_authenticators()}


def _probe_body(operation) -> tuple[bytes, str]:
    content = (operation.get("requestBody") or {}).get("content") or {"application/json": {}}
    media = next(iter(content))
    if media != FORM:
        return b"{}", media
    properties = content[media]["schema"].get("properties", {})
    data = {field: (properties[field].get("enum") or ["x"])[0]
            for field in content[media]["schema"].get("required", [])}
    if not data:  # an empty body would travel without its content type
        data = {next(field for field in properties if not field.startswith("client_")): "x"}
    return urlencode(data).encode(), media


def test_each_operation_asks_for_the_credentials_its_view_takes(world):
    """Admin API: the view's authentication classes. Protocol endpoints, by asking them: without
    credentials a public one answers something other than 401 and any other answers 401 with the
    scheme it documents; an agent's credentials get past an agent's endpoint and not a connection's,
    and a connection's the other way round."""
    client = Client()
    schemes = schema()["components"]["securitySchemes"]
    callbacks = {_shape(documented(route)[0] or ""): callback for route, _, callback in surfaces()}
    agent = basic(world.agent.client_id, world.agent_secret)
    connection = basic(world.connection.client_id, world.connection_secret)
    problems = []
    for path, method, operation in _operations():
        names = {name for requirement in operation.get("security", []) for name in requirement}
        callback = callbacks[_shape(path)]
        if getattr(callback, "cls", None) is not None:
            if names != _admin_security(callback):
                problems.append(f"{method} {path}: {names} != {_admin_security(callback)}")
            continue
        url = _concrete(path, world)
        data, media = _probe_body(operation)

        def ask(**headers):
            return client.generic(method.upper(), url, data, content_type=media, **headers)

        anonymous = ask()
        if not names:
            if anonymous.status_code == 401:
                problems.append(f"{method} {path}: documented public, answers 401")
            continue
        scheme = schemes[sorted(names)[0]]["scheme"]
        challenge = anonymous.headers.get("WWW-Authenticate", "").split(" ")[0].lower()
        if anonymous.status_code != 401 or challenge != scheme:
            problems.append(f"{method} {path}: documented {names}, answers {anonymous.status_code} "
                            f"{challenge!r} without credentials")
        for principal, credentials in (("agentClient", agent), ("connectionClient", connection)):
            if scheme != "basic":
                continue
            accepted = ask(HTTP_AUTHORIZATION=credentials).status_code != 401
            if accepted != (principal in names):
                problems.append(f"{method} {path}: documented {names}, {principal} credentials "
                                f"{'accepted' if accepted else 'refused'}")
    assert not problems, "\n".join(problems)


def _validate(instance, component: str) -> None:
    document = {"components": schema()["components"], "$ref": f"#/components/schemas/{component}"}
    jsonschema.validate(instance, document)


def _properties(component: str) -> set[str]:
    return set(schema()["components"]["schemas"][component]["properties"])


def test_the_token_endpoint_is_documented_as_it_answers(world, client):
    token = schema()["paths"]["/oauth/{org}/token"]["post"]
    content = token["requestBody"]["content"]
    assert list(content) == [FORM]
    form = content[FORM]["schema"]
    assert form["properties"]["grant_type"]["enum"] == GRANT_TYPES
    assert "grant_type" in form["required"]
    assert token["responses"]["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/OAuthError")
    assert "error" in schema()["components"]["schemas"]["OAuthError"]["required"]

    refused = client.post(world.url("token"), "grant_type=password", content_type=FORM)
    _validate(refused.json(), "OAuthError")
    granted = client.post(world.url("token"), "grant_type=client_credentials", content_type=FORM,
                          HTTP_AUTHORIZATION=basic(world.agent.client_id, world.agent_secret))
    assert granted.status_code == 200, granted.content
    _validate(granted.json(), "TokenResponse")
    assert set(granted.json()) <= _properties("TokenResponse")

    introspected = client.post(world.url("introspect"), urlencode({"token": granted.json()["access_token"]}),
                               content_type=FORM,
                               HTTP_AUTHORIZATION=basic(world.connection.client_id, world.connection_secret))
    answer = introspected.json()
    assert answer["active"] is True
    _validate(answer, "IntrospectionResponse")
    assert {"active", "scope", "client_id", "exp", "sub", "aud", "iss", "org"} <= set(answer)
    assert set(answer) <= _properties("IntrospectionResponse"), set(answer) - _properties(
        "IntrospectionResponse")

    metadata = client.get(f"/.well-known/oauth-authorization-server/oauth/{world.slug}").json()
    _validate(metadata, "AuthorizationServerMetadata")
    assert set(metadata) <= _properties("AuthorizationServerMetadata")


def test_scim_and_admin_errors_are_documented_as_they_answer(world, client):
    error = schema()["components"]["schemas"]["ScimError"]
    assert error["properties"]["schemas"]["items"]["enum"] == [ERROR_SCHEMA]
    read = schema()["paths"]["/scim/v2/Users/{pk}"]["get"]
    assert read["responses"]["404"]["content"]["application/scim+json"]["schema"]["$ref"].endswith(
        "/ScimError")
    missing = client.get(f"/scim/v2/Users/{uuid.uuid4()}", HTTP_AUTHORIZATION=f"Bearer {world.scim_token}")
    assert missing.status_code == 404
    _validate(json.loads(missing.content), "ScimError")
    assert set(json.loads(missing.content)) <= _properties("ScimError")

    members = schema()["paths"]["/api/v1/orgs/{org}/members/"]["get"]
    assert members["responses"]["401"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/AdminError")
    refused = client.get(f"/api/v1/orgs/{world.slug}/members/")
    assert refused.status_code in (401, 403)
    _validate(refused.json(), "AdminError")
    assert set(refused.json()) <= _properties("AdminError")
