"""RFC 7643/7644 behaviour of the SCIM server, over HTTP."""

from urllib.parse import quote

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from scim.models import ScimUser
from tests.scim.conftest import user_body

pytestmark = pytest.mark.django_db

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def _user(scim, name, **extra) -> dict:
    response = scim.post("/Users", user_body(name, **extra))
    assert response.status_code == 201, response.content
    return response.json()


def _names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return sorted(r.get("userName", r.get("displayName")) for r in response.json()["Resources"])


@pytest.fixture
def people(scim):
    _user(scim, "alice@example.com", title="Engineer", displayName="Alice",
          **{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
             ENTERPRISE: {"department": "R&D", "employeeNumber": "7"}})
    _user(scim, "bob@corp.example", title="Manager", active=False,
          emails=[{"value": "bob@corp.example", "type": "work", "primary": True},
                  {"value": "bob@home.example", "type": "home"}])
    _user(scim, "carol@example.com", externalId="ext-3",
          addresses=[{"type": "home", "locality": "Oslo", "postalCode": "0150", "country": "NO"}])
    return scim


@pytest.mark.parametrize("path", ["/Users", "/Groups", '/Users?filter=userName sw "u"', "/Users?count=2"])
def test_a_list_costs_the_same_queries_whatever_the_page_holds(scim, path):
    """Token lookup (with its creator's standing: an owner's token costs nothing more), count, page,
    and one query for every listed resource's groups or members."""
    counts = []
    for batch in range(2):
        ids = [_user(scim, f"u{batch}-{i}@example.com")["id"] for i in range(1 + 4 * batch)]
        group = scim.post("/Groups", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                      "displayName": f"Team {batch}", "members": [{"value": i} for i in ids]})
        assert group.status_code == 201, group.content
        with CaptureQueriesContext(connection) as queries:
            response = scim.get(path.replace(" ", "%20").replace('"', "%22"))
        assert response.status_code == 200 and response.json()["Resources"]
        counts.append(len(queries))
    assert counts == [4, 4]


# --- filters: every operator on the attributes we store ------------------------------------------

@pytest.mark.parametrize("expression, expected", [
    ('userName eq "ALICE@example.com"', ["alice@example.com"]),  # caseExact false
    ('userName ne "alice@example.com"', ["bob@corp.example", "carol@example.com"]),
    ('userName co "corp"', ["bob@corp.example"]),
    ('userName sw "car"', ["carol@example.com"]),
    ('userName ew ".example"', ["bob@corp.example"]),
    ('userName gt "b"', ["bob@corp.example", "carol@example.com"]),
    ('userName le "bob@corp.example"', ["alice@example.com", "bob@corp.example"]),
    ('title pr', ["alice@example.com", "bob@corp.example"]),
    ('not (title pr)', ["carol@example.com"]),
    ('active eq false', ["bob@corp.example"]),
    ('active eq true and title eq "engineer"', ["alice@example.com"]),
    ('title eq "Manager" or externalId eq "ext-3"', ["bob@corp.example", "carol@example.com"]),
    ('externalId eq "EXT-3"', []),  # caseExact true
    ('emails.value eq "bob@home.example"', ["bob@corp.example"]),
    ('emails co "home"', ["bob@corp.example"]),
    ('emails[type eq "work" and value sw "bob"]', ["bob@corp.example"]),
    ('emails[type eq "home"]', ["bob@corp.example"]),
    ('emails[type eq "home" and value co "corp"]', []),  # the work address has it, not the home one
    ('name.givenName eq "barbara" and userName sw "a"', ["alice@example.com"]),
    ('emails.type eq "home"', ["bob@corp.example"]),
    ('emails.type ne "work"', []),
    ('addresses.locality eq "oslo"', ["carol@example.com"]),
    ('addresses.postalCode sw "01"', ["carol@example.com"]),
    ('addresses.locality co "sl"', ["carol@example.com"]),
    ('addresses.country pr', ["carol@example.com"]),
    ('addresses[type eq "home" and locality eq "Oslo"]', ["carol@example.com"]),
    ('addresses[type eq "work" and locality eq "Oslo"]', []),
    ('addresses.type eq "home"', ["carol@example.com"]),
    (f'{ENTERPRISE}:department eq "r&d"', ["alice@example.com"]),
    ('meta.created gt "2000-01-01T00:00:00Z"',
     ["alice@example.com", "bob@corp.example", "carol@example.com"]),
    ('meta.lastModified lt "2000-01-01T00:00:00Z"', []),
])
def test_filters(people, expression, expected):
    assert _names(people.get(f"/Users?filter={quote(expression)}")) == expected


@pytest.mark.parametrize("expression, scim_type", [
    ('userName eq', "invalidFilter"),
    ('nosuchattribute eq "x"', "invalidFilter"),
    ('active gt true', "invalidFilter"),
    ('meta.created eq "yesterday"', "invalidFilter"),
    ('roles eq "admin"', "invalidFilter"),
])
def test_bad_filters_are_invalid_filter(people, expression, scim_type):
    response = people.get(f"/Users?filter={expression}")
    assert response.status_code == 400 and response.json()["scimType"] == scim_type


