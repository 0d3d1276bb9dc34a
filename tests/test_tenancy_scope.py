"""Tenancy at run time: a query nobody scoped raises instead of reading every org, and inside one
org's scope every reach for another org's rows (a related manager, a child table, `for_org`) is
limited or refused. The regex lint (test_tenancy_lint.py) stays as a backstop for the spelling."""

import pytest
from django.test import Client
from django_scopes import ScopeError

from accounts.models import Membership
from agents.models import AgentSecret
from core.tenancy import org_scope
from rbac.models import Role, RoleAssignment, TeamMembership
from tests.conftest import as_outside_requests
from tests.factories import MemberFactory, OrgFactory, RoleFactory, TeamMemberFactory, sign_in

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("query", [
    lambda member: list(Membership.objects.filter(user=member.user)),
    lambda member: list(member.custom_roles.all()),  # a related manager
    lambda member: RoleAssignment.objects.filter(membership=member).count(),  # a child table, no org column
    lambda member: TeamMembership.objects.exists(),
    lambda member: AgentSecret.objects.count(),
])
def test_an_unscoped_query_outside_any_org_raises(query):
    member = MemberFactory()
    with as_outside_requests(), pytest.raises(ScopeError):
        query(member)


def test_in_one_orgs_scope_only_its_rows_are_seen_and_another_org_is_refused():
    mine, theirs = MemberFactory(), MemberFactory()
    RoleAssignment.objects.create(membership=mine, role=RoleFactory(org=mine.org))
    RoleAssignment.objects.create(membership=theirs, role=RoleFactory(org=theirs.org))
    # A row pointing across orgs, as a faulty import could write it.
    RoleAssignment.objects.create(membership=mine, role=RoleFactory(org=theirs.org))
    TeamMemberFactory(membership=theirs, team__org=theirs.org)
    with as_outside_requests(), org_scope(mine.org):
        assert list(Role.objects.all()) == list(Role.objects.for_org(mine.org))
        assert [r.org_id for r in mine.custom_roles.all()] == [mine.org_id]
        assert RoleAssignment.objects.count() == 2  # both of this org's memberships' rows
        assert not TeamMembership.objects.exists()
        with pytest.raises(ScopeError):
            list(Role.objects.for_org(theirs.org))
        assert Membership.objects.unscoped().filter(pk=theirs.pk).exists()  # the loud spelling works


def test_a_request_starts_without_the_scope_its_thread_had():
    """Whatever the worker thread held before (here: the test's disabled scope), a request's
    unscoped query raises, so the guard is the only way an org's rows become reachable."""
    org = OrgFactory()
    owner = MemberFactory(org=org, role="owner")
    client = sign_in(Client(), owner.user)
    assert client.get(f"/api/v1/orgs/{org.slug}/roles").status_code == 200  # the guard entered it
    with org_scope(OrgFactory()):  # a stale scope of another org on the thread
        assert client.get(f"/api/v1/orgs/{org.slug}/roles").status_code == 200


def test_a_child_tables_related_manager_is_limited_to_the_scope_too():
    member = MemberFactory()
    RoleAssignment.objects.create(membership=member, role=RoleFactory(org=member.org))
    with as_outside_requests():
        with org_scope(member.org):
            assert member.roleassignment_set.count() == 1
        with org_scope(OrgFactory()):
            assert member.roleassignment_set.count() == 0
        with pytest.raises(ScopeError):
            member.roleassignment_set.exclude(role=None).exists()
