"""Every non-human credential has a human behind it: an API key, an agent (its owners, its maker, the
person holding its secret) and a SCIM token never out-rank or outlive that person."""

import pytest
from rest_framework.test import APIClient

from accounts.models import ApiKey, Membership
from agents.models import Agent, AgentStatus
from audit.models import AuditEntry
from core.permissions import Perm
from rbac.guard import access_for_user
from rbac.models import Role
from scim.models import ScimToken
from scim.tokens import scim_token_create
from tests.agents.conftest import AUDIENCE, build_world, post_form
from tests.factories import MemberFactory, OrgFactory, api_key_for
from tests.helpers import audit_events, events_since, last_seq


def entries_since(org, seq):
    return list(AuditEntry.objects.for_org(org).filter(seq__gt=seq).order_by("seq"))

pytestmark = pytest.mark.django_db


def _key_client(secret):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def _owners(org, n=2):
    return [MemberFactory(org=org, role="owner") for _ in range(n)]


# --- API keys --------------------------------------------------------------------------------------


def test_a_key_holds_no_more_than_its_creator_holds_now(org):
    maker, _ = _owners(org)
    declared = [Perm.MEMBER_READ, Perm.ROLE_READ, Perm.ROLE_WRITE, Perm.API_KEY_WRITE]
    _, secret = api_key_for(org, declared, created_by=maker.user)
    client = _key_client(secret)
    assert client.get(f"/api/v1/orgs/{org.slug}/roles").status_code == 200
    Membership.objects.filter(pk=maker.pk).update(role="member")  # demoted elsewhere
    keys, seq = ApiKey.objects.count(), last_seq(org)

    minted = client.post(f"/api/v1/orgs/{org.slug}/api-keys", {"name": "x", "permissions": ["member:read"]},
                         format="json")
    role = client.post(f"/api/v1/orgs/{org.slug}/roles", {"name": "R", "permissions": ["agent:read"]},
                       format="json")
    assert (minted.status_code, role.status_code) == (403, 403)
    assert minted.json()["error"] == "permission_denied"
    assert ApiKey.objects.count() == keys and not Role.objects.for_org(org).exists()
    assert events_since(org, seq) == ["access.denied", "access.denied"]
    # What both still hold keeps working.
    assert client.get(f"/api/v1/orgs/{org.slug}/members").status_code == 200


def test_a_key_stops_while_its_creator_is_suspended_and_dies_when_they_are_removed(org):
    maker, admin = _owners(org)
    key, secret = api_key_for(org, [Perm.MEMBER_READ], created_by=maker.user)
    client = _key_client(secret)
    Membership.objects.filter(pk=maker.pk).update(status="suspended")
    seq = last_seq(org)
    refused = client.get(f"/api/v1/orgs/{org.slug}/members")
    assert refused.status_code == 401 and refused.json()["error"] == "authentication_failed"
    [entry] = entries_since(org, seq)
    assert (entry.event_name, entry.outcome, entry.data) == ("api_key.rejected", "failure",
                                                             {"reason": "creator_inactive"})
    key.refresh_from_db()
    assert key.revoked_at is None  # a suspension can be lifted

    Membership.objects.filter(pk=maker.pk).update(status="active")
    assert client.get(f"/api/v1/orgs/{org.slug}/members").status_code == 200
    _, admin_secret = api_key_for(org, [Perm.MEMBER_WRITE, *Perm], created_by=admin.user)
    assert _key_client(admin_secret).delete(f"/api/v1/orgs/{org.slug}/members/{maker.pk}").status_code == 204
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert audit_events(org, "api_key.revoked").filter(target_id=str(key.pk)).count() == 1
    assert client.get(f"/api/v1/orgs/{org.slug}/members").status_code == 401


def test_a_key_without_anyone_behind_it_works_nowhere(org):
    _, secret = api_key_for(org, [Perm.MEMBER_READ], created_by=None)
    assert _key_client(secret).get(f"/api/v1/orgs/{org.slug}/members").status_code == 401
    assert audit_events(org, "api_key.rejected").get().data == {"reason": "creator_inactive"}


# --- agents ------------------------------------------------------------------------------------------


def _member_client(membership):
    from tests.factories import sign_in

    client = APIClient()
    sign_in(client, membership.user)
    return client


