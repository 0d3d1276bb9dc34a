"""Every consumer of effective permissions agrees: the guard (what a person may do in a request), the
token grant (what an agent's owners may hand it) and the access-review export (what auditors read).

The fixtures include grants that point at another org, written straight to the tables as a buggy
adapter or a raw import could: a foreign custom role held directly, a foreign role granted to the
member's own team, and a foreign team the member is in. None of them may count anywhere.
"""

import csv
import io

import pytest
from django.test import Client

from agents import policies as agent_policies
from agents.models import Agent
from agents.selectors import owners_permissions
from audit.exports import access_review_csv
from audit.models import AuditEntry
from core.errors import NotFound
from core.permissions import Perm
from core.roles import BUILTIN_ROLES
from iam_project.api_urls import ACCESS_REVIEW_SOURCES
from rbac import policies, services
from rbac.guard import access_for_user
from rbac.models import RoleAssignment, TeamMembership
from tests.agents.conftest import build_world, post_form
from tests.factories import MemberFactory, OrgFactory, RoleFactory, TeamFactory, api_key_for

pytestmark = pytest.mark.django_db

OWN = {Perm.AUDIT_READ}  # what the member really holds beyond the viewer role
FOREIGN = {Perm.ORG_DELETE, Perm.SSO_WRITE, Perm.POLICY_WRITE}  # what the foreign grants name


def _member_with_foreign_grants(org):
    member = MemberFactory(org=org, role="viewer")
    RoleAssignment.objects.create(membership=member, role=RoleFactory(org=org, permissions=["audit:read"]))
    other = OrgFactory()
    # A role of another org held directly.
    RoleAssignment.objects.create(membership=member, role=RoleFactory(org=other, permissions=["org:delete"]))
    # A role of another org granted to the member's own team.
    team = TeamFactory(org=org)
    team.roles.add(RoleFactory(org=other, permissions=["sso:write"]))
    TeamMembership.objects.create(team=team, membership=member, role="member")
    # A team of another org (with that org's role) the member has been put in.
    foreign_team = TeamFactory(org=other)
    foreign_team.roles.add(RoleFactory(org=other, permissions=["policy:write"]))
    TeamMembership.objects.create(team=foreign_team, membership=member, role="member")
    return member


def _export_permissions(org) -> dict:
    body = b"".join(access_review_csv(org, ACCESS_REVIEW_SOURCES)).decode()
    return {row["principal_id"]: set(row["effective_permissions"].split())
            for row in csv.DictReader(io.StringIO(body))}


def test_the_guard_the_token_grant_and_the_export_agree_and_ignore_other_orgs_roles():
    world = build_world()
    member = _member_with_foreign_grants(world.org)
    expected = BUILTIN_ROLES["viewer"] | OWN

    guard = access_for_user(user=member.user, org_slug=world.slug).perms
    # The agent is written straight to the table so that its grant names every one of them: the
    # grant endpoint must narrow it to what the owner can hand out now.
    agent = Agent.objects.create(org=world.org, name="probe", client_id="agt_probe", audiences=[],
                                 scopes=sorted(p.value for p in expected | FOREIGN))
    agent.owners.set([member])
    [grant] = owners_permissions(agent.pk)
    export = _export_permissions(world.org)[str(member.user.pk)]

    assert guard == expected
    assert grant == expected
    assert export == {p.value for p in expected}
    assert export == {p.value for p in guard} == {p.value for p in grant}
    assert set(_export_permissions(world.org)[str(agent.pk)]) == {p.value for p in expected}


def test_a_foreign_role_never_reaches_an_agent_token():
    world = build_world(connection_scopes=["tickets:read", "org:delete"])
    member = _member_with_foreign_grants(world.org)
    world.agent.owners.set([member])
    world.agent.scopes = ["tickets:read", "org:delete"]
    world.agent.save()
    client = Client()
    token = post_form(client, world.url("token"), {"grant_type": "client_credentials", "scope": "org:delete"},
                      auth=(world.agent.client_id, world.agent_secret))
    assert token.status_code == 400 and token.json()["error"] == "invalid_scope"


def _denials(org):
    return list(AuditEntry.objects.for_org(org).filter(event_name="access.cross_tenant_denied"))


@pytest.mark.parametrize("how", ["member_roles_wrapper", "member_roles_effect", "team_roles_wrapper",
                                 "team_roles_effect", "role_grant_effect", "team_create_effect"])
def test_a_service_handed_another_orgs_role_refuses_it(how):
    world = build_world()
    member = MemberFactory(org=world.org, role="viewer")
    team = TeamFactory(org=world.org)
    foreign = RoleFactory(org=OrgFactory(), permissions=["org:delete"])
    access, actor, roles = world.access, world.access.actor, [foreign]
    calls = {
        "member_roles_wrapper": lambda: policies.member_custom_roles_set(access=access, membership=member,
                                                                         roles=roles),
        "member_roles_effect": lambda: services.membership_custom_roles_set(membership=member, roles=roles,
                                                                            actor=actor),
        "team_roles_wrapper": lambda: policies.team_update(access=access, team=team, roles=roles),
        "team_roles_effect": lambda: services.team_update(team=team, roles=roles, actor=actor),
        "role_grant_effect": lambda: services.role_grant(membership=member, role=foreign, actor=actor),
        "team_create_effect": lambda: services.team_create(org=world.org, name="T", roles=roles, actor=actor),
    }
    with pytest.raises(NotFound):
        calls[how]()
    assert not RoleAssignment.objects.filter(role=foreign).exists()
    assert not foreign.teams.exists()
    [denial] = _denials(world.org)
    assert denial.data == {"object": "role", "id": str(foreign.pk)} and denial.actor_id == actor.id
    assert Perm.ORG_DELETE not in access_for_user(user=member.user, org_slug=world.slug).perms


@pytest.mark.parametrize("call", [
    lambda access, other: agent_policies.agent_revoke(access=access, agent=other.agent),
    lambda access, other: agent_policies.agent_set_status(access=access, agent=other.agent,
                                                          status="suspended"),
    lambda access, other: agent_policies.agent_secret_rotate(access=access, agent=other.agent),
    lambda access, other: policies.api_key_revoke(access=access,
                                                  key=api_key_for(other.org, ["member:read"])[0]),
])
def test_a_wrapper_handed_another_orgs_object_refuses_and_records_it(call):
    world, other = build_world(), build_world()
    with pytest.raises(NotFound):
        call(world.access, other)
    assert len(_denials(world.org)) == 1
    other.agent.refresh_from_db()
    assert other.agent.status == "active"
