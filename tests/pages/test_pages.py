import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import ApiKey, Membership
from audit.models import AuditEntry
from core.secrets import secret_hash
from rbac.models import Role, Team, TeamMembership
from tests.factories import (
    PASSWORD,
    MemberFactory,
    OrgFactory,
    RoleFactory,
    TeamFactory,
    UserFactory,
    sign_in,
)
from tests.helpers import audit_events as events

pytestmark = pytest.mark.django_db


def as_user(user) -> Client:
    client = Client()
    sign_in(client, user)
    return client


def member(org, role="member", **kwargs):
    return MemberFactory(org=org, role=role, **kwargs)


# Which app's namespace each page is in (the parametrized tests name pages without it).
PAGE_NAMESPACES = {"teams": "rbac", "team-detail": "rbac", "roles": "rbac", "role-new": "rbac",
                   "role-edit": "rbac", "role-delete": "rbac", "audit-log": "audit", "access-review": "audit"}


def url(name, org, **kwargs):
    if ":" not in name:
        name = f"{PAGE_NAMESPACES.get(name, 'accounts')}:{name}"
    return reverse(name, kwargs={"org": org.slug, **kwargs})


# --- Login --------------------------------------------------------------------------------------


def test_login_page_has_contract_fields(client):
    body = client.get("/login/").content.decode()
    assert 'name="email"' in body and 'name="password"' in body and "csrfmiddlewaretoken" in body


