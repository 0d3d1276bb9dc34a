"""Tenancy at run time: a query nobody scoped raises instead of reading every org, and inside one
org's scope every reach for another org's rows (a related manager, a child table, `for_org`) is
limited or refused. The regex lint (test_tenancy_lint.py) stays as a backstop for the spelling."""

import pytest
from django.http import HttpResponse
from django_scopes import ScopeError, get_scope

from accounts.models import Membership
from agents.models import AgentSecret
from core.tenancy import TenancyScopeMiddleware, org_scope
from rbac.authentication import ApiKeyPrincipal
from rbac.guard import access_for_request
from rbac.models import Role, RoleAssignment, TeamMembership
from tests.conftest import as_outside_requests
from tests.factories import MemberFactory, OrgFactory, RoleFactory, TeamMemberFactory, api_key_for

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


def test_a_request_starts_without_the_scope_its_thread_had(rf):
    """Whatever the worker thread held before (a stale org scope, or none being enforced), a
    request starts with none: until the guard names the org, an unscoped query raises."""
    seen = []

    def view(request):
        seen.append(dict(get_scope()))
        with pytest.raises(ScopeError):
            list(Role.objects.all())
        return HttpResponse()

    stale = OrgFactory()
    with org_scope(stale):
        TenancyScopeMiddleware(view)(rf.get("/"))
        assert get_scope()["org"] == stale.pk  # and the thread's own state comes back afterwards
    assert seen == [{"_enabled": True}]


def test_the_guard_enters_the_scope_of_the_org_the_request_acts_in(rf):
    key, _ = api_key_for(OrgFactory(), ["role:read"])
    request = rf.get("/")
    request.user = ApiKeyPrincipal(key, key.perms)

    def view(request):
        assert access_for_request(request, key.org.slug) is not None
        return HttpResponse(str(get_scope().get("org")))

    assert TenancyScopeMiddleware(view)(request).content.decode() == str(key.org.pk)


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
