"""Malformed and oversized input: each is an RFC 7644 §3.12 error with the right status (never a 500),
changes nothing, and a refused write is on record as `scim.request_rejected`."""

import json

import pytest

from scim.models import ScimGroup, ScimUser
from scim.protocol.dispatch import MAX_BODY
from tests.helpers import audit_events
from tests.scim.conftest import user_body

pytestmark = pytest.mark.django_db

GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
SEARCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


def _error(response, status: int, scim_type: str | None = None) -> dict:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/scim+json")
    body = response.json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert body["status"] == str(status)
    if scim_type:
        assert body["scimType"] == scim_type
    return body


def _user(scim, name="bjensen@example.com") -> dict:
    response = scim.post("/Users", user_body(name))
    assert response.status_code == 201, response.content
    return response.json()


def _rejected(org) -> list[dict]:
    return [e.data for e in audit_events(org, "scim.request_rejected")]


# --- nesting ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    "[" * 100_000,
    '{"a":' * 100_000,
    '{"userName": "x", "name": ' + "[" * 100_000,
    '{"userName": "x", "name": ' + '{"a": ' * 200 + "1" + "}" * 201,  # parses, and is still too deep
])
def test_deeply_nested_json_is_invalid_syntax_and_creates_nothing(scim, body):
    _error(scim.post("/Users", body), 400, "invalidSyntax")
    assert not ScimUser.objects.for_org(scim.org).exists()
    assert [(d["status"], d["scim_type"]) for d in _rejected(scim.org)] == [(400, "invalidSyntax")]


def test_deeply_nested_patch_changes_nothing(scim):
    created = _user(scim)
    body = ('{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": '
            + "[" * 100_000)
    _error(scim.call("PATCH", f"/Users/{created['id']}", body), 400, "invalidSyntax")
    group = scim.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Team"}).json()
    deep = '{"displayName": ' + "{" * 100_000
    _error(scim.call("PUT", f"/Groups/{group['id']}", deep), 400, "invalidSyntax")
    assert ScimUser.objects.for_org(scim.org).get(pk=created["id"]).version == 1
    assert ScimGroup.objects.for_org(scim.org).get(pk=group["id"]).version == 1


def test_ordinary_nesting_is_still_read(scim):
    enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    body = user_body("nested@example.com", schemas=["urn:ietf:params:scim:schemas:core:2.0:User", enterprise],
                     **{enterprise: {"manager": {"value": "m-1"}}})
    response = scim.post("/Users", body)
    assert response.status_code == 201, response.content
    assert response.json()[enterprise]["manager"] == {"value": "m-1"}


# --- size ------------------------------------------------------------------------------------------

def _padded(resource: dict, size: int) -> str:
    body = json.dumps(resource)
    body = body[:-1] + ', "padding": "' + "z" * (size - len(body) - 15) + '"}'
    assert len(body.encode()) == size
    return body


@pytest.mark.parametrize("size", [MAX_BODY + 1, 2_621_441, 3_000_000])
def test_a_body_over_the_limit_is_413_and_creates_nothing(scim, size):
    _error(scim.post("/Users", _padded(user_body("big@example.com"), size)), 413)
    _error(scim.post("/Groups", _padded({"schemas": [GROUP_SCHEMA], "displayName": "Team"}, size)), 413)
    assert not ScimUser.objects.for_org(scim.org).exists()
    assert not ScimGroup.objects.for_org(scim.org).exists()
    assert [d["status"] for d in _rejected(scim.org)] == [413, 413]


def test_a_body_at_the_limit_is_read(scim):
    assert scim.post("/Users", _padded(user_body("edge@example.com"), MAX_BODY)).status_code == 201


def test_the_service_provider_config_states_the_limit_the_server_applies(scim):
    config = scim.get("/ServiceProviderConfig").json()
    assert config["bulk"]["supported"] is False
    assert config["bulk"]["maxPayloadSize"] == MAX_BODY


# --- text that is not Unicode ----------------------------------------------------------------------

@pytest.mark.parametrize("user_name", ["\\ud800", "a\\udfffb", "\\ud83d", "x\\ude00"])
def test_a_lone_surrogate_in_user_name_is_invalid_value(scim, user_name):
    body = '{"userName": "' + user_name + '", "emails": [{"value": "s@example.com", "primary": true}]}'
    _error(scim.post("/Users", body), 400, "invalidValue")
    assert not ScimUser.objects.for_org(scim.org).exists()
    assert [(d["status"], d["scim_type"]) for d in _rejected(scim.org)] == [(400, "invalidValue")]


@pytest.mark.parametrize("body", [
    '{"userName": "ok@example.com", "name": {"givenName": "\\ud800"}}',
    '{"userName": "ok@example.com", "\\ud800": 1}',
    '{"userName": "ok@example.com", "emails": [{"value": "ok@example.com", "type": "\\udc00"}]}',
])
def test_a_lone_surrogate_anywhere_in_the_body_is_invalid_value(scim, body):
    _error(scim.post("/Users", body), 400, "invalidValue")
    assert not ScimUser.objects.for_org(scim.org).exists()