def test_login_sets_a_new_session_and_records_success(owner, org):
    client = Client(enforce_csrf_checks=False)
    session = client.session
    session["probe"] = 1
    session.save()
    before = session.session_key
    response = client.post("/login/", {"email": owner.user.email.upper(), "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == url("console:overview", org)
    assert client.cookies["sessionid"].value != before
    assert client.session["_auth_user_id"] == str(owner.user.pk)
    entry = events(None, "login.success").get()
    assert entry.actor_id == str(owner.user.pk) and entry.data == {"method": "password"}


def test_login_wrong_password_is_generic_and_leaves_no_session(owner):
    client = Client()
    response = client.post("/login/", {"email": owner.user.email, "password": "wrong"})
    assert response.status_code == 401
    assert "Email or password is incorrect." in response.content.decode()
    assert "_auth_user_id" not in client.session
    entry = events(None, "login.failure").get()
    assert entry.data == {"reason": "bad_credentials", "method": "password"}
    assert owner.user.email not in str(entry.data) and entry.actor_type == "anonymous"


def test_login_unknown_email_gives_the_same_error(db):
    response = Client().post("/login/", {"email": "nobody@example.com", "password": "x"})
    assert response.status_code == 401
    assert "Email or password is incorrect." in response.content.decode()


def test_login_refuses_an_over_long_password_without_a_session(owner):
    client = Client()
    response = client.post("/login/", {"email": owner.user.email, "password": "a" * 1025})
    assert response.status_code == 400
    assert "Email or password is incorrect." in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert events(None, "login.failure").get().data["reason"] == "password_too_long"


def test_login_follows_a_safe_next_only(owner, org):
    target = url("roles", org)
    form = {"email": owner.user.email, "password": PASSWORD}
    assert Client().post(f"/login/?next={target}", form)["Location"] == target
    evil = Client().post("/login/?next=https://evil.example/", form)
    assert evil["Location"] == url("console:overview", org)


def test_user_without_org_sees_explanation(db):
    response = as_user(UserFactory()).get("/", follow=True)
    assert "You are not a member of any organization" in response.content.decode()


def test_logout_is_post_only(owner):
    client = as_user(owner.user)
    assert client.get("/logout/").status_code == 405
    assert client.post("/logout/").status_code == 302
    assert "_auth_user_id" not in client.session


def test_org_switch_only_to_own_orgs(owner):
    other = OrgFactory()
    client = as_user(owner.user)
    assert client.get("/orgs/switch/", {"org": other.slug}).status_code == 404
    switched = client.get("/orgs/switch/", {"org": owner.org.slug})
    assert switched["Location"] == url("console:overview", owner.org)


# --- The permission matrix, per page family ------------------------------------------------------

PAGES = ["members", "teams", "roles", "role-new", "api-keys", "audit-log", "access-review"]
# (page, method, a built-in role that lacks that method's permission)
DENIED = [
    ("members", "post", "viewer"),
    ("teams", "post", "viewer"),
    ("roles", "post", "owner"),  # no POST is declared on the role list: refused, never allowed
    ("role-new", "get", "member"),
    ("api-keys", "get", "viewer"),
    ("audit-log", "get", "member"),
    ("access-review", "get", "billing_admin"),
]


@pytest.mark.parametrize("page", PAGES)
def test_anonymous_is_sent_to_login(org, page):
    target = url(page, org)
    response = Client().get(target)
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={target}"


@pytest.mark.parametrize("page", PAGES)
def test_member_of_another_org_gets_404(org, page):
    outsider = member(OrgFactory(), role="owner")
    assert as_user(outsider.user).get(url(page, org)).status_code == 404


@pytest.mark.parametrize("page,method,role", DENIED)
def test_missing_permission_is_403_and_audited(org, page, method, role):
    caller = member(org, role=role)
    response = getattr(as_user(caller.user), method)(url(page, org))
    assert response.status_code == 403
    assert "You do not have access to this page" in response.content.decode()
    if page != "roles":
        assert events(org, "access.denied").filter(actor_id=str(caller.user_id)).exists()


@pytest.mark.parametrize("page", PAGES)
def test_owner_sees_every_page(owner, org, page):
    response = as_user(owner.user).get(url(page, org))
    assert response.status_code == 200
    assert 'href="#main"' in response.content.decode()


def test_suspended_member_gets_404(org):
    caller = member(org, role="owner", status="suspended")
    assert as_user(caller.user).get(url("members", org)).status_code == 404


def test_other_orgs_object_is_404(owner, org):
    foreign = member(OrgFactory())
    assert as_user(owner.user).get(url("member-edit", org, pk=foreign.pk)).status_code == 404


# --- Members ------------------------------------------------------------------------------------


def test_member_list_shows_members_and_hides_writes_from_viewers(org):
    viewer = member(org, role="viewer")
    body = as_user(viewer.user).get(url("members", org)).content.decode()
    assert viewer.user.email in body and "Add a member" not in body


def test_add_member(owner, org):
    role = RoleFactory(org=org, name="Auditors", permissions=["audit:read"])
    response = as_user(owner.user).post(
        url("members", org), {"email": "New.Person@Example.com", "role": "viewer", "custom_roles": [role.pk]}
    )
    assert response.status_code == 302
    added = Membership.objects.for_org(org).get(user__email="new.person@example.com")
    assert added.role == "viewer" and list(added.custom_roles.all()) == [role]
    assert events(org, "member.added").filter(target_id=str(added.pk)).exists()
    assert events(org, "member.custom_roles_changed").exists()


def test_add_existing_member_is_a_409_form_error(owner, org):
    response = as_user(owner.user).post(url("members", org), {"email": owner.user.email, "role": "member"})
    assert response.status_code == 409
    assert "Already a member of this organization." in response.content.decode()


def test_change_member_role(owner, org):
    target = member(org, role="viewer")
    response = as_user(owner.user).post(url("member-edit", org, pk=target.pk),
                                        {"role": "member", "status": "active"})
    assert response.status_code == 302
    target.refresh_from_db()
    assert target.role == "member"
    assert events(org, "member.updated").filter(target_id=str(target.pk)).exists()


def test_removing_the_last_owner_is_refused(owner, org):
    response = as_user(owner.user).post(url("member-remove", org, pk=owner.pk), {"confirm": "yes"})
    assert response.status_code == 409
    assert "An organization must keep at least one owner." in response.content.decode()
    assert Membership.objects.for_org(org).filter(pk=owner.pk).exists()
    assert events(org, "access.last_owner_protected").filter(outcome="denied").exists()


def test_remove_member(owner, org):
    target = member(org)
    response = as_user(owner.user).post(url("member-remove", org, pk=target.pk), {"confirm": "yes"})
    assert response.status_code == 302
    assert not Membership.objects.for_org(org).filter(pk=target.pk).exists()
    assert events(org, "member.removed").filter(target_id=str(target.pk)).exists()


# --- Teams --------------------------------------------------------------------------------------


def test_create_team_and_add_a_member(owner, org):
    client = as_user(owner.user)
    response = client.post(url("teams", org), {"name": "Platform", "description": "Runs agents"})
    team = Team.objects.for_org(org).get(name="Platform")
    assert response["Location"] == url("team-detail", org, pk=team.pk)
    assert events(org, "team.created").filter(target_id=str(team.pk)).exists()
    someone = member(org)
    response = client.post(url("team-detail", org, pk=team.pk),
                           {"action": "add_member", "member": someone.user.email, "role": "admin"})
    assert response.status_code == 302
    assert TeamMembership.objects.get(team=team, membership=someone).role == "admin"
    assert events(org, "team.member_added").exists()


def test_team_member_cannot_manage_the_team(org):
    team = TeamFactory(org=org)
    caller = member(org)
    TeamMembership.objects.create(team=team, membership=caller)
    other = member(org)
    response = as_user(caller.user).post(url("team-detail", org, pk=team.pk),
                                         {"action": "add_member", "member": other.user.email,
                                          "role": "member"})
    assert response.status_code == 403
    assert not TeamMembership.objects.filter(team=team, membership=other).exists()
    assert events(org, "access.denied").filter(outcome="denied").exists()


def test_team_admin_changes_a_role_and_removes_a_member(org):
    team = TeamFactory(org=org)
    admin = member(org)
    TeamMembership.objects.create(team=team, membership=admin, role="admin")
    tm = TeamMembership.objects.create(team=team, membership=member(org))
    client = as_user(admin.user)
    client.post(url("team-detail", org, pk=team.pk),
                {"action": "set_member_role", "team_membership": tm.pk, "role": "admin"})
    tm.refresh_from_db()
    assert tm.role == "admin"
    client.post(url("team-detail", org, pk=team.pk), {"action": "remove_member", "team_membership": tm.pk})
    assert not TeamMembership.objects.filter(pk=tm.pk).exists()
    assert events(org, "team.member_removed").exists()


# --- Roles --------------------------------------------------------------------------------------


def test_create_role(owner, org):
    response = as_user(owner.user).post(
        url("role-new", org), {"name": "Agent ops", "permissions": ["agent:read", "agent:write"]}
    )
    assert response.status_code == 302
    role = Role.objects.for_org(org).get(name="Agent ops")
    assert sorted(role.permissions) == ["agent:read", "agent:write"]
    assert events(org, "role.created").filter(target_id=str(role.pk)).exists()


def test_role_editor_refuses_escalation(org):
    editor_role = RoleFactory(org=org, name="Role admins", permissions=["role:read", "role:write"])
    caller = member(org)
    caller.custom_roles.add(editor_role)
    client = as_user(caller.user)
    page = client.get(url("role-new", org)).content.decode()
    assert 'value="org:delete"' in page and "you do not hold this permission" in page
    response = client.post(url("role-new", org), {"name": "Sneaky", "permissions": ["org:delete"]})
    assert response.status_code == 403
    assert "You cannot grant permissions you do not hold yourself." in response.content.decode()
    assert not Role.objects.for_org(org).filter(name="Sneaky").exists()
    denial = events(org, "access.escalation_denied").get()
    assert denial.outcome == "denied" and denial.data["missing"] == ["org:delete"]


def test_edit_and_delete_role(owner, org):
    role = RoleFactory(org=org, name="Readers", permissions=["agent:read"])
    client = as_user(owner.user)
    client.post(url("role-edit", org, pk=role.pk), {"name": "Readers", "permissions": ["run:read"]})
    role.refresh_from_db()
    assert role.permissions == ["run:read"]
    client.post(url("role-delete", org, pk=role.pk), {"confirm": "yes"})
    assert not Role.objects.for_org(org).filter(pk=role.pk).exists()
    assert events(org, "role.deleted").exists()


# --- API keys -----------------------------------------------------------------------------------


def test_create_api_key_shows_the_secret_once_and_stores_only_its_hash(owner, org):
    client = as_user(owner.user)
    posted = client.post(url("api-keys", org), {"name": "CI", "permissions": ["member:read", "audit:read"]})
    assert posted.status_code == 303
    response = client.get(posted["Location"])
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    key = ApiKey.objects.for_org(org).get(name="CI")
    body = response.content.decode()
    prefix = f"iamk_{key.lookup_id}_"
    start = body.index(prefix)
    secret = body[start:body.index('"', start)]
    assert body.count(secret) == 1
    digest, _ = secret_hash(secret.removeprefix(prefix), key.hash_kid)
    assert key.secret_hash == digest and secret not in str(ApiKey.objects.filter(pk=key.pk).values().get())
    assert secret not in client.get(url("api-keys", org)).content.decode()
    assert secret not in client.get(posted["Location"]).content.decode()
    assert not any(secret in str(e.data) for e in AuditEntry.objects.for_org(org))
    assert events(org, "api_key.created").filter(target_id=str(key.pk)).exists()


def test_api_key_without_permissions_is_a_form_error(owner, org):
    response = as_user(owner.user).post(url("api-keys", org), {"name": "Empty"})
    assert response.status_code == 400
    assert not ApiKey.objects.for_org(org).exists()


def test_revoke_api_key(owner, org):
    client = as_user(owner.user)
    client.post(url("api-keys", org), {"name": "CI", "permissions": ["member:read"]})
    key = ApiKey.objects.for_org(org).get()
    assert client.post(url("api-key-revoke", org, pk=key.pk), {"confirm": "yes"}).status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert events(org, "api_key.revoked").filter(target_id=str(key.pk)).exists()


# --- Audit log and access review ----------------------------------------------------------------


def test_audit_log_filters_by_event(owner, org):
    client = as_user(owner.user)
    client.post(url("teams", org), {"name": "Red"})
    client.post(url("role-new", org), {"name": "R", "permissions": ["agent:read"]})
    body = client.get(url("audit-log", org), {"event": "team.created"}).content.decode()
    assert "<code>team.created</code>" in body and "<code>role.created</code>" not in body
    by_code = client.get(url("audit-log", org), {"event": "230"}).content.decode()
    assert "<code>role.created</code>" in by_code and "<code>team.created</code>" not in by_code


def test_audit_log_pages_by_seq(owner, org):
    client = as_user(owner.user)
    for n in range(55):
        client.post(url("teams", org), {"name": f"T{n}"})
    first = client.get(url("audit-log", org))
    assert "Older entries" in first.content.decode()
    older = client.get(url("audit-log", org), {"before": 6})
    assert older.status_code == 200 and older.content.decode().count("<code>team.created</code>") == 5


def test_verify_chain(owner, org):
    client = as_user(owner.user)
    client.post(url("teams", org), {"name": "Blue"})
    response = client.post(url("audit-log", org))
    assert response.status_code == 200 and "Chain intact" in response.content.decode()
    assert events(org, "audit.verified").get().data["ok"] is True


def test_access_review_links_the_export(owner, org):
    body = as_user(owner.user).get(url("access-review", org)).content.decode()
    export = f"/api/v1/orgs/{org.slug}/exports/access-review.csv"
    assert export in body
    csv_response = as_user(owner.user).get(export)
    assert csv_response.status_code == 200
    assert b"".join(csv_response.streaming_content).startswith(b"principal_type,principal_id,name,email")


def test_odd_query_strings_on_pages_are_answered_not_crashed(db):
    from django.test import Client

    from rbac.guard import access_for_user
    from scim.tokens import scim_token_create
    from tests.factories import MemberFactory, OrgFactory, sign_in

    org = OrgFactory()
    owner = MemberFactory(org=org, role="owner")
    client = sign_in(Client(raise_request_exception=False), owner.user, mfa=True)
    assert client.get(f"/orgs/{org.slug}/members/", {"q": "a\x00b"}).status_code == 200
    scim_token_create(access=access_for_user(user=owner.user, org_slug=org.slug), name="Okta")
    log = client.get(f"/orgs/{org.slug}/provisioning/log/", {"before": "9" * 5000})
    assert log.status_code == 200
