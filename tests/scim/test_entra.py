"""Microsoft Entra ID's provisioning requests, replayed over HTTP as its documentation shows them.

Entra capitalises `op` ("Replace", "Add", "Remove"), sends `active` as the string "False" unless the
tenant URL carries the aadOptscim062020 flag, addresses the work email as
`emails[type eq "work"].value`, writes enterprise attributes as `<urn>:<attribute>` (the manager as
a bare id), reads groups with `excludedAttributes=members`, and expects 204 from group PATCHes.
"""

import uuid
from urllib.parse import quote

import pytest

from accounts.models import MembershipStatus, User
from audit.models import AuditEntry
from core.permissions import Perm
from rbac.guard import access_for_user
from rbac.models import RoleAssignment
from scim.mappings import mapping_create
from scim.models import MAPPING_TAG, ScimGroup, ScimGroupMember, ScimUser
from tests.factories import RoleFactory
from tests.helpers import events_since, last_seq
from tests.helpers import latest_event as entry
from tests.scim.conftest import SCIM_JSON

pytestmark = pytest.mark.django_db

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
ADSCIM_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"


def entra_user(user_name: str, email: str, **enterprise) -> dict:
    body = {"schemas": [USER, ENTERPRISE], "externalId": str(uuid.uuid4()), "userName": user_name,
            "active": True, "emails": [{"primary": True, "type": "work", "value": email}],
            "meta": {"resourceType": "User"},
            "name": {"formatted": "givenName familyName", "familyName": "familyName",
                     "givenName": "givenName"},
            "roles": []}
    if enterprise:
        body[ENTERPRISE] = enterprise
    return body


def query(resource: str, expression: str, extra: str = "") -> str:
    return f"/{resource}?{extra}filter={quote(expression)}"