def test_group_filters_and_member_filters(people):
    alice = people.get('/Users?filter=userName eq "alice@example.com"').json()["Resources"][0]
    people.post("/Groups", {"displayName": "Engineering", "members": [{"value": alice["id"]}]})
    people.post("/Groups", {"displayName": "Sales"})
    assert _names(people.get('/Groups?filter=displayName eq "engineering"')) == ["Engineering"]
    assert _names(people.get(f'/Groups?filter=members[value eq "{alice["id"]}"]')) == ["Engineering"]
    assert _names(people.get(f'/Users?filter=groups.value eq "{_group_id(people, "Sales")}"')) == []


def _group_id(scim, name):
    return scim.get(f'/Groups?filter=displayName eq "{name}"').json()["Resources"][0]["id"]


# --- attributes, sorting, paging ------------------------------------------------------------------

def test_attributes_and_excluded_attributes(people):
    body = people.get("/Users?attributes=userName,name.givenName&filter=userName sw \"alice\"").json()
    (resource,) = body["Resources"]
    assert set(resource) == {"schemas", "id", "meta", "userName", "name"}
    assert resource["name"] == {"givenName": "Barbara"}
    query = f"/Users?excludedAttributes=emails,{ENTERPRISE}&filter=userName sw \"alice\""
    resource = people.get(query).json()["Resources"][0]
    assert "emails" not in resource and ENTERPRISE not in resource and resource["id"]
    one = people.get(f"/Users/{resource['id']}?attributes={ENTERPRISE}:department").json()
    assert one[ENTERPRISE] == {"department": "R&D"} and "userName" not in one


def test_sorting_and_paging(people):
    listed = people.get("/Users?sortBy=userName&sortOrder=descending").json()["Resources"]
    names = [r["userName"] for r in listed]
    assert names == ["carol@example.com", "bob@corp.example", "alice@example.com"]
    page = people.get("/Users?sortBy=userName&startIndex=2&count=1").json()
    assert page["startIndex"] == 2 and page["itemsPerPage"] == 1 and page["totalResults"] == 3
    assert page["Resources"][0]["userName"] == "bob@corp.example"
    assert people.get("/Users?sortBy=emails").json()["scimType"] == "invalidValue"


def test_search_endpoints(people):
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": 'userName sw "a"', "attributes": ["userName"], "count": 10}
    result = people.post("/Users/.search", body).json()
    assert result["totalResults"] == 1
    assert set(result["Resources"][0]) == {"schemas", "id", "meta", "userName"}
    people.post("/Groups", {"displayName": "Admins"})
    search = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}
    both = people.post("/.search", search).json()
    assert both["totalResults"] == 4


# --- versions and conditional writes --------------------------------------------------------------

def test_etags_and_if_match(scim):
    created = scim.post("/Users", user_body("dave@example.com"))
    pk, first = created.json()["id"], created["ETag"]
    assert first == 'W/"1"' and created.json()["meta"]["version"] == first
    assert scim.get(f"/Users/{pk}", headers={"If-None-Match": first}).status_code == 304
    changed = scim.patch(f"/Users/{pk}", [{"op": "replace", "path": "title", "value": "CTO"}],
                         headers={"If-Match": first})
    assert changed.status_code == 200 and changed["ETag"] == 'W/"2"'
    stale = scim.patch(f"/Users/{pk}", [{"op": "replace", "path": "title", "value": "CEO"}],
                       headers={"If-Match": first})
    assert stale.status_code == 412 and stale.json()["status"] == "412"
    stale = scim.put(f"/Users/{pk}", user_body("dave@example.com", title="CEO"), headers={"If-Match": first})
    assert stale.status_code == 412
    assert scim.delete(f"/Users/{pk}", headers={"If-Match": first}).status_code == 412
    assert ScimUser.objects.for_org(scim.org).get(pk=pk).title == "CTO"
    assert scim.delete(f"/Users/{pk}", headers={"If-Match": 'W/"2"'}).status_code == 204
    assert scim.get(f"/Users/{pk}").status_code == 404


# --- writes -------------------------------------------------------------------------------------

def test_user_name_is_unique_per_org_case_insensitively(scim):
    _user(scim, "erin@example.com")
    response = scim.post("/Users", user_body("ERIN@example.com"))
    assert response.status_code == 409 and response.json()["scimType"] == "uniqueness"
    other = _user(scim, "frank@example.com")
    response = scim.put(f"/Users/{other['id']}", user_body("Erin@Example.com"))
    assert response.status_code == 409


def test_put_replaces_and_read_only_attributes_are_ignored(scim):
    created = _user(scim, "gina@example.com", title="Engineer", nickName="G")
    body = user_body("gina@example.com", id="not-this", groups=[{"value": "x"}], meta={"version": "W/\"9\""})
    replaced = scim.put(f"/Users/{created['id']}", body)
    assert replaced.status_code == 200, replaced.content
    assert "title" not in replaced.json() and "nickName" not in replaced.json()
    assert replaced.json()["id"] == created["id"] and "groups" not in replaced.json()


