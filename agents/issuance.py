"""The client_credentials grant: authenticate the agent, decide what it gets, sign, audit.

This is the product's hottest write. It costs one read (agents.selectors: the secret with its
agent, org, policy and connection, and the owners' permissions), one more only when a run is named,
a signature with a cached parsed key, and one audit append (one round trip on PostgreSQL).
"""

import uuid
from dataclasses import dataclass

from django.utils import timezone

from agents.grants import delegable_scopes
from agents.models import AgentSecret, AgentStatus, Run, RunStatus
from agents.selectors import AgentRef, GrantContext, grant_context
from agents.tokens import IssuedToken, token_sign
from audit.actors import Actor
from audit.events import AuditEvent, Outcome
from audit.services import Target, audit_record
from core.credentials import LAST_USED_RESOLUTION, credential_presented
from core.secrets import secret_hash, secret_matches
from core.tenancy import org_scope_enter


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
    origin: str | None = None  # where the client reached us (agents.tokens.issuer_for decides)


def _target(agent: AgentRef) -> Target:
    return Target("agent", str(agent.pk))


def _refuse(agent: AgentRef, error: str, description: str, reason: str, status: int = 400):
    audit_record(org=agent.org, actor=Actor.for_agent(agent), event=AuditEvent.TOKEN_DENIED,
                 outcome=Outcome.DENIED, target=_target(agent),
                 data={"reason": reason, "client_id": agent.client_id})
    raise OAuthError(error, description, status)


def agent_authenticate(org_slug: str, client_id: str, client_secret: str,
                       resource: str | None = None) -> GrantContext:
    """The grant context of the active agent these credentials belong to in this org.

    The secret's lookup id finds its row; the client id and the URL's org must match the same row.
    The secret is compared in constant time, and an expired rotation window ends the old secret
    right here, by its timestamp, whether or not any background job has run.
    """
    now = timezone.now()
    presented = credential_presented(client_secret, AgentSecret.PREFIX)
    context = presented and grant_context(org_slug=org_slug, client_id=client_id,
                                          lookup_id=presented.lookup_id, resource=resource, now=now,
                                          use_resolution=now - LAST_USED_RESOLUTION)
    if not context:
        secret_hash(client_secret)  # the same work as a real check: timing tells nothing
        raise OAuthError("invalid_client", "Client authentication failed.", 401)
    matches = secret_matches(presented.secret, context.secret_hash, context.hash_kid)
    if not matches or not context.secret_live:
        _refuse(context.agent, "invalid_client", "Client authentication failed.", "bad_secret", 401)
    if not context.holder_acting:  # the person this secret was handed to cannot act here now
        _refuse(context.agent, "invalid_client", "Client authentication failed.",
                "secret_holder_inactive", 401)
    if context.agent.status != AgentStatus.ACTIVE:
        _refuse(context.agent, "invalid_client", "Client authentication failed.",
                f"agent_{context.agent.status}", 401)
    # The OAuth request acts in the authenticated agent's org from here on.
    org_scope_enter(context.agent.org)
    return context


def _audience(context: GrantContext, resource: str | None) -> tuple[str, list]:
    agent = context.agent
    if resource is None:
        if len(agent.audiences) != 1:
            _refuse(agent, "invalid_target", "Name the resource (RFC 8707).", "resource_missing")
        resource = agent.audiences[0]
    scopes = context.audience_scopes if context.audience == resource else None
    if resource not in agent.audiences:
        _refuse(agent, "invalid_target", "This client may not ask for that resource.", "resource_not_granted")
    if scopes is None:
        _refuse(agent, "invalid_target", "Unknown resource.", "resource_unknown")
    return resource, scopes


def _scope(context: GrantContext, connection_scopes_: list, requested: str | None) -> str:
    agent = context.agent
    allowed = delegable_scopes(set(agent.scopes) & set(connection_scopes_), context.owners)
    wanted = set(requested.split()) if requested else allowed
    # Never silently widened: anything outside the grant, the connection or the owners' power is
    # refused as a whole rather than quietly trimmed.
    if not wanted or not wanted <= allowed:
        _refuse(agent, "invalid_scope", "The requested scope is not granted.", "scope_not_granted")
    return " ".join(sorted(wanted))


def _run(agent: AgentRef, run_id: str | None) -> Run | None:
    if not run_id:
        return None
    run = Run.objects.for_org(agent.org.pk).filter(pk=_uuid_or_none(run_id), agent_id=agent.pk).first()
    if run is None or run.status != RunStatus.RUNNING:
        _refuse(agent, "invalid_request", "Unknown or finished run.", "run_not_running")
    return run


def _uuid_or_none(value: str):
    try:
        return uuid.UUID(value)
    except (TypeError, ValueError):
        return None


def token_grant(request: GrantRequest) -> IssuedToken:
    context = agent_authenticate(request.org_slug, request.client_id, request.client_secret, request.resource)
    agent = context.agent
    audience, scopes = _audience(context, request.resource)
    scope = _scope(context, scopes, request.scope)
    run = _run(agent, request.run_id)
    issued = token_sign(org=agent.org, alg=context.token_alg, agent=agent, audience=audience, scope=scope,
                        origin=request.origin,
                        ttl=context.token_ttl, run=run, credential_id=context.secret_id)
    audit_record(org=agent.org, actor=Actor.for_agent(agent), event=AuditEvent.TOKEN_ISSUED,
                 target=_target(agent),
                 data={"jti": issued.claims["jti"], "run": str(run.pk) if run else None, "scope": scope,
                       "audience": audience, "expires_in": issued.expires_in})
    if context.secret_use_stale:  # "last used" is kept to the minute, not written on every grant
        AgentSecret.objects.filter(pk=context.secret_id).update(last_used_at=timezone.now())
    return issued
