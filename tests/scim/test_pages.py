"""The Provisioning pages: SCIM tokens, group mappings and the provisioning log. Tests named
`..._mapping_service_...` exercise scim.mappings' mapping_create/mapping_delete."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils.http import urlencode
from freezegun import freeze_time

from audit.actors import Actor
from audit.events import AuditEvent
from audit.services import audit_record
from rbac.guard import access_for_user
from scim.models import GroupMapping, ScimGroup, ScimToken
from scim.tokens import scim_token_authenticate, scim_token_create
from tests.factories import MemberFactory, OrgFactory, RoleFactory, TeamFactory, sign_in
from tests.helpers import audit_events as events

pytestmark = pytest.mark.django_db

PAGES = [("tokens", None), ("token-revoke", "token"), ("mappings", None), ("mapping-delete", "mapping"),
         ("log", None)]


def url(name, org, **kwargs) -> str:
    return reverse(f"provisioning:{name}", kwargs={"org": org.slug, **kwargs})


def as_user(membership, **kwargs) -> Client:
    return sign_in(Client(), membership.user, **kwargs)


def make_token(owner, name="Okta") -> tuple[ScimToken, str]:
    return scim_token_create(access=access_for_user(user=owner.user, org_slug=owner.org.slug), name=name)


@pytest.mark.parametrize("name,detail", PAGES)
def test_pages_render_for_the_owner_and_are_refused_to_others(org, owner, name, detail):
    token, _ = make_token(owner)
    group = ScimGroup.objects.create(org=org, display_name="Engineering")
    mapping = GroupMapping.objects.create(org=org, group=group, kind="builtin_role", builtin_role="viewer")
    path = url(name, org, **({"pk": {"token": token, "mapping": mapping}[detail].pk} if detail else {}))
    response = as_user(owner).get(path)
    assert response.status_code == 200
    assert "Provisioning" in response.content.decode()
    anonymous = Client().get(path)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")
    assert as_user(MemberFactory(org=OrgFactory(), role="owner")).get(path).status_code == 404
    refused = as_user(MemberFactory(org=org, role="member")).get(path)  # no scim or audit permission
    assert refused.status_code == 403
    assert "You do not have access to this page" in refused.content.decode()


def test_the_org_navigation_links_the_section_for_those_who_may_read_it(org, owner):
    members = reverse("accounts:members", kwargs={"org": org.slug})
    assert url("tokens", org) in as_user(owner).get(members).content.decode()
    viewer = MemberFactory(org=org, role="viewer")
    assert url("tokens", org) not in as_user(viewer).get(members).content.decode()


# --- Tokens -------------------------------------------------------------------------------------


def test_create_shows_the_token_and_base_url_once(org, owner):
    client = as_user(owner)
    posted = client.post(url("tokens", org), {"name": "Okta production"})
    assert posted.status_code == 303
    response = client.get(posted["Location"])  # the token is shown by the GET it redirects to
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    token = ScimToken.objects.for_org(org).get()
    page = response.content.decode()
    secret = response.context["secret"]
    assert secret.startswith(f"scim_{token.lookup_id}_") and secret in page
    assert f"{settings.IAM_CANONICAL_ORIGIN.rstrip('/')}/scim/v2/" in page
    assert scim_token_authenticate(secret).pk == token.pk

    listed = client.get(url("tokens", org)).content.decode()
    assert "Okta production" in listed and f"scim_{token.lookup_id}_…" in listed
    assert secret not in listed and token.secret_hash not in listed
    assert events(org, "scim.token_created").get().actor_id == str(owner.user.pk)


def test_create_with_a_stale_session_goes_to_reauth_and_creates_nothing(org, owner):
    response = as_user(owner, auth_age=3600).post(url("tokens", org), {"name": "Okta"})
    assert response.status_code == 302 and response["Location"].startswith("/reauth/")
    assert not ScimToken.objects.for_org(org).exists()


def test_revoke_now_from_the_page(org, owner):
    token, secret = make_token(owner)
    response = as_user(owner).post(url("token-revoke", org, pk=token.pk),
                                   {"grace_seconds": "0", "confirm": "yes"})
    assert response.status_code == 302 and response["Location"] == url("tokens", org)
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert scim_token_authenticate(secret) is None
    assert events(org, "scim.auth_failed").get().data == {"reason": "revoked"}
    listed = as_user(owner).get(url("tokens", org)).content.decode()
    assert "Revoked" in listed and url("token-revoke", org, pk=token.pk) not in listed


def test_revoke_with_a_grace_period_from_the_page(org, owner):
    with freeze_time() as frozen:
        token, secret = make_token(owner)
        client = as_user(owner)
        response = client.post(url("token-revoke", org, pk=token.pk),
                               {"grace_seconds": "600", "confirm": "yes"})
        assert response.status_code == 302
        token.refresh_from_db()
        assert token.revoked_at is None and token.expires_at is not None
        assert "Expiring" in client.get(url("tokens", org)).content.decode()
        frozen.tick(timedelta(minutes=9))
        assert scim_token_authenticate(secret) is not None
        frozen.tick(timedelta(minutes=2))
        assert scim_token_authenticate(secret) is None


def test_revoke_refuses_a_grace_period_over_a_week(org, owner):
    token, _ = make_token(owner)
    response = as_user(owner).post(url("token-revoke", org, pk=token.pk),
                                   {"grace_seconds": str(8 * 86400), "confirm": "yes"})
    assert response.status_code == 400
    token.refresh_from_db()
    assert token.is_live() and token.expires_at is None


def test_revoke_with_a_stale_session_goes_to_reauth_and_changes_nothing(org, owner):
    token, _ = make_token(owner)
    stale = as_user(owner, auth_age=3600)
    response = stale.post(url("token-revoke", org, pk=token.pk), {"grace_seconds": "0"})
    assert response.status_code == 302 and response["Location"].startswith("/reauth/")
    token.refresh_from_db()
    assert token.is_live()


def test_another_orgs_token_is_404_here(org, owner):
    foreign, secret = make_token(MemberFactory(org=OrgFactory(), role="owner"))
    client = as_user(owner)
    assert client.get(url("token-revoke", org, pk=foreign.pk)).status_code == 404
    assert client.post(url("token-revoke", org, pk=foreign.pk), {"grace_seconds": "0"}).status_code == 404
    assert scim_token_authenticate(secret) is not None


def test_a_reader_without_scim_write_is_denied_and_nothing_changes(org, owner):
    token, _ = make_token(owner)
    billing = as_user(MemberFactory(org=org, role="billing_admin"))  # scim:read, not scim:write
    page = billing.get(url("tokens", org))
    assert page.status_code == 200
    assert "Create SCIM token" not in page.content.decode()
    assert url("token-revoke", org, pk=token.pk) not in page.content.decode()
    assert billing.post(url("tokens", org), {"name": "x"}).status_code == 403
    assert billing.post(url("token-revoke", org, pk=token.pk), {"grace_seconds": "0"}).status_code == 403
    assert ScimToken.objects.for_org(org).count() == 1
    token.refresh_from_db()
    assert token.is_live()
    assert [d.data["required"] for d in events(org, "access.denied")] == ["scim:write", "scim:write"]


# --- Mappings -----------------------------------------------------------------------------------


@pytest.fixture
def group(org):
    return ScimGroup.objects.create(org=org, display_name="Engineering", external_id="okta-00g1")


def test_the_mappings_page_lists_this_orgs_groups_and_mappings(org, owner, group):
    team = TeamFactory(org=org, name="Platform")
    GroupMapping.objects.create(org=org, group=group, kind="team", team=team, team_role="admin")
    ScimGroup.objects.create(org=OrgFactory(), display_name="Foreign group")
    page = as_user(owner).get(url("mappings", org)).content.decode()
    assert "Engineering" in page and "okta-00g1" in page and "Platform" in page
    assert "Foreign group" not in page
    assert url("mapping-delete", org, pk=GroupMapping.objects.for_org(org).get().pk) in page


def test_mapping_service_map_a_group_from_the_page(org, owner, group):
    role = RoleFactory(org=org, permissions=["agent:read"])
    client = as_user(owner)
    response = client.post(url("mappings", org), {"group": group.pk, "kind": "custom_role", "role": role.pk})
    assert response.status_code == 302, response.content.decode()
    mapping = GroupMapping.objects.for_org(org).get()
    assert (mapping.group, mapping.kind, mapping.role) == (group, "custom_role", role)
    assert role.name in client.get(url("mappings", org)).content.decode()


def test_mapping_service_delete_a_mapping_from_the_page(org, owner, group):
    mapping = GroupMapping.objects.create(org=org, group=group, kind="builtin_role", builtin_role="viewer")
    client = as_user(owner)
    asked = client.post(url("mapping-delete", org, pk=mapping.pk))  # not from the confirmation's button
    assert asked.status_code == 200 and "Delete mapping" in asked.content.decode()
    assert list(GroupMapping.objects.for_org(org)) == [mapping]
    response = client.post(url("mapping-delete", org, pk=mapping.pk), {"confirm": "yes"})
    assert response.status_code == 302
    assert not GroupMapping.objects.for_org(org).exists()


@pytest.mark.parametrize("data,field", [
    ({"kind": "builtin_role", "builtin_role": "owner"}, "builtin_role"),
    ({"kind": "builtin_role"}, "builtin_role"),
    ({"kind": "team", "team_role": "member"}, "team"),
    ({"kind": "custom_role"}, "role"),
])
def test_the_mapping_form_refuses_owner_and_missing_targets(org, owner, group, data, field):
    response = as_user(owner).post(url("mappings", org), {"group": group.pk, **data})
    assert response.status_code == 400
    assert response.context["form"].errors[field]
    assert not GroupMapping.objects.for_org(org).exists()


def test_another_orgs_group_or_mapping_is_refused_here(org, owner, group):
    other = OrgFactory()
    foreign_group = ScimGroup.objects.create(org=other, display_name="Ops")
    foreign = GroupMapping.objects.create(org=other, group=foreign_group, kind="builtin_role",
                                          builtin_role="viewer")
    client = as_user(owner)
    response = client.post(url("mappings", org), {"group": foreign_group.pk, "kind": "builtin_role",
                                                  "builtin_role": "viewer"})
    assert response.status_code == 400 and response.context["form"].errors["group"]
    assert client.get(url("mapping-delete", org, pk=foreign.pk)).status_code == 404
    assert client.post(url("mapping-delete", org, pk=foreign.pk), {"confirm": "yes"}).status_code == 404
    assert GroupMapping.objects.for_org(other).count() == 1
    assert not GroupMapping.objects.for_org(org).exists()


def test_mapping_writes_need_scim_write_and_a_fresh_reauthentication(org, owner, group):
    mapping = GroupMapping.objects.create(org=org, group=group, kind="builtin_role", builtin_role="viewer")
    data = {"group": group.pk, "kind": "builtin_role", "builtin_role": "member"}
    billing = as_user(MemberFactory(org=org, role="billing_admin"))
    assert "Add mapping" not in billing.get(url("mappings", org)).content.decode()
    assert billing.post(url("mappings", org), data).status_code == 403
    assert billing.post(url("mapping-delete", org, pk=mapping.pk), {"confirm": "yes"}).status_code == 403
    assert billing.get(url("mapping-delete", org, pk=mapping.pk)).status_code == 403
    stale = as_user(owner, auth_age=3600)
    assert stale.post(url("mappings", org), data)["Location"].startswith("/reauth/")
    refused = stale.post(url("mapping-delete", org, pk=mapping.pk), {"confirm": "yes"})
    assert refused["Location"] == "/reauth/?" + urlencode({"next": url("mapping-delete", org, pk=mapping.pk)})
    # After re-authenticating, the browser comes back to the confirmation with a GET.
    assert "Delete mapping" in stale.get(url("mapping-delete", org, pk=mapping.pk)).content.decode()
    assert list(GroupMapping.objects.for_org(org)) == [mapping]


# --- Provisioning log ---------------------------------------------------------------------------


def test_the_log_shows_this_orgs_scim_events_only_newest_first(org, owner):
    token, secret = make_token(owner, name="Okta here")
    make_token(MemberFactory(org=OrgFactory(), role="owner"), name="Okta elsewhere")
    scim_token_authenticate(secret[:-2] + "xx")  # a wrong secret: scim.auth_failed in this org
    audit_record(org=org, actor=Actor.system(), event=AuditEvent.DEPROVISIONED,
                 data={"member": "m-1", "how": "deactivated"})
    audit_record(org=org, actor=Actor.system(), event=AuditEvent.ORG_UPDATED, data={"fields": ["name"]})
    response = as_user(owner).get(url("log", org))
    assert response.status_code == 200
    names = [e.event_name for e in response.context["entries"]]
    assert names == ["member.deprovisioned", "scim.auth_failed", "scim.token_created"]
    page = response.content.decode()
    assert "Okta here" in page and "bad_secret" in page
    assert "Okta elsewhere" not in page and "org.updated" not in page
    assert secret not in page


def test_the_log_pages_by_seq(org, owner, monkeypatch):
    for n in range(3):
        audit_record(org=org, actor=Actor.system(), event=AuditEvent.SCIM_AUTH_FAILED,
                     data={"reason": f"r{n}"})
    monkeypatch.setattr("scim.views.PAGE_SIZE", 2)
    client = as_user(owner)
    first = client.get(url("log", org))
    assert [e.data["reason"] for e in first.context["entries"]] == ["r2", "r1"]
    second = client.get(first.context["older_url"])
    assert [e.data["reason"] for e in second.context["entries"]] == ["r0"]
    assert second.context["older_url"] is None and second.context["newest_url"] == url("log", org)
