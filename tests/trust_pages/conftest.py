"""An org with a trust world (tests.trust.conftest), an escalating gate, and people to sign in."""

from dataclasses import dataclass

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from core.permissions import Perm
from tests.factories import MemberFactory, api_key_for, sign_in
from tests.trust.conftest import TrustWorld, trust_world
from trust import policies
from trust.models import TrustGate


def url(name, org, **kwargs):
    return reverse(name if ":" in name else f"trust:{name}", kwargs={"org": org.slug, **kwargs})


def as_user(user, **kwargs) -> Client:
    return sign_in(Client(), user, **kwargs)


@dataclass
class Escalated:
    tw: TrustWorld
    dispatcher: object  # the member whose API key dispatched the run
    run: dict

    @property
    def approval_id(self) -> str:
        return self.run["approval"]


def escalate(tw: TrustWorld, operation="deploy") -> Escalated:
    """A gate no agent passes (below: escalate) and a run dispatched through it by someone's API key."""
    if not TrustGate.objects.for_org(tw.org).exists():
        policies.trust_gate_add(
            access=tw.world.access, name="deploys", operation=operation, min_score=99, below="escalate"
        )
    dispatcher = MemberFactory(org=tw.org, role="owner")
    client = APIClient()
    key = api_key_for(tw.org, [Perm.RUN_WRITE, Perm.RUN_READ], created_by=dispatcher.user)[1]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    response = client.post(
        tw.url("runs"),
        {"agent": str(tw.agent.pk), "operation": operation, "description": "ship it"},
        format="json",
    )
    assert response.status_code == 202, response.content
    return Escalated(tw, dispatcher, response.json())


@pytest.fixture
def tw(db) -> TrustWorld:
    return trust_world()


@pytest.fixture
def escalated(tw) -> Escalated:
    return escalate(tw)


@pytest.fixture
def approver(tw):
    """An org owner who neither dispatched the run nor owns the agent."""
    return MemberFactory(org=tw.org, role="owner")
