"""Section G of the security cases: each bad input gets its response, changes nothing, and is
audited where it is a security event."""

import base64
import json

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import ApiKey, Membership, MembershipStatus
from audit.models import AuditEntry
from scim.models import ScimGroup, ScimToken, ScimUser
from tests.factories import api_key_for, sign_in
from tests.helpers import audit_events as _events
from tests.scim.conftest import BASE, scim_for, user_body

pytestmark = pytest.mark.django_db


def _error(response, status: int, scim_type: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/scim+json")
    body = response.json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert body["status"] == str(status)
    if scim_type:
        assert body["scimType"] == scim_type
    assert "Traceback" not in response.content.decode()
    return body


def _user(scim, name="bjensen@example.com", **extra) -> dict:
    response = scim.post("/Users", user_body(name, **extra))
    assert response.status_code == 201, response.content
    return response.json()


# --- 52: who may call at all ---------------------------------------------------------------------

@pytest.mark.parametrize("header", [None, "Bearer", "Bearer nonsense", "Basic Zm9vOmJhcg==",
                                    "Bearer scim_0123456789abcdef_not-the-secret"])
def test_no_token_or_a_bad_token_is_401_with_a_bearer_challenge(scim, header):
    kwargs = {"HTTP_AUTHORIZATION": header} if header else {}
    response = Client().get(f"{BASE}/Users", **kwargs)
    _error(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_known_token_with_a_wrong_secret_is_401_and_audited(scim):
    lookup = scim.token.split("_")[1]
    response = scim.get("/Users", token=f"scim_{lookup}_{'x' * 43}")
    _error(response, 401)
    assert _events(scim.org, "scim.auth_failed").get().data == {"reason": "bad_secret"}


def test_a_deleted_token_is_401(scim):
    ScimToken.objects.for_org(scim.org).filter(pk=scim.token_row.pk).delete()
    _error(scim.get("/Users"), 401)


def test_an_admins_session_cookie_is_not_a_scim_credential(scim):
    client = sign_in(Client(), scim.owner.user, mfa=True)
    assert client.get(f"/orgs/{scim.org.slug}/members/").status_code == 200  # the session works
    _error(client.get(f"{BASE}/Users"), 401)
    _error(client.post(f"{BASE}/Users", json.dumps(user_body("x@example.com")),
                       content_type="application/scim+json"), 401)
    assert not ScimUser.objects.for_org(scim.org).exists()


# --- 53, 54: another org's ids -------------------------------------------------------------------

def test_another_orgs_user_is_a_404_with_the_missing_body(scim):
    other = scim_for()
    theirs = _user(other)
    missing = _error(scim.get("/Users/7d0b1a52-51a4-4f0a-9a51-3e1f0d7a1c11"), 404)
    foreign = _error(scim.get(f"/Users/{theirs['id']}"), 404)
    assert foreign == missing


@pytest.mark.parametrize("method", ["PATCH", "PUT", "DELETE"])
def test_writing_another_orgs_user_is_a_404_changes_nothing_and_is_audited(scim, method):
    other = scim_for()
    theirs = _user(other)
    body = {"PATCH": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                      "Operations": [{"op": "replace", "path": "active", "value": False}]},
            "PUT": user_body("bjensen@example.com", active=False), "DELETE": None}[method]
    _error(scim.call(method, f"/Users/{theirs['id']}", body), 404)
    row = ScimUser.objects.for_org(other.org).get(pk=theirs["id"])
    assert row.active is True and row.version == 1
    assert row.membership.status != MembershipStatus.DEPROVISIONED
    entry = _events(scim.org, "scim.cross_tenant_denied").get()
    assert entry.data == {"method": method, "resource": "Users", "id": theirs["id"]}
    assert not _events(other.org, "scim.cross_tenant_denied").exists()


def test_another_orgs_user_as_a_group_member_is_the_same_404(scim):
    other = scim_for()
    theirs = _user(other)
    group = scim.post("/Groups", {"displayName": "Engineering"}).json()
    add = [{"op": "add", "path": "members", "value": [{"value": theirs["id"]}]}]
    foreign = _error(scim.patch(f"/Groups/{group['id']}", add), 404)
    nobody = "7d0b1a52-51a4-4f0a-9a51-3e1f0d7a1c11"
    missing_add = [{"op": "add", "path": "members", "value": [{"value": nobody}]}]
    assert _error(scim.patch(f"/Groups/{group['id']}", missing_add), 404) == foreign
    assert not ScimGroup.objects.for_org(scim.org).get(pk=group["id"]).members.exists()
    assert _events(scim.org, "scim.cross_tenant_denied").get().data["id"] == theirs["id"]
    _error(scim.post("/Groups", {"displayName": "Sales", "members": [{"value": theirs["id"]}]}), 404)
    assert not ScimGroup.objects.for_org(scim.org).filter(display_name="Sales").exists()


# --- 55: filters stay in the org -----------------------------------------------------------------

def test_a_filter_matching_everything_sees_only_this_org(scim):
    other = scim_for()
    for name in ("a@example.com", "b@example.com"):
        _user(other, name)
    _user(scim, "c@example.com")
    body = scim.get('/Users?filter=userName sw ""').json()
    assert body["totalResults"] == 1 and [r["userName"] for r in body["Resources"]] == ["c@example.com"]
    body = scim.post("/Users/.search", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                                        "filter": 'userName co "@"'}).json()
    assert body["totalResults"] == 1


