import pytest

from core.permissions import Perm
from core.roles import BUILTIN_ROLES
from rbac.guard import access_for_user
from rbac.models import RoleAssignment, Team, TeamMembership
from tests.factories import MemberFactory, OrgFactory, RoleFactory, TeamFactory

pytestmark = pytest.mark.django_db

EXTRA = [Perm.AUDIT_READ, Perm.SSO_READ, Perm.POLICY_READ, Perm.SCIM_READ]


def _member_with(org, n):
    """A viewer holding n custom roles directly and n more through n teams."""
    member = MemberFactory(org=org, role="viewer")
    for i in range(n):
        role = RoleFactory(org=org, permissions=[EXTRA[i % 2]])
        RoleAssignment.objects.create(membership=member, role=role)
        team = TeamFactory(org=org)
        team.roles.add(RoleFactory(org=org, permissions=[EXTRA[2 + i % 2]]))
        TeamMembership.objects.create(team=team, membership=member, role="member")
    return member


@pytest.mark.parametrize("n", [1, 10, 100])
def test_resolution_costs_three_queries_whatever_the_number_of_roles_and_teams(
    org, n, django_assert_num_queries
):
    member = _member_with(org, n)
    with django_assert_num_queries(3):
        access = access_for_user(user=member.user, org_slug=org.slug)
    assert access.perms == BUILTIN_ROLES["viewer"] | set(EXTRA[: min(n, 2)]) | set(EXTRA[2: 2 + min(n, 2)])
    assert len(access.team_roles) == n


def test_effective_permissions_are_the_union_of_org_custom_and_team_roles(org):
    member = MemberFactory(org=org, role="viewer")
    RoleAssignment.objects.create(membership=member,
                                  role=RoleFactory(org=org, permissions=["audit:read"]))
    team = TeamFactory(org=org)
    team.roles.add(RoleFactory(org=org, permissions=["sso:read", "no-longer:in-catalogue"]))
    TeamMembership.objects.create(team=team, membership=member, role="admin")
    access = access_for_user(user=member.user, org_slug=org.slug)
    assert access.perms == BUILTIN_ROLES["viewer"] | {Perm.AUDIT_READ, Perm.SSO_READ}
    assert access.can_manage_team(team.pk)
    assert not access.can_manage_team(TeamFactory(org=org).pk)


def test_roles_of_other_orgs_and_inactive_members_grant_nothing(org):
    member = MemberFactory(org=org, role="viewer")
    other = OrgFactory()
    # The member really is in the other org's team, and holds one of its roles directly, so only
    # the org rule keeps these out (rows written straight to the tables, as a faulty import could).
    foreign_team = Team.objects.create(org=other, name="x")
    foreign_team.roles.add(RoleFactory(org=other, permissions=["org:delete"]))
    TeamMembership.objects.create(team=foreign_team, membership=member, role="admin")
    RoleAssignment.objects.create(membership=member, role=RoleFactory(org=other, permissions=["sso:write"]))
    access = access_for_user(user=member.user, org_slug=org.slug)
    assert Perm.ORG_DELETE not in access.perms and Perm.SSO_WRITE not in access.perms
    assert not access.can_manage_team(foreign_team.pk) and access.team_roles == {}
    assert access_for_user(user=member.user, org_slug=other.slug) is None
    member.status = "suspended"
    member.save()
    assert access_for_user(user=member.user, org_slug=org.slug) is None


@pytest.mark.parametrize("n", [1, 10, 100])
def test_a_whole_session_request_costs_the_same_whatever_the_roles(org, n, django_assert_num_queries):
    from django.test import Client

    from tests.factories import sign_in

    member = _member_with(org, n)
    client = sign_in(Client(), member.user)
    client.get(f"/api/v1/orgs/{org.slug}/teams")  # first request may refresh "last seen"
    # The guard's five (session, user, membership+org+policy, team standings, roles), then the
    # list's own five (teams, their roles, team memberships, memberships, users).
    with django_assert_num_queries(10):
        assert client.get(f"/api/v1/orgs/{org.slug}/teams").status_code == 200
