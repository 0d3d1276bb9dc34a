"""An org whose audit log holds entries by and about real objects of every kind (members, agents,
connections, runs, teams, roles, API keys, SCIM tokens, SSO connections, domains), written as the
services write them, and helpers to read the log page and its exports."""

import csv
import io
import json
import uuid
from dataclasses import dataclass

import pytest
from django.urls import reverse

from accounts.models import ApiKey, Membership
from agents.models import Agent, Connection, Run
from audit.events import AuditEvent, Outcome
from rbac.models import Role, Team
from scim.models import ScimToken
from sso.models import Connection as SsoConnection
from sso.models import Domain
from tests.agents_console.conftest import as_user, entries
from tests.factories import (
    PASSWORD,
    AgentFactory,
    ConnectionFactory,
    MemberFactory,
    RoleFactory,
    RunFactory,
    ScimTokenFactory,
    TeamFactory,
    UserFactory,
    api_key_for,
)


def log_url(org, name="audit-log", **kwargs):
    return reverse(f"audit:{name}", kwargs={"org": org.slug, **kwargs})


def human(member: Membership) -> tuple:
    return ("human", str(member.user_id), member.user.email)


def seqs(response) -> list[int]:
    return [e.seq for e in response.context["entries"]]


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def csv_rows(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(body(response).decode("utf-8"))))


def jsonl_rows(response) -> list[dict]:
    return [json.loads(line) for line in body(response).decode("utf-8").splitlines()]


@dataclass
class World:
    org: object
    owner: Membership
    member: Membership
    agent: Agent
    connection: Connection
    run: Run
    team: Team
    role: Role
    key: ApiKey
    scim_token: ScimToken
    sso: SsoConnection
    domain: Domain

    @property
    def client(self):
        return as_user(self.owner.user)


def sso_connection(org, name="Okta") -> SsoConnection:
    slug = f"sso-{uuid.uuid4().hex[:8]}"
    return SsoConnection.objects.create(org=org, name=name, slug=slug, protocol="oidc")


@pytest.fixture
def world(org) -> World:
    owner = MemberFactory(org=org, role="owner",
                          user=UserFactory(password=PASSWORD, email="owner@example.com"))
    member = MemberFactory(org=org, user=UserFactory(email="ada@example.com"))
    agent = AgentFactory(org=org, name="triage-bot", owners=[owner])
    connection = ConnectionFactory(org=org, name="Tickets")
    return World(
        org=org, owner=owner, member=member, agent=agent, connection=connection,
        run=RunFactory(org=org, agent=agent, description="nightly"), team=TeamFactory(org=org, name="Red"),
        role=RoleFactory(org=org, name="Agent ops"), key=api_key_for(org, ["audit:read"], name="CI")[0],
        scim_token=ScimTokenFactory(org=org, name="Okta sync"), sso=sso_connection(org),
        domain=Domain.objects.create(org=org, domain="example.com", challenge="c" * 32),
    )


def every_kind(w: World) -> list[dict]:
    """One entry about each kind of object, by each kind of actor."""
    return [
        {"event": AuditEvent.MEMBER_UPDATED, "actor": human(w.owner),
         "target": ("membership", str(w.member.pk)),
         "data": {"role": "admin", "previous_role": "member"}},
        {"event": AuditEvent.AGENT_SUSPENDED, "actor": ("api_key", str(w.key.pk), "CI"),
         "target": ("agent", str(w.agent.pk))},
        {"event": AuditEvent.CONNECTION_UPDATED, "actor": human(w.owner),
         "target": ("connection", str(w.connection.pk)), "data": {"name": "Tickets", "previous_name": "Tix"}},
        {"event": AuditEvent.RUN_TERMINATED, "actor": ("agent", str(w.agent.pk), "triage-bot"),
         "target": ("run", str(w.run.pk)), "data": {"agent": str(w.agent.pk), "reason": "done"}},
        {"event": AuditEvent.TEAM_CREATED, "actor": human(w.owner), "target": ("team", str(w.team.pk)),
         "data": {"name": "Red"}},
        {"event": AuditEvent.ROLE_UPDATED, "actor": human(w.owner), "target": ("role", str(w.role.pk)),
         "data": {"name": "Agent ops", "permissions": ["agent:read"], "previous_permissions": []}},
        {"event": AuditEvent.API_KEY_CREATED, "actor": human(w.owner), "target": ("apikey", str(w.key.pk)),
         "data": {"name": "CI"}},
        {"event": AuditEvent.SCIM_USER_DEACTIVATED, "actor": ("scim", str(w.scim_token.pk), "Okta sync"),
         "target": ("scimtoken", str(w.scim_token.pk)), "data": {"user_name": "x", "how": "active_false"}},
        {"event": AuditEvent.SSO_CONNECTION_UPDATED, "actor": human(w.owner),
         "target": ("connection", str(w.sso.pk)),
         "data": {"name": "Okta", "fields": ["name"]}},
        {"event": AuditEvent.SSO_DOMAIN_ADDED, "actor": human(w.owner),
         "target": ("domain", str(w.domain.pk)),
         "data": {"domain": "example.com"}},
        {"event": AuditEvent.PERMISSION_DENIED, "actor": human(w.member), "outcome": Outcome.DENIED,
         "data": {"reason": "missing_permission", "required": "agent:write", "action": "post"}},
        {"event": AuditEvent.LOGIN_FAILED, "actor": human(w.member), "outcome": Outcome.FAILURE,
         "data": {"reason": "bad_password", "method": "password"}},
    ]


@pytest.fixture
def filled(world) -> World:
    entries(world.org, every_kind(world))
    return world