# --- 56: paging bounds ---------------------------------------------------------------------------

def test_page_sizes_are_capped_and_bad_bounds_are_clamped(scim, settings):
    for i in range(3):
        _user(scim, f"u{i}@example.com")
    settings.IAM_SCIM_MAX_PAGE = 2
    body = scim.get("/Users?count=100000").json()
    assert body["totalResults"] == 3 and body["itemsPerPage"] == 2 and len(body["Resources"]) == 2
    body = scim.get("/Users?count=-1").json()  # RFC 7644 §3.4.2.4: negative is 0
    assert body["totalResults"] == 3 and body["Resources"] == [] and body["itemsPerPage"] == 0
    body = scim.get("/Users?startIndex=0&count=1").json()  # below 1 is 1
    assert body["startIndex"] == 1 and len(body["Resources"]) == 1
    _error(scim.get("/Users?count=lots"), 400, "invalidValue")


# --- 57: no privilege through PATCH ----------------------------------------------------------------

@pytest.mark.parametrize("operation", [
    {"op": "add", "path": "roles", "value": [{"value": "owner"}]},
    {"op": "replace", "path": "is_superuser", "value": True},
    {"op": "replace", "value": {"roles": [{"value": "owner"}]}},
    {"op": "add", "path": "groups", "value": [{"value": "GROUP"}]},
    {"op": "replace", "path": "urn:example:params:scim:schemas:extension:acme:2.0:User:admin", "value": True},
    {"op": "replace", "path": "entitlements", "value": [{"value": "admin"}]},
])
def test_privilege_paths_are_refused_and_change_nothing(scim, operation):
    other = scim_for()
    their_group = other.post("/Groups", {"displayName": "Admins"}).json()
    operation = json.loads(json.dumps(operation).replace("GROUP", their_group["id"]))
    created = _user(scim)
    membership = Membership.objects.for_org(scim.org).get(scim__pk=created["id"])
    body = _error(scim.patch(f"/Users/{created['id']}", [operation]), 400)
    assert body["scimType"] in ("invalidPath", "mutability", "invalidValue")
    membership.refresh_from_db()
    assert membership.role == "member"
    assert ScimUser.objects.for_org(scim.org).get(pk=created["id"]).version == 1
    assert not ScimGroup.objects.for_org(other.org).get(pk=their_group["id"]).members.exists()
    assert _events(scim.org, "scim.request_rejected").get().data["status"] == 400


# --- 58: passwords -----------------------------------------------------------------------------

def test_a_password_is_never_returned_nor_filterable(scim):
    created = _user(scim, password="a sufficiently long passphrase 4 SCIM")
    assert "password" not in created
    assert "password" not in json.dumps(scim.get(f"/Users/{created['id']}").json())
    assert "password" not in json.dumps(scim.get("/Users").json())
    _error(scim.get('/Users?filter=password eq "x"'), 400, "invalidFilter")
    user = ScimUser.objects.for_org(scim.org).get(pk=created["id"]).membership.user
    assert user.check_password("a sufficiently long passphrase 4 SCIM")


def test_a_scim_password_goes_through_the_breach_policy(scim):
    created = _user(scim)
    user = ScimUser.objects.for_org(scim.org).get(pk=created["id"]).membership.user
    body = _error(scim.patch(f"/Users/{created['id']}", [{"op": "replace", "path": "password",
                                                         "value": "password123"}]), 400, "invalidValue")
    assert "policy" in body["detail"]
    user.refresh_from_db()
    assert not user.has_usable_password()
    assert _events(scim.org, "scim.request_rejected").exists()


def test_an_account_that_belongs_to_another_org_too_cannot_get_a_password_here(scim):
    other = scim_for()
    _user(other, "shared@example.com")
    created = _user(scim, "shared@example.com")
    _error(scim.patch(f"/Users/{created['id']}", [{"op": "replace", "path": "password",
                                                  "value": "a sufficiently long passphrase 4 SCIM"}]),
           400, "mutability")