def test_naming_someone_else_as_owner_needs_the_power_to_manage_them(db):
    world = build_world()
    member = MemberFactory(org=world.org, role="member")
    client = _member_client(member)
    agents, seq = Agent.objects.count(), last_seq(world.org)
    body = {"name": "sneaky", "scopes": [], "audiences": [AUDIENCE], "owner": str(world.owner.pk)}
    response = client.post(f"/api/v1/orgs/{world.slug}/agents", body, format="json")
    assert response.status_code == 403 and response.json()["error"] == "escalation_denied"
    assert Agent.objects.count() == agents
    [denial] = entries_since(world.org, seq)
    assert (denial.event_name, denial.data["reason"]) == ("access.escalation_denied", "agent_owner")

    mine = client.post(f"/api/v1/orgs/{world.slug}/agents", {**body, "owner": str(member.pk)}, format="json")
    assert mine.status_code == 201
    agent = Agent.objects.get(pk=mine.json()["id"])
    assert agent.created_by_id == member.user_id and mine.json()["created_by"] == str(member.user_id)
    assert mine.json()["secrets"][0]["issued_to"] == str(member.user_id)


def test_only_an_owner_or_someone_who_can_manage_every_owner_replaces_owners(db):
    world = build_world()  # the agent is the world owner's
    member = MemberFactory(org=world.org, role="member")
    client = _member_client(member)
    url = f"/api/v1/orgs/{world.slug}/agents/{world.agent.pk}"
    seq = last_seq(world.org)
    taken = client.patch(url, {"owners": [str(member.pk)]}, format="json")
    assert taken.status_code == 403 and taken.json()["error"] == "escalation_denied"
    assert list(world.agent.owners.all()) == [world.owner]
    [denial] = entries_since(world.org, seq)
    assert (denial.event_name, denial.data["reason"]) == ("access.escalation_denied", "agent_owners")

    # A current owner may hand the agent to someone they can manage.
    owner_client = _member_client(world.owner)
    handed = owner_client.patch(url, {"owners": [str(world.owner.pk), str(member.pk)]}, format="json")
    assert handed.status_code == 200
    assert set(world.agent.owners.all()) == {world.owner, member}
    # Now an owner, the member still cannot add someone they cannot manage.
    other_owner = MemberFactory(org=world.org, role="owner")
    refused = client.patch(url, {"owners": [str(member.pk), str(other_owner.pk)]}, format="json")
    assert refused.status_code == 403
    assert set(world.agent.owners.all()) == {world.owner, member}


def _grant(world, secret):
    from django.test import Client

    return post_form(Client(), world.url("token"), {"grant_type": "client_credentials"},
                     auth=(world.agent.client_id, secret))


def test_a_removed_member_loses_the_agents_they_made_and_the_secrets_they_hold(db):
    world = build_world()
    maker = MemberFactory(org=world.org, role="member")
    client = _member_client(maker)
    made = client.post(f"/api/v1/orgs/{world.slug}/agents",
                       {"name": "mine", "scopes": ["tickets:read"], "audiences": [AUDIENCE]},
                       format="json").json()
    agent = Agent.objects.get(pk=made["id"])
    # The world owner adds themselves as co-owner: the agent keeps an acting owner after the maker goes.
    _member_client(world.owner).patch(f"/api/v1/orgs/{world.slug}/agents/{agent.pk}",
                                      {"owners": [str(maker.pk), str(world.owner.pk)]}, format="json")
    world.agent = agent
    assert _grant(world, made["client_secret"]).status_code == 200

    seq = last_seq(world.org)
    removed = _member_client(world.owner).delete(f"/api/v1/orgs/{world.slug}/members/{maker.pk}")
    assert removed.status_code == 204
    refused = _grant(world, made["client_secret"])
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    names = events_since(world.org, seq)
    assert "agent.secret_window_ended" in names and names[-1] == "token.denied"
    ended = audit_events(world.org, "agent.secret_window_ended").latest("seq")
    assert ended.data["how"] == "holder_departed"
    agent.refresh_from_db()
    assert agent.status == AgentStatus.ACTIVE and list(agent.owners.all()) == [world.owner]


def test_a_removed_members_agent_with_nobody_left_follows_the_deprovisioning_policy(db):
    world = build_world()
    maker = MemberFactory(org=world.org, role="member")
    made = _member_client(maker).post(f"/api/v1/orgs/{world.slug}/agents",
                                      {"name": "mine", "scopes": ["tickets:read"], "audiences": [AUDIENCE]},
                                      format="json").json()
    assert _member_client(world.owner).delete(
        f"/api/v1/orgs/{world.slug}/members/{maker.pk}").status_code == 204
    agent = Agent.objects.get(pk=made["id"])
    assert agent.status == AgentStatus.SUSPENDED and not agent.owners.exists()
    assert audit_events(world.org, "agent.suspended").filter(target_id=str(agent.pk)).count() == 1