def scim_body(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith(SCIM_JSON)
    return response.json()


def no_content(response) -> None:
    assert response.status_code == 204, response.content
    assert response.content == b""


def create(scim, name: str, **enterprise) -> dict:
    return scim_body(scim.post("/Users", entra_user(f"{name}@contoso.com", f"{name}@contoso.com",
                                                    **enterprise)), 201)


def person(user_id):
    membership = ScimUser.objects.unscoped().select_related("membership__user").get(pk=user_id).membership
    return membership, User.objects.get(pk=membership.user_id)


# https://learn.microsoft.com/en-us/entra/identity/app-provisioning/use-scim-to-provision-users-and-groups
# ("Test Connection queries the SCIM endpoint for a user that doesn't exist, using a random GUID as
# the matching property ... HTTP 200 OK with an empty SCIM ListResponse"; "Get User by query - Zero
# results"; "Get Group by displayName").
def test_entra_test_connection_gets_empty_list_responses(scim):
    for path in (query("Users", f'userName eq "{uuid.uuid4()}"'),
                 query("Users", f'externalId eq "{uuid.uuid4()}"'),
                 query("Groups", f'displayName eq "{uuid.uuid4()}"', "excludedAttributes=members&")):
        assert scim_body(scim.get(path), 200) == {
            "schemas": [LIST], "totalResults": 0, "startIndex": 1, "itemsPerPage": 0, "Resources": []}


# Same page, "Create User" and "Get User by query", with the enterprise attributes Entra maps by
# default (employeeId, department, manager: "Design your user and group schema").
def test_entra_creates_a_user_with_the_enterprise_extension(scim):
    boss = create(scim, "boss")["id"]
    before = last_seq(scim.org)
    sent = entra_user("Test_User_00aa00aa@contoso.com", "Test_User_11bb11bb@testuser.com",
                      employeeNumber="701984", department="Finance", manager=boss)
    response = scim.post("/Users", sent)
    body = scim_body(response, 201)
    assert body["userName"] == "Test_User_00aa00aa@contoso.com" and body["active"] is True
    assert body["externalId"] == sent["externalId"]
    assert body["name"] == sent["name"] and body["emails"] == sent["emails"]
    assert body["schemas"] == [USER, ENTERPRISE]
    assert body[ENTERPRISE] == {"employeeNumber": "701984", "department": "Finance",
                                "manager": {"value": boss}}
    assert response["Location"].endswith(f"/scim/v2/Users/{body['id']}")

    stored = ScimUser.objects.for_org(scim.org).get(pk=body["id"])
    assert stored.enterprise["department"] == "Finance" and stored.external_id == sent["externalId"]
    membership, user = person(body["id"])
    assert user.email == "test_user_11bb11bb@testuser.com" and user.is_active
    assert membership.status in (MembershipStatus.ACTIVE, MembershipStatus.INVITED)
    assert events_since(scim.org, before) == ["member.added", "scim.user_created"]

    # "Use userName or emails[type eq "work"] attributes to query users."
    for expression in (f'userName eq "{sent["userName"]}"',
                       'emails[type eq "work"].value eq "Test_User_11bb11bb@testuser.com"'):
        found = scim_body(scim.get(query("Users", expression)), 200)
        assert found["totalResults"] == 1 and found["Resources"][0]["id"] == body["id"]
    got = scim_body(scim.get(f"/Users/{body['id']}"), 200)
    assert got[ENTERPRISE]["manager"] == {"value": boss}


# Same page, "Handling provisioning and deprovisioning of users", Example 2: unmapped attributes
# arrive as nulls, some of them (department, manager) at the top level. (The example's second schema
# URN lacks a colon, "...:2.0User"; that typo is left out here.)
def test_entra_create_with_null_attributes(scim):
    sent = {"schemas": [USER, ENTERPRISE], "externalId": "jyoung", "userName": "jyoung@testuser.com",
            "active": True, "addresses": None, "displayName": "Joy Young",
            "emails": [{"type": "work", "value": "jyoung@Contoso.com", "primary": True}],
            "meta": {"resourceType": "User"}, "name": {"familyName": "Young", "givenName": "Joy"},
            "phoneNumbers": None, "preferredLanguage": None, "title": None, "department": None,
            "manager": None}
    body = scim_body(scim.post("/Users", sent), 201)
    assert body["displayName"] == "Joy Young" and body["externalId"] == "jyoung"
    assert not {"addresses", "phoneNumbers", "preferredLanguage", "title", ENTERPRISE} & set(body)
    assert User.objects.get(email="jyoung@contoso.com").is_active


# https://learn.microsoft.com/en-us/entra/identity/app-provisioning/application-provisioning-config-problem-scim-compatibility
# ("Requests to replace multiple attributes", without the feature flag) plus the single-valued "Add"
# and the enterprise department/manager paths Entra's attribute table lists.
def test_entra_patches_with_capitalised_ops_and_filtered_paths(scim):
    user_id = create(scim, "pvlo", employeeNumber="1")["id"]
    manager = create(scim, "manager")["id"]
    before = last_seq(scim.org)
    body = scim_body(scim.patch(f"/Users/{user_id}", [
        {"op": "Replace", "path": "displayName", "value": "Pvlo"},
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "TestBcwqnm@test.microsoft.com"},
        {"op": "Replace", "path": "name.givenName", "value": "Gtfd"},
        {"op": "Replace", "path": "name.familyName", "value": "Pkqf"},
        {"op": "Replace", "path": "externalId", "value": "Eqpj"},
        {"op": "Replace", "path": f"{ENTERPRISE}:employeeNumber", "value": "Eqpj"},
        {"op": "Add", "path": "nickName", "value": "Babs"},
        {"op": "Add", "path": f"{ENTERPRISE}:department", "value": "Research"},
        {"op": "Replace", "path": f"{ENTERPRISE}:manager", "value": manager},
    ]), 200)
    assert body["displayName"] == "Pvlo" and body["nickName"] == "Babs" and body["externalId"] == "Eqpj"
    assert body["emails"] == [{"primary": True, "type": "work", "value": "TestBcwqnm@test.microsoft.com"}]
    assert (body["name"]["givenName"], body["name"]["familyName"]) == ("Gtfd", "Pkqf")
    assert body[ENTERPRISE] == {"employeeNumber": "Eqpj", "department": "Research",
                                "manager": {"value": manager}}
    assert body["meta"]["version"] == 'W/"2"'

    stored = ScimUser.objects.for_org(scim.org).get(pk=user_id)
    assert stored.nick_name == "Babs" and stored.enterprise["manager"] == {"value": manager}
    assert events_since(scim.org, before) == ["scim.user_updated"]
    assert entry(scim.org, "scim.user_updated").data == {
        "user_name": "pvlo@contoso.com", "method": "PATCH",
        "fields": ["displayName", "emails", "enterprise", "externalId", "name", "nickName"]}
    work_email = 'emails[type eq "work"].value eq "testbcwqnm@test.microsoft.com"'
    found = scim_body(scim.get(query("Users", work_email)), 200)
    assert [r["id"] for r in found["Resources"]] == [user_id]


