"""The client_credentials grant: authenticate the agent, decide what it gets, sign, audit.

This is the product's hottest write. It reads the agent with its org and policy in one query, its
live secrets in one, its owners' permissions in two, the connection in one (and the run when one is
named), signs with a cached parsed key, and appends one audit entry (one round trip on PostgreSQL).
"""

import time
import uuid
from dataclasses import dataclass

from django.utils import timezone

from accounts.policy import policy_for_org
from accounts.secrets import credential_parse, secret_hash, secret_matches
from agents.grants import delegable_scopes, owners_permissions
from agents.models import Agent, AgentSecret, AgentStatus, Connection, Run, RunStatus
from agents.services import SECRET_PREFIX
from agents.tokens import IssuedToken, token_sign
from audit.actors import Actor
from audit.events import AuditEvent, Outcome
from audit.services import Target, audit_record

LAST_USED_RESOLUTION = 60


class OAuthError(Exception):
    """An RFC 6749 §5.2 error: `error` code, description, HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400):
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


@dataclass(frozen=True)
class GrantRequest:
    org_slug: str
    client_id: str
    client_secret: str
    scope: str | None
    resource: str | None
    run_id: str | None


def _refuse(agent, error: str, description: str, reason: str, status: int = 400):
    if agent is not None:
        audit_record(org=agent.org, actor=Actor.for_agent(agent), event=AuditEvent.TOKEN_DENIED,
                     outcome=Outcome.DENIED, target=Target.of(agent),
                     data={"reason": reason, "client_id": agent.client_id})
    raise OAuthError(error, description, status)


def agent_authenticate(org_slug: str, client_id: str, client_secret: str) -> tuple[Agent, AgentSecret]:
    """The active agent these credentials belong to in this org, and the secret that matched.

    One query: the secret's lookup id finds its row, joined to the agent, org and policy; the
    client id and the URL's org must match the same row.
    """
    parsed = credential_parse(client_secret, SECRET_PREFIX)
    secret = parsed and (
        AgentSecret.objects.select_related("agent__org__security_policy")
        .filter(lookup_id=parsed[0], agent__client_id=client_id, agent__org__slug=org_slug).first()
    )
    if not secret:
        secret_hash(client_secret)  # the same work as a real check: timing tells nothing
        raise OAuthError("invalid_client", "Client authentication failed.", 401)
    agent = secret.agent
    # Compared in constant time; an expired rotation window ends the old secret right here, by its
    # timestamp, whether or not any background job has run.
    matches = secret_matches(parsed[1], secret.secret_hash, secret.hash_kid)
    if not matches or not secret.is_live(timezone.now()):
        _refuse(agent, "invalid_client", "Client authentication failed.", "bad_secret", 401)
    if agent.status != AgentStatus.ACTIVE:
        _refuse(agent, "invalid_client", "Client authentication failed.", f"agent_{agent.status}", 401)
    return agent, secret


def _audience(agent: Agent, resource: str | None) -> Connection:
    if resource is None:
        if len(agent.audiences) != 1:
            _refuse(agent, "invalid_target", "Name the resource (RFC 8707).", "resource_missing")
        resource = agent.audiences[0]
    if resource not in agent.audiences:
        _refuse(agent, "invalid_target", "This client may not ask for that resource.", "resource_not_granted")
    connection = Connection.objects.for_org(agent.org).filter(audience=resource).first()
    if connection is None:
        _refuse(agent, "invalid_target", "Unknown resource.", "resource_unknown")
    return connection


def _scope(agent: Agent, connection: Connection, requested: str | None) -> str:
    allowed = delegable_scopes(set(agent.scopes) & set(connection.scopes), owners_permissions(agent))
    wanted = set(requested.split()) if requested else allowed
    # Never silently widened: anything outside the grant, the connection or the owners' power is
    # refused as a whole rather than quietly trimmed.
    if not wanted or not wanted <= allowed:
        _refuse(agent, "invalid_scope", "The requested scope is not granted.", "scope_not_granted")
    return " ".join(sorted(wanted))


def _run(agent: Agent, run_id: str | None) -> Run | None:
    if not run_id:
        return None
    run = Run.objects.for_org(agent.org).filter(pk=_uuid_or_none(run_id), agent=agent).first()
    if run is None or run.status != RunStatus.RUNNING:
        _refuse(agent, "invalid_request", "Unknown or finished run.", "run_not_running")
    return run


def _uuid_or_none(value: str):
    try:
        return uuid.UUID(value)
    except (TypeError, ValueError):
        return None


def token_grant(request: GrantRequest) -> IssuedToken:
    agent, secret = agent_authenticate(request.org_slug, request.client_id, request.client_secret)
    connection = _audience(agent, request.resource)
    scope = _scope(agent, connection, request.scope)
    run = _run(agent, request.run_id)
    policy = policy_for_org(agent.org)
    issued = token_sign(org=agent.org, alg=policy.token_alg, agent=agent, audience=connection.audience,
                        scope=scope, ttl=policy.agent_token_ttl_seconds, run=run, credential_id=secret.pk)
    audit_record(org=agent.org, actor=Actor.for_agent(agent), event=AuditEvent.TOKEN_ISSUED,
                 target=Target.of(agent),
                 data={"jti": issued.claims["jti"], "run": str(run.pk) if run else None, "scope": scope,
                       "audience": connection.audience, "expires_in": issued.expires_in})
    _touch(secret)
    return issued


def _touch(secret: AgentSecret) -> None:
    now = time.time()
    if secret.last_used_at is None or now - secret.last_used_at.timestamp() > LAST_USED_RESOLUTION:
        AgentSecret.objects.filter(pk=secret.pk).update(last_used_at=timezone.now())