# --- SCIM tokens -------------------------------------------------------------------------------------


def _scim_get(token):
    from django.test import Client

    return Client().get("/scim/v2/Users", HTTP_AUTHORIZATION=f"Bearer {token}")


def test_a_scim_token_dies_when_its_creator_can_no_longer_mint_one(db):
    org = OrgFactory()
    maker, other = _owners(org)
    row, token = scim_token_create(access=access_for_user(user=maker.user, org_slug=org.slug), name="Okta")
    assert _scim_get(token).status_code == 200
    Membership.objects.filter(pk=maker.pk).update(role="member")
    seq = last_seq(org)
    refused = _scim_get(token)
    assert refused.status_code == 401
    assert refused.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    row.refresh_from_db()
    assert row.revoked_at is not None
    events = [(e.event_name, e.data.get("reason")) for e in entries_since(org, seq)]
    assert events == [("scim.token_revoked", "creator_lost_power"),
                      ("scim.auth_failed", "creator_lost_power")]
    # Promoting the creator again does not bring a dead token back.
    Membership.objects.filter(pk=maker.pk).update(role="owner")
    assert _scim_get(token).status_code == 401


def test_removing_a_scim_tokens_creator_revokes_it_at_once(db):
    org = OrgFactory()
    maker, other = _owners(org)
    row, token = scim_token_create(access=access_for_user(user=maker.user, org_slug=org.slug), name="Okta")
    response = _member_client(other).delete(f"/api/v1/orgs/{org.slug}/members/{maker.pk}")
    assert response.status_code == 204
    row.refresh_from_db()
    assert row.revoked_at is not None
    revoked = audit_events(org, "scim.token_revoked").get()
    assert (revoked.actor_id, revoked.data["reason"]) == (str(other.user_id), "creator_departed")
    assert _scim_get(token).status_code == 401
    assert ScimToken.objects.filter(revoked_at__isnull=True).count() == 0


# --- judging a suspended member -----------------------------------------------------------------------


def test_a_suspended_owner_is_still_an_owner_to_whoever_would_reinstate_or_remove_them(org):
    owner, suspended = _owners(org)
    Membership.objects.filter(pk=suspended.pk).update(status="suspended")
    admin = MemberFactory(org=org, role="member")
    _, secret = api_key_for(org, [Perm.MEMBER_READ, Perm.MEMBER_WRITE], created_by=owner.user)
    # A key holding member:write but not everything an owner holds.
    client = _key_client(secret)
    seq = last_seq(org)
    url = f"/api/v1/orgs/{org.slug}/members/{suspended.pk}"
    reinstated = client.patch(url, {"status": "active"}, format="json")
    deleted = client.delete(url)
    assert (reinstated.status_code, deleted.status_code) == (403, 403)
    assert reinstated.json()["error"] == "escalation_denied"
    suspended.refresh_from_db()
    assert suspended.status == "suspended"
    assert events_since(org, seq) == ["access.escalation_denied"] * 2
    assert admin.pk  # a plain member exists alongside; nothing about them changed
    assert AuditEntry.objects.for_org(org).filter(event_name="member.updated").count() == 0


def test_an_agent_secret_stops_while_the_person_it_was_handed_to_is_suspended(db):
    world = build_world()
    holder = MemberFactory(org=world.org, role="owner")
    rotated = _member_client(holder).post(f"/api/v1/orgs/{world.slug}/agents/{world.agent.pk}/rotate-secret",
                                          {"overlap_seconds": 0}, format="json")
    assert rotated.status_code == 200, rotated.content
    secret = rotated.json()["client_secret"]
    assert _grant(world, secret).status_code == 200
    Membership.objects.filter(pk=holder.pk).update(status="suspended")
    seq = last_seq(world.org)
    refused = _grant(world, secret)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    [denial] = entries_since(world.org, seq)
    assert (denial.event_name, denial.data["reason"]) == ("token.denied", "secret_holder_inactive")
    Membership.objects.filter(pk=holder.pk).update(status="active")
    assert _grant(world, secret).status_code == 200