# use-scim-to-provision-users-and-groups ("Update User [Single-valued properties]": a new userName).
def test_entra_renames_a_user(scim):
    user_id = create(scim, "old")["id"]
    body = scim_body(scim.patch(f"/Users/{user_id}", [
        {"op": "Replace", "path": "userName", "value": "5b50642d@testuser.com"}]), 200)
    assert body["userName"] == "5b50642d@testuser.com"
    assert ScimUser.objects.for_org(scim.org).get(pk=user_id).user_name == "5b50642d@testuser.com"
    assert scim_body(scim.get(query("Users", 'userName eq "old@contoso.com"')), 200)["totalResults"] == 0
    renamed = scim_body(scim.get(query("Users", 'userName eq "5b50642d@testuser.com"')), 200)
    assert [r["id"] for r in renamed["Resources"]] == [user_id]
    assert entry(scim.org, "scim.user_updated").data["fields"] == ["userName"]


# Same page, "With feature flag" (aadOptscim062020): one pathless replace whose keys are paths.
def test_entra_scim_compliant_flag_sends_a_pathless_replace_with_path_keys(scim):
    user_id = create(scim, "bjfe")["id"]
    body = scim_body(scim.patch(f"/Users/{user_id}", [
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "TestMhvaes@test.microsoft.com"},
        {"op": "replace", "value": {"displayName": "Bjfe", "name.givenName": "Kkom",
                                    "name.familyName": "Unua", f"{ENTERPRISE}:employeeNumber": "Aklq"}},
    ]), 200)
    assert body["displayName"] == "Bjfe" and body["emails"][0]["value"] == "TestMhvaes@test.microsoft.com"
    assert body["name"] == {"formatted": "givenName familyName", "givenName": "Kkom", "familyName": "Unua"}
    assert body[ENTERPRISE] == {"employeeNumber": "Aklq"}


# use-scim-to-provision-users-and-groups ("Update User [Multi-valued properties]"): a user created
# without a work email gets one from the filtered path.
def test_entra_adds_the_work_email_a_user_did_not_have(scim):
    sent = entra_user("noemail@contoso.com", "x@contoso.com")
    del sent["emails"]
    user_id = scim_body(scim.post("/Users", sent), 201)["id"]
    body = scim_body(scim.patch(f"/Users/{user_id}", [
        {"op": "Add", "path": 'emails[type eq "work"].value', "value": "updatedEmail@microsoft.com"}]), 200)
    assert body["emails"] == [{"type": "work", "value": "updatedEmail@microsoft.com"}]


# application-provisioning-config-problem-scim-compatibility ("Requests made to disable users",
# with and without the flag) and use-scim-to-provision-users-and-groups ("Soft-deleting a user
# active=false and restoring the user active=true"; the user is still returned while inactive).
@pytest.mark.parametrize("disable,enable", [("False", "True"), (False, True)])
def test_entra_disables_and_enables_a_user(scim, disable, enable):
    user_id = create(scim, "soft")["id"]
    before = last_seq(scim.org)
    body = scim_body(scim.patch(f"/Users/{user_id}", [{"op": "Replace", "path": "active", "value": disable}]),
                     200)
    assert body["active"] is False
    membership, user = person(user_id)
    assert membership.status == MembershipStatus.DEPROVISIONED and not user.is_active
    assert events_since(scim.org, before) == ["scim.user_updated", "scim.user_deactivated",
                                              "member.deprovisioned"]
    assert entry(scim.org, "member.deprovisioned").data["how"] == "deactivated"
    assert scim_body(scim.get(query("Users", 'userName eq "soft@contoso.com"')), 200)["totalResults"] == 1

    before = last_seq(scim.org)
    body = scim_body(scim.patch(f"/Users/{user_id}", [{"op": "Replace", "path": "active", "value": enable}]),
                     200)
    assert body["active"] is True
    membership, user = person(user_id)
    assert membership.status == MembershipStatus.ACTIVE and user.is_active
    assert events_since(scim.org, before) == ["scim.user_updated", "scim.user_reactivated"]


