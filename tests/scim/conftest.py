"""A SCIM client for the protocol tests: an org, its SCIM token, and JSON requests with it."""

import json
from dataclasses import dataclass

import pytest
from django.test import Client

from rbac.guard import access_for_user
from scim.tokens import scim_token_create
from tests.factories import MemberFactory, OrgFactory

BASE = "/scim/v2"
SCIM_JSON = "application/scim+json"


@dataclass
class Scim:
    client: Client
    org: object
    token: str
    token_row: object
    owner: object

    def call(self, method: str, path: str, body=None, *, token: str | None = None, headers=None):
        kwargs = {"HTTP_AUTHORIZATION": f"Bearer {token or self.token}"}
        for name, value in (headers or {}).items():
            kwargs["HTTP_" + name.upper().replace("-", "_")] = value
        data = json.dumps(body) if body is not None and not isinstance(body, str) else body
        return self.client.generic(method, f"{BASE}{path}", data=data or "", content_type=SCIM_JSON, **kwargs)

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.call("POST", path, body, **kw)

    def put(self, path, body, **kw):
        return self.call("PUT", path, body, **kw)

    def patch(self, path, operations, **kw):
        return self.call("PATCH", path, {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                         "Operations": operations}, **kw)

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)


def scim_for(org=None) -> Scim:
    org = org or OrgFactory()
    owner = MemberFactory(org=org, role="owner")
    access = access_for_user(user=owner.user, org_slug=org.slug)
    token_row, token = scim_token_create(access=access, name="Okta")
    return Scim(Client(), org, token, token_row, owner)


@pytest.fixture
def scim(db):
    return scim_for()


def user_body(user_name: str, **extra) -> dict:
    return {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user_name,
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [{"value": user_name if "@" in user_name else f"{user_name}@example.com",
                        "type": "work", "primary": True}],
            "active": True, **extra}
