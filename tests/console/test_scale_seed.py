"""The scale seeding the console's tests and benchmark rely on gives a valid audit chain."""

import pytest

from accounts.models import Membership
from agents.models import Agent
from audit.selectors import audit_verify_org
from tests.factories import OrgFactory
from tests.scale import big_org

pytestmark = pytest.mark.django_db


def test_big_org_seeds_members_agents_and_a_valid_chain():
    org = OrgFactory()
    owner = big_org(org, members=20, agents=5, audit_entries=30)
    assert Membership.objects.for_org(org).count() == 21
    assert Agent.objects.for_org(org).filter(owners=owner).count() == 5
    assert owner.role == "owner"
    verdict = audit_verify_org(org=org)
    assert verdict.ok and verdict.head_seq == 30, verdict