# use-scim-to-provision-users-and-groups ("Delete User": 204 No Content; "The only time the user
# shouldn't be returned is when it's hard deleted").
def test_entra_deletes_a_user(scim):
    user_id = create(scim, "gone")["id"]
    group_id = scim_body(scim.post("/Groups", {"schemas": [GROUP], "displayName": "Staff",
                                               "members": [{"value": user_id}]}), 201)["id"]
    before = last_seq(scim.org)
    no_content(scim.delete(f"/Users/{user_id}"))
    assert scim_body(scim.get(f"/Users/{user_id}"), 404)["schemas"] == [ERROR]
    assert scim_body(scim.get(query("Users", 'userName eq "gone@contoso.com"')), 200)["totalResults"] == 0
    assert not ScimUser.objects.for_org(scim.org).filter(pk=user_id).exists()
    assert not ScimGroupMember.objects.filter(group_id=group_id).exists()
    assert ScimGroup.objects.for_org(scim.org).get(pk=group_id).version == 2
    user = User.objects.get(email="gone@contoso.com")
    assert not user.is_active
    assert user.memberships.get(org=scim.org).status == MembershipStatus.DEPROVISIONED
    assert events_since(scim.org, before) == ["member.deprovisioned", "scim.user_deleted"]
    assert entry(scim.org, "member.deprovisioned").data["how"] == "deleted"
    assert entry(scim.org, "scim.user_deleted").data == {"user_name": "gone@contoso.com"}
    assert scim_body(scim.delete(f"/Users/{user_id}"), 404)["status"] == "404"


def add_members(*user_ids) -> dict:
    return {"op": "Add", "path": "members", "value": [{"value": i} for i in user_ids]}


def _entra_group(display_name: str) -> dict:
    return {"schemas": [GROUP], "externalId": str(uuid.uuid4()), "displayName": display_name,
            "meta": {"resourceType": "Group"}}


# use-scim-to-provision-users-and-groups ("Group Operations": create with no members, get and query
# with excludedAttributes=members, PATCH displayName / Add / Remove answered 204, delete).
def test_entra_group_lifecycle(scim):
    alice, bob = create(scim, "alice")["id"], create(scim, "bob")["id"]
    before = last_seq(scim.org)
    sent = _entra_group("displayName")
    group = scim_body(scim.post("/Groups", sent), 201)
    group_id = group["id"]
    assert group["displayName"] == "displayName" and group["externalId"] == sent["externalId"]
    assert group.get("members", []) == []

    by_name = query("Groups", 'displayName eq "displayName"', "excludedAttributes=members&")
    found = scim_body(scim.get(by_name), 200)
    assert found["totalResults"] == 1 and found["Resources"][0]["id"] == group_id
    assert "members" not in found["Resources"][0]

    no_content(scim.patch(f"/Groups/{group_id}", [
        {"op": "Replace", "path": "displayName", "value": "1879db59updatedDisplayName"}]))
    no_content(scim.patch(f"/Groups/{group_id}", [{"op": "Add", "path": "members", "value": [
        {"$ref": None, "value": alice}, {"$ref": None, "value": bob}]}]))
    got = scim_body(scim.get(f"/Groups/{group_id}"), 200)
    assert got["displayName"] == "1879db59updatedDisplayName"
    assert sorted(m["value"] for m in got["members"]) == sorted([alice, bob])
    assert "members" not in scim_body(scim.get(f"/Groups/{group_id}?excludedAttributes=members"), 200)

    no_content(scim.patch(f"/Groups/{group_id}", [
        {"op": "Remove", "path": "members", "value": [{"$ref": None, "value": alice}]}]))
    no_content(scim.patch(f"/Groups/{group_id}", [{"op": "remove", "path": f'members[value eq "{bob}"]'}]))
    assert not ScimGroupMember.objects.filter(group_id=group_id).exists()
    # Entra repeats membership changes it is unsure of: adding a member twice changes nothing.
    no_content(scim.patch(f"/Groups/{group_id}", [add_members(alice)]))
    no_content(scim.patch(f"/Groups/{group_id}", [add_members(alice)]))
    assert ScimGroupMember.objects.filter(group_id=group_id).count() == 1

    no_content(scim.delete(f"/Groups/{group_id}"))
    assert not ScimGroup.objects.for_org(scim.org).exists()
    assert events_since(scim.org, before) == [
        "scim.group_created", "scim.group_updated", "scim.group_updated", "scim.group_updated",
        "scim.group_updated", "scim.group_updated", "scim.group_deleted"]
    updates = list(AuditEntry.objects.for_org(scim.org).filter(event_name="scim.group_updated")
                   .order_by("seq"))
    assert updates[0].data["fields"] == ["displayName"]
    assert sorted(updates[1].data["added"]) == sorted([alice, bob])
    assert [u.data["removed"] for u in updates[2:4]] == [[alice], [bob]]


