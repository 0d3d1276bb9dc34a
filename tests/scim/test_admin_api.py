"""Admin API of SCIM provisioning: `scim-tokens` (the bearer token only in the creating response) and
`scim-mappings`. Tests marked in their name with `mapping_service` exercise scim.mappings'
mapping_create/mapping_delete; the others stop before the service or use scim.tokens."""

from datetime import timedelta

import pytest
from django.conf import settings
from freezegun import freeze_time
from rest_framework.test import APIClient

from core.permissions import Perm
from rbac.guard import access_for_user
from scim.models import GroupMapping, ScimGroup, ScimToken
from scim.tokens import scim_token_authenticate, scim_token_create
from tests.factories import MemberFactory, OrgFactory, RoleFactory, TeamFactory, sign_in
from tests.helpers import audit_events as events

pytestmark = pytest.mark.django_db

LISTED_FIELDS = {"id", "name", "display", "created_at", "created_by", "last_used_at", "last_failure_at",
                 "expires_at", "revoked_at", "status"}


def tokens_url(org, *parts) -> str:
    return "/".join([f"/api/v1/orgs/{org.slug}/scim-tokens", *map(str, parts)])


def mappings_url(org, *parts) -> str:
    return "/".join([f"/api/v1/orgs/{org.slug}/scim-mappings", *map(str, parts)])


def as_user(membership, **kwargs) -> APIClient:
    return sign_in(APIClient(), membership.user, **kwargs)


def make_token(owner, name="Okta") -> tuple[ScimToken, str]:
    return scim_token_create(access=access_for_user(user=owner.user, org_slug=owner.org.slug), name=name)


# --- Tokens -------------------------------------------------------------------------------------


def test_create_returns_the_token_once_and_it_authenticates(org, owner):
    client = as_user(owner)
    response = client.post(tokens_url(org), {"name": "Okta production"}, format="json")
    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    secret = body["token"]
    assert secret.startswith("scim_")
    assert body["scim_base_url"] == f"{settings.IAM_CANONICAL_ORIGIN.rstrip('/')}/scim/v2/"
    assert (body["name"], body["status"]) == ("Okta production", "active")
    assert body["created_by"] == owner.user.email

    authenticated = scim_token_authenticate(secret)
    assert authenticated is not None
    assert (str(authenticated.pk), authenticated.org_id) == (body["id"], org.pk)

    listed = client.get(tokens_url(org))
    detail = client.get(tokens_url(org, body["id"]))
    for later in (listed, detail):
        assert later.status_code == 200
        assert secret not in later.content.decode()
        assert secret.split("_", 2)[2] not in later.content.decode()
    token = ScimToken.objects.for_org(org).get()
    assert token.secret_hash not in listed.content.decode() + detail.content.decode()
    assert set(listed.json()["results"][0]) == LISTED_FIELDS == set(detail.json())
    assert detail.json()["display"] == f"scim_{token.lookup_id}_…"
    assert detail.json()["last_used_at"] is not None  # the authentication above used it
    created = events(org, "scim.token_created").get()
    assert created.data == {"name": "Okta production"} and created.target_id == body["id"]


