"""An org with agents, connections, runs, delegations and approvals for the agent console's pages,
audit entries written the way the token endpoint, introspection and signals write them (on chosen
days, for the charts), and a query counter for "the same number of queries whatever the size"."""

import datetime
import uuid
from dataclasses import dataclass

import pytest
from django.db import connection as db
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Membership
from agents.models import Agent, AgentSecret, Connection, Delegation, Run
from audit.chain import entry_seal
from audit.events import AuditEvent, Outcome
from audit.models import GENESIS_HASH, AuditChain, AuditEntry, chain_key
from core.permissions import Perm
from tests.factories import PASSWORD, AgentFactory, ConnectionFactory, MemberFactory, UserFactory, api_key_for
from tests.factories import sign_in as _sign_in

AUDIENCE = "https://service.example/api"


def page_url(name, org, **kwargs):
    return reverse(name if ":" in name else f"agents:{name}", kwargs={"org": org.slug, **kwargs})


def api_url(name, org):
    return reverse(f"api:{name}", kwargs={"org": org.slug})


def as_user(user, **kwargs) -> Client:
    return _sign_in(Client(), user, **kwargs)


def queries(client, path, data=None) -> int:
    """The queries of one GET of `path` after a first one (which fills caches a later visit finds)."""
    assert client.get(path, data).status_code == 200
    with CaptureQueriesContext(db) as captured:
        response = client.get(path, data)
    assert response.status_code == 200, response.content[:500]
    return len(captured)


def entries(org, rows) -> None:
    """Append audit entries to the org's chain as the services would, each row a dict with `event`
    and optionally outcome, actor (type, id, display), target (type, id), data and ts (the chain
    stays valid: sealed and linked in order)."""
    chain, _ = AuditChain.objects.get_or_create(chain=chain_key(org))
    seq, prev = chain.last_seq, chain.last_hash or GENESIS_HASH
    made = []
    for row in sorted(rows, key=lambda r: r.get("ts") or timezone.now()):
        event = row["event"]
        seq += 1
        actor_type, actor_id, actor_display = row.get("actor", ("system", "", "system"))
        target_type, target_id = row.get("target", ("", ""))
        entry = AuditEntry(
            org=org, chain=chain_key(org), seq=seq, ts=row.get("ts") or timezone.now(),
            actor_type=actor_type, actor_id=actor_id, actor_display=actor_display,
            event_code=event.code, event_name=event.label, outcome=row.get("outcome", Outcome.SUCCESS),
            correlation_id=uuid.uuid4().hex, target_type=target_type, target_id=target_id,
            data=row.get("data", {}), prev_hash=prev)
        entry_seal(entry)
        prev = entry.hash
        made.append(entry)
    AuditEntry.objects.bulk_create(made)
    AuditChain.objects.filter(pk=chain.pk).update(last_seq=seq, last_hash=prev)


def days_ago(n: int, hour: int = 0) -> datetime.datetime:
    """A moment on the UTC day `n` days before today (the start of it, plus `hour` minutes)."""
    today = timezone.now().astimezone(datetime.UTC).date()
    day = today - datetime.timedelta(days=n)
    start = datetime.datetime.combine(day, datetime.time.min, tzinfo=datetime.UTC)
    return start + datetime.timedelta(minutes=hour)


def tokens(org, agent, *, issued=(), denied=(), run=None, audience=AUDIENCE, delegation=None) -> None:
    """token.issued / token.denied entries of the agent, one per day offset given (0 = today)."""
    actor = ("agent", str(agent.pk), agent.name)
    rows = [{"event": AuditEvent.TOKEN_ISSUED, "actor": actor, "target": ("agent", str(agent.pk)),
             "ts": days_ago(n, i), "data": {"jti": uuid.uuid4().hex, "run": str(run.pk) if run else None,
                                            "scope": "t:read", "audience": audience, "expires_in": 300,
                                            "grant": "client_credentials",
                                            **({"delegation": str(delegation.pk)} if delegation else {})}}
            for i, n in enumerate(issued)]
    rows += [{"event": AuditEvent.TOKEN_DENIED, "actor": actor, "target": ("agent", str(agent.pk)),
              "outcome": Outcome.DENIED, "ts": days_ago(n, i),
              "data": {"reason": "scope_not_granted", "client_id": agent.client_id}}
             for i, n in enumerate(denied)]
    entries(org, rows)


def delegation_of(agent, member, *, live=True, audience=AUDIENCE) -> Delegation:
    now = timezone.now()
    return Delegation.objects.create(
        org=agent.org, agent=agent, user=member.user, membership=member, person_email=member.user.email,
        audience=audience, scopes=["t:read"],
        expires_at=now + datetime.timedelta(hours=1 if live else -1))


def secret_of(agent, *, age_days=0, last_used_days=None, holder=None) -> AgentSecret:
    fields, _ = AgentSecret.mint()
    now = timezone.now()
    return AgentSecret.objects.create(
        agent=agent, created_at=now - datetime.timedelta(days=age_days),
        last_used_at=now - datetime.timedelta(days=last_used_days) if last_used_days is not None else None,
        created_by=holder, **fields)


@dataclass
class World:
    org: object
    owner: Membership
    connection: Connection
    agent: Agent
    client: Client

    def url(self, name, **kwargs):
        return page_url(name, self.org, **kwargs)

    def api(self, perms=(Perm.AGENT_READ, Perm.RUN_READ, Perm.CONNECTION_READ, Perm.TRUST_READ)) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(self.org, list(perms))[1]}")
        return client


@pytest.fixture
def world(org) -> World:
    owner = MemberFactory(org=org, role="owner", user=UserFactory(password=PASSWORD))
    connection = ConnectionFactory(org=org, name="Tickets", audience=AUDIENCE, scopes=["t:read", "t:write"])
    agent = AgentFactory(org=org, name="triage-bot", scopes=["t:read"], audiences=[AUDIENCE], owners=[owner])
    return World(org, owner, connection, agent, as_user(owner.user))


def more_runs(agent, count, **fields) -> list[Run]:
    return Run.objects.bulk_create([Run(org=agent.org, agent=agent, started_by_type="human",
                                        description=f"job {n:03d}", **fields) for n in range(count)])