def test_a_surrogate_pair_is_an_ordinary_character(scim):
    response = scim.post("/Users", '{"userName": "smile\\ud83d\\ude00@example.com"}')
    assert response.status_code == 201, response.content
    assert response.json()["userName"] == "smile\U0001f600@example.com"


def test_a_lone_surrogate_in_a_patch_path_filter_changes_nothing(scim):
    created = _user(scim)
    # The path's own string escape: JSON carries the six characters \ud800 and the path grammar
    # turns them into the lone surrogate, which would be stored as the new email's type.
    op = {"op": "add", "path": 'emails[type eq "\\ud800"].value', "value": "new@example.com"}
    _error(scim.patch(f"/Users/{created['id']}", [op]), 400)
    row = ScimUser.objects.for_org(scim.org).get(pk=created["id"])
    assert row.version == 1 and len(row.emails) == 1


@pytest.mark.parametrize("path", ["/Users", "/Groups"])
def test_a_lone_surrogate_in_a_filter_is_invalid_filter(scim, path):
    _user(scim)
    _error(scim.get(f'{path}?filter=displayName eq "\\ud800"'), 400, "invalidFilter")
    _error(scim.get(f'{path}?filter=externalId co "a\\udc00"'), 400, "invalidFilter")
    _error(scim.post(f"{path}/.search", {"schemas": [SEARCH_SCHEMA], "filter": 'displayName sw "\\ud800"'}),
           400, "invalidFilter")


# --- paging bounds ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/Users", "/Groups"])
@pytest.mark.parametrize("start", [str(10 ** 20), "9" * 5000, str(2 ** 63), str(2 ** 63 - 1)])
def test_a_start_index_past_any_row_is_an_empty_page(scim, path, start):
    _user(scim)
    scim.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Team"})
    response = scim.get(f"{path}?startIndex={start}")
    assert response.status_code == 200, response.content[:300]
    body = response.json()
    assert body["totalResults"] == 1 and body["Resources"] == [] and body["itemsPerPage"] == 0
    assert body["startIndex"] == (2 ** 63 - 1 if len(start) > 19 else min(int(start), 2 ** 63 - 1))


def test_a_root_search_past_any_row_is_an_empty_page(scim):
    _user(scim)
    response = scim.post("/.search", {"schemas": [SEARCH_SCHEMA], "startIndex": 10 ** 20, "count": 10 ** 20})
    assert response.status_code == 200, response.content
    assert response.json()["totalResults"] == 1 and response.json()["Resources"] == []


@pytest.mark.parametrize("start", [str(-(10 ** 20)), "-" + "9" * 5000, "0"])
def test_a_start_index_below_one_is_one(scim, start):
    _user(scim)
    body = scim.get(f"/Users?startIndex={start}").json()
    assert body["startIndex"] == 1 and len(body["Resources"]) == 1


@pytest.mark.parametrize("count", [str(10 ** 20), "9" * 5000])
def test_a_huge_count_is_the_largest_page(scim, settings, count):
    for i in range(3):
        _user(scim, f"u{i}@example.com")
    settings.IAM_SCIM_MAX_PAGE = 2
    body = scim.get(f"/Users?count={count}").json()
    assert body["totalResults"] == 3 and body["itemsPerPage"] == 2
    body = scim.get(f"/Users?count=-{count}").json()
    assert body["totalResults"] == 3 and body["Resources"] == []
    body = scim.post("/Users/.search", {"schemas": [SEARCH_SCHEMA], "count": 10 ** 20}).json()
    assert body["itemsPerPage"] == 2


@pytest.mark.parametrize("value", ["1e3", "lots", "1.5", "0x10"])
def test_a_count_that_is_not_an_integer_is_still_invalid_value(scim, value):
    _error(scim.get(f"/Users?count={value}"), 400, "invalidValue")
    _error(scim.get(f"/Users?startIndex={value}"), 400, "invalidValue")


# --- ids that are not ours -------------------------------------------------------------------------

@pytest.mark.parametrize("resource", ["Users", "Groups"])
@pytest.mark.parametrize("pk", ["-" * 36, "1" * 5000, "{" + "-" * 34 + "}", "urn:uuid:" + "-" * 36])
def test_an_id_that_cannot_be_one_is_a_404(scim, resource, pk):
    created = _user(scim)
    group = scim.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Team"}).json()
    noun = resource.rstrip("s")
    expected = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "404",
                "detail": f"{noun} not found."}
    body = user_body("other@example.com") if resource == "Users" else {"displayName": "Other"}
    patch = [{"op": "replace", "path": "displayName", "value": "changed"}]
    assert _error(scim.get(f"/{resource}/{pk}"), 404) == expected
    assert _error(scim.put(f"/{resource}/{pk}", body), 404) == expected
    assert _error(scim.patch(f"/{resource}/{pk}", patch), 404) == expected
    assert _error(scim.delete(f"/{resource}/{pk}"), 404) == expected
    assert ScimUser.objects.for_org(scim.org).get().pk.hex == created["id"].replace("-", "")
    assert ScimGroup.objects.for_org(scim.org).get(pk=group["id"]).version == 1
    assert ScimUser.objects.for_org(scim.org).get().version == 1
