"""A write aimed at another org's Users or Groups is refused as a 404, changes nothing, and is on record
in the caller's org as `scim.cross_tenant_denied` with a refusal's outcome, never a success."""

import pytest

from audit.events import Outcome
from scim.models import ScimGroup, ScimUser
from tests.helpers import audit_events
from tests.scim.conftest import scim_for, user_body

pytestmark = pytest.mark.django_db

GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _created(response) -> dict:
    assert response.status_code == 201, response.content
    return response.json()


@pytest.fixture
def theirs(db):
    other = scim_for()
    user = _created(other.post("/Users", user_body("theirs@example.com")))
    group = _created(other.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Theirs",
                                            "members": [{"value": user["id"]}]}))
    return other, user["id"], group["id"]


def _writes(user_id: str, group_id: str, mine: str):
    def patch(*operations):
        return {"schemas": [PATCH_SCHEMA], "Operations": list(operations)}

    deactivate = patch({"op": "replace", "path": "active", "value": False})
    rename = patch({"op": "replace", "path": "displayName", "value": "x"})
    add_theirs = patch({"op": "add", "path": "members", "value": [{"value": user_id}]})
    return {
        "PATCH user": ("PATCH", f"/Users/{user_id}", deactivate, user_id),
        "PUT user": ("PUT", f"/Users/{user_id}", user_body("theirs@example.com", active=False), user_id),
        "DELETE user": ("DELETE", f"/Users/{user_id}", None, user_id),
        "PATCH group": ("PATCH", f"/Groups/{group_id}", rename, group_id),
        "PUT group": ("PUT", f"/Groups/{group_id}", {"displayName": "x"}, group_id),
        "DELETE group": ("DELETE", f"/Groups/{group_id}", None, group_id),
        "their user into my group": ("PATCH", f"/Groups/{mine}", add_theirs, user_id),
        "their user in a new group": ("POST", "/Groups", {"displayName": "Mine too",
                                                           "members": [{"value": user_id}]}, user_id),
    }


@pytest.mark.parametrize("write", list(_writes("u", "g", "m")))
def test_a_cross_tenant_write_is_recorded_as_denied(scim, theirs, write):
    other, user_id, group_id = theirs
    mine = _created(scim.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Mine"}))["id"]
    method, path, body, target = _writes(user_id, group_id, mine)[write]
    response = scim.call(method, path, body)
    assert response.status_code == 404, response.content
    entry = audit_events(scim.org, "scim.cross_tenant_denied").get()
    assert entry.outcome == Outcome.DENIED
    assert entry.data["id"] == target and entry.actor_type == "scim"
    rejected = audit_events(scim.org, "scim.request_rejected")
    assert not rejected.exists()  # a 404 is not among the statuses recorded as a rejected write
    user = ScimUser.objects.for_org(other.org).get(pk=user_id)
    group = ScimGroup.objects.for_org(other.org).get(pk=group_id)
    assert (user.version, user.active, group.version, group.display_name) == (1, True, 1, "Theirs")
    assert list(group.members.values_list("pk", flat=True)) == [user.pk]
    assert not ScimGroup.objects.for_org(scim.org).exclude(pk=mine).exists()
    assert not ScimGroup.objects.for_org(scim.org).get(pk=mine).members.exists()
    assert not audit_events(other.org, "scim.cross_tenant_denied").exists()