@pytest.mark.parametrize("body, scim_type", [
    ({"name": {"givenName": "X"}}, "invalidValue"),  # userName is required
    ({"userName": ""}, "invalidValue"),
    ({"userName": 5.5, "emails": "nope"}, "invalidValue"),
    ({"userName": "x", "active": "perhaps"}, "invalidValue"),
    ({"userName": "x", "schemas": ["urn:example:unknown"]}, "invalidSyntax"),
    ({"userName": "x",
      "emails": [{"value": "a@x.com", "primary": True}, {"value": "b@x.com", "primary": True}]},
     "invalidValue"),
])
def test_bad_users_are_400_with_scim_type_and_change_nothing(scim, body, scim_type):
    response = scim.post("/Users", body)
    assert response.status_code == 400 and response.json()["scimType"] == scim_type
    assert not ScimUser.objects.for_org(scim.org).exists()


def test_malformed_json_and_unknown_endpoints(scim):
    response = scim.call("POST", "/Users", "{not json")
    assert response.status_code == 400 and response.json()["scimType"] == "invalidSyntax"
    assert scim.get("/Nothing").status_code == 404 and scim.get("/Nothing").json()["status"] == "404"
    assert scim.get("/Bulk").status_code == 501
    assert scim.get("/Users/not-a-uuid").status_code == 404


def test_patch_operations(scim):
    created = _user(scim, "hank@example.com")
    path = f"/Users/{created['id']}"
    ops = [
        {"op": "Add", "path": "phoneNumbers", "value": [{"value": "+1 555 0100", "type": "work"}]},
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "hank@corp.example"},
        {"op": "add", "path": 'addresses[type eq "work"].locality', "value": "Oslo"},
        {"op": "replace", "path": "name.familyName", "value": "Hill"},
        {"op": "replace", "path": f"{ENTERPRISE}:manager", "value": "mgr-1"},
        {"op": "add", "value": {"title": "Lead", f"{ENTERPRISE}:department": "Ops"}},
    ]
    body = scim.patch(path, ops).json()
    assert body["phoneNumbers"] == [{"value": "+1 555 0100", "type": "work"}]
    assert body["emails"][0]["value"] == "hank@corp.example"
    assert body["addresses"] == [{"type": "work", "locality": "Oslo"}]
    assert body["name"] == {"givenName": "Barbara", "familyName": "Hill"}
    assert body[ENTERPRISE] == {"manager": {"value": "mgr-1"}, "department": "Ops"}
    assert body["title"] == "Lead"
    body = scim.patch(path, [{"op": "remove", "path": 'phoneNumbers[type eq "work"]'},
                             {"op": "remove", "path": f"{ENTERPRISE}:manager"}]).json()
    assert "phoneNumbers" not in body and body[ENTERPRISE] == {"department": "Ops"}
    bad = scim.patch(path, [{"op": "replace", "path": "title", "value": "ok"},
                            {"op": "remove", "path": "id"}])
    assert bad.status_code == 400 and bad.json()["scimType"] == "mutability"
    assert scim.get(path).json()["title"] == "Lead"  # the whole PATCH failed: nothing applied
    missing = scim.patch(path, [{"op": "remove"}])
    assert missing.status_code == 400 and missing.json()["scimType"] == "noTarget"


def test_discovery(scim):
    config = scim.get("/ServiceProviderConfig").json()
    assert config["patch"]["supported"] and not config["bulk"]["supported"] and config["etag"]["supported"]
    assert config["filter"]["maxResults"] == 200
    types = scim.get("/ResourceTypes").json()
    assert types["totalResults"] == 2 and {t["id"] for t in types["Resources"]} == {"User", "Group"}
    assert scim.get("/ResourceTypes/User").json()["schemaExtensions"][0]["schema"] == ENTERPRISE
    user_schema = scim.get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:User").json()
    names = {a["name"] for a in user_schema["attributes"]}
    assert "userName" in names and "roles" not in names and "x509Certificates" not in names
    assert scim.get("/Schemas/urn:nothing").status_code == 404


def test_root_search_reads_an_attribute_one_type_lacks_as_false(people):
    alice = people.get('/Users?filter=userName eq "alice@example.com"').json()["Resources"][0]
    people.post("/Groups", {"displayName": "Engineering", "members": [{"value": alice["id"]}]})
    people.post("/Groups", {"displayName": "Empty"})
    search = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
              "filter": 'userName eq "bob@corp.example" or members pr'}
    found = people.post("/.search", search).json()
    assert sorted(r.get("userName", r.get("displayName")) for r in found["Resources"]) == [
        "Engineering", "bob@corp.example"]
    assert found["totalResults"] == 2
    refused = people.post("/.search", {**search, "filter": 'nothing eq "x" or userName pr'})
    assert refused.status_code == 400 and refused.json()["scimType"] == "invalidFilter"
