"""Removing a member, revoking an API key, deleting a team and cancelling an invitation each ask on a
page of their own first, with what will happen in counts; a POST without the confirmation changes
nothing, and the counts are what then happens."""

import datetime
import re

import pytest
from django.utils import timezone

from accounts.models import ApiKey, Membership
from agents.models import Agent, AgentPolicy, Delegation
from rbac.models import Team
from tests.factories import (
    AgentFactory,
    MemberFactory,
    OrgFactory,
    RoleFactory,
    TeamFactory,
    TeamMemberFactory,
    UserFactory,
    api_key_for,
)
from tests.helpers import audit_events
from tests.people_console.helpers import body, client_of, owner_client

pytestmark = pytest.mark.django_db


def _consequences(html: str) -> str:
    part = html.split('data-testid="consequences"')[1].split("</ul>")[0]
    return " ".join(re.sub(r"<[^>]+>", " ", part).split())


def _leaver(org, owner):
    ada = MemberFactory(org=org, user=UserFactory(email="ada@example.com"))
    TeamMemberFactory(team=TeamFactory(org=org), membership=ada)
    ada.custom_roles.add(RoleFactory(org=org))
    for n in range(2):
        api_key_for(org, ["member:read"], name=f"ada {n}", created_by=ada.user)
    api_key_for(org, ["member:read"], name="old", created_by=ada.user, revoked_at=timezone.now())
    alone = AgentFactory(org=org, name="alone", owners=[ada])
    AgentFactory(org=org, name="shared", owners=[ada, owner])
    AgentFactory(org=org, name="second alone", owners=[ada])
    Delegation.objects.create(org=org, agent=alone, user=ada.user, membership=ada,
                              person_email=ada.user.email, audience="https://service.example/api",
                              scopes=["t:read"],
                              expires_at=timezone.now() + datetime.timedelta(hours=1))
    return ada


def test_remove_member_says_what_they_lose_and_it_happens_once_confirmed():
    org = OrgFactory()
    client, owner = owner_client(org)
    ada = _leaver(org, owner)
    path = f"/orgs/{org.slug}/members/{ada.pk}/remove/"
    said = _consequences(body(client, path))
    assert "1 custom role held directly and their place in 1 team" in said
    assert "2 API keys they created are revoked and stop working" in said
    assert "3 agents they own" in said and "1 keeps running" in said
    assert "2 left with no other owner are suspended" in said
    assert "1 live delegation they granted is revoked" in said
    assert "Every SCIM token they minted here is revoked." in said

    assert client.post(path).status_code == 200  # no confirmation: nothing changes
    assert Membership.objects.for_org(org).filter(pk=ada.pk).exists()
    assert not audit_events(org, "member.removed").exists()

    assert client.post(path, {"confirm": "yes"}).status_code == 302
    assert not Membership.objects.for_org(org).filter(pk=ada.pk).exists()
    assert ApiKey.objects.for_org(org).filter(created_by=ada.user, revoked_at__isnull=True).count() == 0
    assert Agent.objects.for_org(org).filter(status="suspended").count() == 2
    assert Agent.objects.for_org(org).get(name="shared").status == "active"
    assert Delegation.objects.for_org(org).get().status == "revoked"


def test_with_a_fallback_owner_the_page_names_who_takes_the_agents():
    org = OrgFactory()
    client, owner = owner_client(org)
    AgentPolicy.objects.update_or_create(org=org, defaults={"deprovision_agents": "reassign",
                                                            "deprovision_fallback_owner": owner})
    ada = _leaver(org, owner)
    said = _consequences(body(client, f"/orgs/{org.slug}/members/{ada.pk}/remove/"))
    assert f"2 left with no other owner go to {owner.user.email}" in said
    client.post(f"/orgs/{org.slug}/members/{ada.pk}/remove/", {"confirm": "yes"})
    assert Agent.objects.for_org(org).filter(owners=owner).count() == 3


def test_cancelling_an_invitation_says_the_link_stops_working():
    org = OrgFactory()
    client, _ = owner_client(org)
    asked = MemberFactory(org=org, status="invited")
    path = f"/orgs/{org.slug}/members/{asked.pk}/remove/"
    html = body(client, path)
    assert f"Cancel the invitation of {asked.user.email}?" in html
    assert "stops working at once" in _consequences(html)
    client.post(path)
    assert Membership.objects.for_org(org).filter(pk=asked.pk).exists()
    client.post(path, {"confirm": "yes"})
    assert not Membership.objects.for_org(org).filter(pk=asked.pk).exists()


def test_revoking_an_api_key_says_what_stops_and_needs_the_confirmation():
    org = OrgFactory()
    client, owner = owner_client(org)
    key, _ = api_key_for(org, ["member:read", "team:read"], name="CI", created_by=owner.user)
    path = f"/orgs/{org.slug}/api-keys/{key.pk}/revoke/"
    said = _consequences(body(client, path))
    assert f"iamk_{key.lookup_id}_…" in said and "it has never been used" in said
    assert "The 2 permissions it was given ( member:read , team:read ) go with it." in said
    client.post(path)
    key.refresh_from_db()
    assert key.revoked_at is None and not audit_events(org, "api_key.revoked").exists()
    client.post(path, {"confirm": "yes"})
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_deleting_a_team_says_who_loses_which_roles_and_needs_the_confirmation():
    org = OrgFactory()
    client, _ = owner_client(org)
    team = TeamFactory(org=org, name="Platform")
    team.roles.add(RoleFactory(org=org, name="Deployers"))
    for _ in range(3):
        TeamMemberFactory(team=team)
    assert f"/orgs/{org.slug}/teams/{team.pk}/delete/" in body(client, f"/orgs/{org.slug}/teams/{team.pk}/")
    path = f"/orgs/{org.slug}/teams/{team.pk}/delete/"
    said = _consequences(body(client, path))
    assert "3 members leave the team at once" in said and "1 custom role (Deployers)" in said
    client.post(path)
    assert Team.objects.for_org(org).filter(pk=team.pk).exists()
    assert client.post(path, {"confirm": "yes"}).status_code == 302
    assert not Team.objects.for_org(org).filter(pk=team.pk).exists()
    assert audit_events(org, "team.deleted").exists()


def test_a_plain_team_member_cannot_delete_the_team():
    org = OrgFactory()
    team = TeamFactory(org=org)
    plain = TeamMemberFactory(team=team).membership
    client = client_of(plain)
    html = body(client, f"/orgs/{org.slug}/teams/{team.pk}/delete/")
    assert "Only the team's owners" in html and 'name="confirm"' not in html
    assert client.post(f"/orgs/{org.slug}/teams/{team.pk}/delete/", {"confirm": "yes"}).status_code == 403
    assert Team.objects.for_org(org).filter(pk=team.pk).exists()