# The "Create Group" request exactly as use-scim-to-provision-users-and-groups shows it, with
# Microsoft's ADSCIM schema URN next to the core one.
def test_entra_group_create_with_the_documented_adscim_schema_urn(scim):
    sent = {**_entra_group("Documented"), "schemas": [GROUP, ADSCIM_GROUP]}
    group = scim_body(scim.post("/Groups", sent), 201)
    assert group["displayName"] == "Documented" and group["schemas"] == [GROUP]
    assert ScimGroup.objects.for_org(scim.org).filter(display_name="Documented").exists()


# Entra group membership into a group an owner mapped to a custom role: Add grants, Remove (the
# pre-flag value-list form) revokes, and deleting the user takes whatever was left.
def test_entra_group_membership_grants_and_revokes_a_mapped_custom_role(scim):
    user_id = create(scim, "auditor")["id"]
    group_id = scim_body(scim.post("/Groups", _entra_group("Auditors")), 201)["id"]
    role = RoleFactory(org=scim.org, name="Auditor", permissions=[Perm.AUDIT_READ.value])
    owner = access_for_user(user=scim.owner.user, org_slug=scim.org.slug)
    mapping_create(access=owner, group=ScimGroup.objects.for_org(scim.org).get(pk=group_id),
                   kind="custom_role", role=role)
    membership, user = person(user_id)
    assert not access_for_user(user=user, org_slug=scim.org.slug).has(Perm.AUDIT_READ)

    before = last_seq(scim.org)
    no_content(scim.patch(f"/Groups/{group_id}", [add_members(user_id)]))
    assert access_for_user(user=user, org_slug=scim.org.slug).has(Perm.AUDIT_READ)
    assert RoleAssignment.objects.filter(membership=membership, role=role,
                                         source__startswith=MAPPING_TAG).exists()
    assert events_since(scim.org, before) == ["scim.mapping_granted", "scim.group_updated"]
    assert entry(scim.org, "scim.mapping_granted").data["target"] == "Auditor"

    before = last_seq(scim.org)
    no_content(scim.patch(f"/Groups/{group_id}", [
        {"op": "Remove", "path": "members", "value": [{"value": user_id}]}]))
    assert not access_for_user(user=user, org_slug=scim.org.slug).has(Perm.AUDIT_READ)
    assert not RoleAssignment.objects.filter(membership=membership).exists()
    assert events_since(scim.org, before) == ["scim.mapping_revoked", "scim.group_updated"]

    no_content(scim.patch(f"/Groups/{group_id}", [add_members(user_id)]))
    before = last_seq(scim.org)
    no_content(scim.delete(f"/Users/{user_id}"))
    assert not RoleAssignment.objects.filter(membership=membership).exists()
    assert access_for_user(user=User.objects.get(pk=user.pk), org_slug=scim.org.slug) is None
    assert events_since(scim.org, before) == ["scim.mapping_revoked", "member.deprovisioned",
                                              "scim.user_deleted"]