def test_a_token_needs_a_name(org, owner):
    response = as_user(owner).post(tokens_url(org), {"name": "  "}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()["fields"]
    assert not ScimToken.objects.for_org(org).exists()


def test_revoke_now_ends_the_token_and_its_use_is_audited(org, owner):
    token, secret = make_token(owner)
    response = as_user(owner).post(tokens_url(org, token.pk, "revoke"), {}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "revoked" and response.json()["revoked_at"]
    assert "token" not in response.json()
    assert events(org, "scim.token_revoked").get().data == {"name": "Okta", "grace_seconds": 0}

    assert scim_token_authenticate(secret) is None
    failure = events(org, "scim.auth_failed").get()
    assert (failure.outcome, failure.data) == ("failure", {"reason": "revoked"})
    assert failure.target_id == str(token.pk)


def test_revoke_with_grace_works_until_the_grace_period_ends(org, owner):
    with freeze_time() as frozen:
        token, secret = make_token(owner)
        client = as_user(owner)
        response = client.post(tokens_url(org, token.pk, "revoke"), {"grace_seconds": 3600}, format="json")
        assert response.status_code == 200
        assert response.json()["status"] == "expiring" and response.json()["revoked_at"] is None
        token.refresh_from_db()
        assert token.expires_at is not None and token.revoked_at is None

        frozen.tick(timedelta(minutes=59))
        assert scim_token_authenticate(secret).pk == token.pk
        assert not events(org, "scim.auth_failed").exists()

        frozen.tick(timedelta(minutes=2))
        assert scim_token_authenticate(secret) is None
        assert events(org, "scim.auth_failed").get().data == {"reason": "expired"}
        # A new session: an hour of idle time may have ended the first one.
        assert as_user(owner).get(tokens_url(org, token.pk)).json()["status"] == "expired"


@pytest.mark.parametrize("grace", [-1, 7 * 24 * 3600 + 1])
def test_a_grace_period_outside_zero_to_a_week_is_refused(org, owner, grace):
    token, secret = make_token(owner)
    response = as_user(owner).post(tokens_url(org, token.pk, "revoke"), {"grace_seconds": grace},
                                   format="json")
    assert response.status_code == 400
    assert "grace_seconds" in response.json()["fields"]
    token.refresh_from_db()
    assert token.is_live() and token.expires_at is None
    assert not events(org, "scim.token_revoked").exists()


def test_another_orgs_token_is_404_and_stays_live(org, owner):
    other_owner = MemberFactory(org=OrgFactory(), role="owner")
    foreign, secret = make_token(other_owner)
    client = as_user(owner)
    assert client.get(tokens_url(org, foreign.pk)).status_code == 404
    assert client.post(tokens_url(org, foreign.pk, "revoke"), {}, format="json").status_code == 404
    assert client.get(tokens_url(org)).json()["results"] == []
    assert scim_token_authenticate(secret).pk == foreign.pk


def test_a_member_without_scim_write_gets_403_and_nothing_changes(org, owner):
    token, secret = make_token(owner)
    billing = as_user(MemberFactory(org=org, role="billing_admin"))  # holds scim:read, not scim:write
    assert billing.get(tokens_url(org)).status_code == 200

    created = billing.post(tokens_url(org), {"name": "Sneaky"}, format="json")
    assert created.status_code == 403 and created.json()["error"] == "permission_denied"
    assert ScimToken.objects.for_org(org).count() == 1
    revoked = billing.post(tokens_url(org, token.pk, "revoke"), {}, format="json")
    assert revoked.status_code == 403
    token.refresh_from_db()
    assert token.is_live() and scim_token_authenticate(secret) is not None
    denials = events(org, "access.denied")
    assert [d.data["required"] for d in denials.order_by("seq")] == ["scim:write", "scim:write"]


def test_a_member_without_scim_read_gets_403(org, owner):
    make_token(owner)
    response = as_user(MemberFactory(org=org, role="member")).get(tokens_url(org))
    assert response.status_code == 403
    assert events(org, "access.denied").get().data["required"] == "scim:read"


def test_create_and_revoke_need_a_fresh_reauthentication(org, owner):
    token, secret = make_token(owner)
    stale = as_user(owner, auth_age=3600)
    created = stale.post(tokens_url(org), {"name": "Entra"}, format="json")
    assert created.status_code == 403 and created.json()["error"] == "reauth_required"
    revoked = stale.post(tokens_url(org, token.pk, "revoke"), {}, format="json")
    assert revoked.status_code == 403 and revoked.json()["error"] == "reauth_required"
    assert ScimToken.objects.for_org(org).count() == 1
    token.refresh_from_db()
    assert token.is_live()
    assert [e.data["action"] for e in events(org, "reauth.required").order_by("seq")] == [
        "ScimTokenViewSet.create", "ScimTokenViewSet.revoke"]
    assert stale.get(tokens_url(org)).status_code == 200  # reading is not gated

    fresh = as_user(owner)
    assert fresh.post(tokens_url(org), {"name": "Entra"}, format="json").status_code == 201


def test_an_api_key_with_every_permission_is_not_asked_to_reauthenticate(org, key_client):
    client = key_client(*Perm)
    response = client.post(tokens_url(org), {"name": "Terraform-managed"}, format="json")
    assert response.status_code == 201
    assert scim_token_authenticate(response.json()["token"]) is not None


def test_scim_write_alone_cannot_issue_a_token_that_manages_every_member(org, key_client):
    # A SCIM token can deprovision anyone and fill role-mapped groups: issuing one takes an owner's
    # power, not just the provisioning permission.
    client = key_client(Perm.SCIM_READ, Perm.SCIM_WRITE)
    response = client.post(tokens_url(org), {"name": "Terraform-managed"}, format="json")
    assert response.status_code == 403
    assert not ScimToken.objects.for_org(org).exists()


# --- Mappings -----------------------------------------------------------------------------------


@pytest.fixture
def group(org):
    return ScimGroup.objects.create(org=org, display_name="Engineering")


def test_mapping_service_create_builtin_role_and_list(org, owner, group):
    client = as_user(owner)
    response = client.post(mappings_url(org), {"group": str(group.pk), "kind": "builtin_role",
                                               "builtin_role": "viewer"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["group"] == {"id": str(group.pk), "display_name": "Engineering"}
    assert (body["kind"], body["builtin_role"]) == ("builtin_role", "viewer")
    assert GroupMapping.objects.for_org(org).get().builtin_role == "viewer"
    assert [m["id"] for m in client.get(mappings_url(org)).json()["results"]] == [body["id"]]
    assert events(org, "scim.mapping_created").exists()


def test_mapping_service_create_team_and_custom_role(org, owner, group):
    client = as_user(owner)
    team, role = TeamFactory(org=org), RoleFactory(org=org, permissions=["agent:read"])
    to_team = client.post(mappings_url(org), {"group": str(group.pk), "kind": "team", "team": str(team.pk),
                                              "team_role": "member"}, format="json")
    assert to_team.status_code == 201, to_team.content
    assert (to_team.json()["team"]["id"], to_team.json()["team_role"]) == (str(team.pk), "member")
    to_role = client.post(mappings_url(org), {"group": str(group.pk), "kind": "custom_role",
                                              "role": str(role.pk)}, format="json")
    assert to_role.status_code == 201, to_role.content
    assert to_role.json()["role"] == {"id": str(role.pk), "name": role.name}


def test_mapping_service_delete(org, owner, group):
    mapping = GroupMapping.objects.create(org=org, group=group, kind="builtin_role", builtin_role="viewer")
    response = as_user(owner).delete(mappings_url(org, mapping.pk))
    assert response.status_code == 204
    assert not GroupMapping.objects.for_org(org).exists()
    assert events(org, "scim.mapping_deleted").exists()


def test_a_group_never_maps_to_owner(org, owner, group):
    response = as_user(owner).post(mappings_url(org), {"group": str(group.pk), "kind": "builtin_role",
                                                       "builtin_role": "owner"}, format="json")
    assert response.status_code == 400
    assert "builtin_role" in response.json()["fields"]
    assert not GroupMapping.objects.for_org(org).exists()


@pytest.mark.parametrize("body,field", [
    ({"kind": "builtin_role"}, "builtin_role"),
    ({"kind": "custom_role"}, "role"),
    ({"kind": "team", "team_role": "member"}, "team"),
    ({"kind": "team", "team": "{team}"}, "team_role"),
])
def test_each_kind_needs_its_target(org, owner, group, body, field):
    team = TeamFactory(org=org)
    body = {"group": str(group.pk), **{k: v.format(team=team.pk) for k, v in body.items()}}
    response = as_user(owner).post(mappings_url(org), body, format="json")
    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert not GroupMapping.objects.for_org(org).exists()


@pytest.mark.parametrize("kind", ["group", "custom_role", "team"])
def test_another_orgs_group_role_or_team_is_404(org, owner, group, kind):
    other = OrgFactory()
    body = {"group": str(group.pk), "kind": "builtin_role", "builtin_role": "viewer"}
    if kind == "group":
        body["group"] = str(ScimGroup.objects.create(org=other, display_name="Engineering").pk)
    elif kind == "custom_role":
        body.update(kind="custom_role", role=str(RoleFactory(org=other).pk))
    else:
        body.update(kind="team", team=str(TeamFactory(org=other).pk), team_role="member")
    response = as_user(owner).post(mappings_url(org), body, format="json")
    assert response.status_code == 404
    assert not GroupMapping.objects.unscoped().exists()


def test_another_orgs_mapping_is_404_and_is_not_deleted(org, owner):
    other = OrgFactory()
    foreign_group = ScimGroup.objects.create(org=other, display_name="Ops")
    foreign = GroupMapping.objects.create(org=other, group=foreign_group, kind="builtin_role",
                                          builtin_role="viewer")
    client = as_user(owner)
    assert client.get(mappings_url(org, foreign.pk)).status_code == 404
    assert client.delete(mappings_url(org, foreign.pk)).status_code == 404
    assert GroupMapping.objects.for_org(other).filter(pk=foreign.pk).exists()


def test_mapping_writes_need_scim_write_and_a_fresh_reauthentication(org, owner, group):
    mapping = GroupMapping.objects.create(org=org, group=group, kind="builtin_role", builtin_role="viewer")
    body = {"group": str(group.pk), "kind": "builtin_role", "builtin_role": "member"}
    billing = as_user(MemberFactory(org=org, role="billing_admin"))
    assert billing.get(mappings_url(org)).status_code == 200
    assert billing.post(mappings_url(org), body, format="json").status_code == 403
    assert billing.delete(mappings_url(org, mapping.pk)).status_code == 403
    stale = as_user(owner, auth_age=3600)
    refused = stale.post(mappings_url(org), body, format="json")
    assert refused.status_code == 403 and refused.json()["error"] == "reauth_required"
    assert stale.delete(mappings_url(org, mapping.pk)).json()["error"] == "reauth_required"
    assert list(GroupMapping.objects.for_org(org)) == [mapping]
    assert events(org, "access.denied").count() == 2
    assert events(org, "reauth.required").count() == 2