# --- 59: deactivation takes effect at once --------------------------------------------------------

def test_deactivation_revokes_sessions_and_keys_at_once_and_is_audited(scim):
    created = _user(scim)
    membership = Membership.objects.for_org(scim.org).get(scim__pk=created["id"])
    browser = sign_in(Client(), membership.user)
    assert browser.get(f"/orgs/{scim.org.slug}/members/").status_code == 200
    key, secret = api_key_for(scim.org, ["member:read"], created_by=membership.user)
    response = scim.patch(f"/Users/{created['id']}", [{"op": "replace", "value": {"active": False}}])
    assert response.status_code == 200 and response.json()["active"] is False
    assert browser.get(f"/orgs/{scim.org.slug}/members/").status_code in (302, 404)
    api = Client().get(f"/api/v1/orgs/{scim.org.slug}/members", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api.status_code == 401
    assert ApiKey.objects.for_org(scim.org).get(pk=key.pk).revoked_at is not None
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.DEPROVISIONED
    entry = _events(scim.org, "member.deprovisioned").get()
    assert entry.actor_type == "scim" and entry.data["sessions_revoked"] >= 1
    assert entry.data["api_keys_revoked"] == 1


# --- 60: token rotation ------------------------------------------------------------------------

def test_an_old_token_works_through_its_grace_period_and_not_after(scim):
    from freezegun import freeze_time

    from rbac.guard import access_for_user
    from scim.tokens import scim_token_create, scim_token_revoke

    access = access_for_user(user=scim.owner.user, org_slug=scim.org.slug)
    _, new = scim_token_create(access=access, name="Okta (new)")
    start = timezone.now()
    with freeze_time(start) as clock:
        scim_token_revoke(access=access, token=scim.token_row, grace_seconds=3600)
        assert scim.get("/Users").status_code == 200
        assert scim.get("/Users", token=new).status_code == 200
        clock.tick(3601)
        _error(scim.get("/Users"), 401)
        assert scim.get("/Users", token=new).status_code == 200
    row = ScimToken.objects.for_org(scim.org).get(pk=scim.token_row.pk)
    assert scim.token.split("_", 2)[2] not in json.dumps([row.secret_hash, row.lookup_id, row.name])
    assert _events(scim.org, "scim.auth_failed").get().data == {"reason": "expired"}


# --- 61: a SCIM token is only a SCIM token ------------------------------------------------------------

def test_a_scim_token_is_refused_by_the_admin_api_and_the_token_endpoint(scim):
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {scim.token}"}
    # 401, not 403: a 403 would mean the token was taken for a principal that merely lacks a permission.
    refused = Client().get(f"/api/v1/orgs/{scim.org.slug}/members", **bearer)
    assert refused.status_code == 401 and refused["WWW-Authenticate"].startswith("Bearer")
    # Presented as a client secret, the way a client authenticates at the token endpoint.
    basic = base64.b64encode(f"agt_anything:{scim.token}".encode()).decode()
    response = Client().post(f"/oauth/{scim.org.slug}/token", "grant_type=client_credentials",
                             content_type="application/x-www-form-urlencoded",
                             HTTP_AUTHORIZATION=f"Basic {basic}")
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    assert not AuditEntry.objects.for_org(scim.org).filter(event_name="token.issued").exists()


# --- rate limits --------------------------------------------------------------------------------

def test_requests_over_the_limit_get_429_with_retry_after(scim, settings):
    settings.IAM_SCIM_RATE_LIMIT = 3
    assert [scim.get("/Users").status_code for _ in range(3)] == [200, 200, 200]
    response = scim.get("/Users")
    _error(response, 429)
    assert response["Retry-After"] == "60"
    _error(scim.post("/Users", user_body("late@example.com")), 429)
    assert not ScimUser.objects.for_org(scim.org).exists()
    other = scim_for()  # another org's IdP, from the same address: its own budget
    assert other.get("/Users").status_code == 200


def test_an_address_that_keeps_guessing_is_refused_but_its_valid_tokens_are_not(scim, settings):
    settings.IAM_SCIM_AUTH_FAILURE_LIMIT = 2
    guess = {"HTTP_AUTHORIZATION": "Bearer scim_0123456789abcdef_guess"}
    assert [Client().get(f"{BASE}/Users", **guess).status_code for _ in range(2)] == [401, 401]
    _error(Client().get(f"{BASE}/Users", **guess), 429)
    # The same address with a valid token: served (IdPs share addresses across customers), and the
    # guessed id stays refused until the minute is over (tests/scim/test_auth_throttle.py).
    assert scim.get("/Users").status_code == 200
    _error(Client().get(f"{BASE}/Users", **guess), 429)
