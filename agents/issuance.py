"""The client_credentials grant: authenticate the agent, decide what it gets, sign, audit.

This is the product's hottest write. It costs one read (agents.selectors: the secret with its
agent, org, policy and connection, and the owners' permissions), one more only when a run is named,
a signature with a cached parsed key, and one audit append (one round trip on PostgreSQL).
"""

import ipaddress
import uuid
from dataclasses import dataclass

from django.utils import timezone

from agents import chain, signals
from agents.grants import delegable_scopes
from agents.models import Agent, AgentSecret, AgentStatus, Run, RunStatus
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

    def __init__(self, error: str, description: str, status: int = 400, extra: dict | None = None):
        super().__init__(description)
        self.error, self.description, self.status, self.extra = error, description, status, extra


@dataclass(frozen=True)
class GrantRequest:
    org_slug: str
    client_id: str
    client_secret: str
    scope: str | None
    resource: str | None
    run_id: str | None
    origin: str | None = None  # where the client reached us (agents.tokens.issuer_for decides)
    may_act: str | None = None  # the client id of the one agent that may exchange the token
    ip: str | None = None  # the client's address (the trusted proxies' X-Forwarded-For)
    agent_version: str | None = None  # what the client says it runs (compliance)


# Checks the layers above register (trust.apps: the org floor and the connection's minimum), so
# that every grant that mints a token for a connection passes them and this core imports nothing
# above it. Each is called as gate(agent=, audience=, grant=, run=) before the token is signed,
# raises OAuthError to refuse (having audited why) and may return what `token.issued` records of it.
ISSUANCE_GATES: list = []


def issuance_gates_check(agent: AgentRef, *, audience: str, grant: str, run=None) -> dict:
    recorded = {}
    for gate in ISSUANCE_GATES:
        recorded.update(gate(agent=agent, audience=audience, grant=grant, run=run) or {})
    return recorded


def _target(agent: AgentRef) -> Target:
    return Target("agent", str(agent.pk))


def _refuse(agent: AgentRef, error: str, description: str, reason: str, status: int = 400):
    audit_record(org=agent.org, actor=Actor.for_agent(agent), event=AuditEvent.TOKEN_DENIED,
                 outcome=Outcome.DENIED, target=_target(agent),
                 data={"reason": reason, "client_id": agent.client_id})
    if reason in signals.OBSERVED_REASONS:  # counts in its trust score (identity, behaviour)
        signals.observe(agent, signals.OBSERVED_REASONS[reason], reason)
    raise OAuthError(error, description, status)


def client_observed(agent: AgentRef, *, ip: str | None, agent_version: str | None) -> None:
    """What a token request says about the client that its score reads: a request from outside
    the networks its owners expect is observed (identity); the version it reports is kept
    (compliance), written only when it changes."""
    if agent.networks and ip:
        try:
            address = ipaddress.ip_address(ip)
            inside = any(address in ipaddress.ip_network(n, strict=False) for n in agent.networks)
        except ValueError:
            inside = False
        if not inside:
            signals.observe(agent, "unexpected_network", ip)
    if agent_version is None or agent_version == agent.reported_version:
        return
    if not 0 < len(agent_version) <= 64 or not agent_version.isprintable():
        _refuse(agent, "invalid_request", "agent_version: 1 to 64 printable characters.",
                "agent_version_invalid")
    if Agent.objects.for_org(agent.org.pk).filter(pk=agent.pk).update(reported_version=agent_version):
        signals.agent_inputs_changed.send(sender=None, agent_id=agent.pk)


def agent_authenticate(org_slug: str, client_id: str, client_secret: str,
                       resource: str | None = None, *, inactive_ok: bool = False) -> GrantContext:
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
    if context.agent.status != AgentStatus.ACTIVE and not inactive_ok:
        _refuse(context.agent, "invalid_client", "Client authentication failed.",
                f"agent_{context.agent.status}", 401)
    # The OAuth request acts in the authenticated agent's org from here on.
    org_scope_enter(context.agent.org)
    return context


def grant_audience(context: GrantContext, resource: str | None) -> tuple[str, list]:
    """The audience a token will name and the scopes its connection accepts (invalid_target)."""
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


def grant_scope(context: GrantContext, connection_scopes_: list, requested: str | None) -> str:
    """The scope a token of the agent's own will carry (invalid_scope)."""
    agent = context.agent
    allowed = delegable_scopes(set(agent.scopes) & set(connection_scopes_), context.owners)
    wanted = set(requested.split()) if requested else allowed
    # Never silently widened: anything outside the grant, the connection or the owners' power is
    # refused as a whole rather than quietly trimmed.
    if not wanted or not wanted <= allowed:
        _refuse(agent, "invalid_scope", "The requested scope is not granted.", "scope_not_granted")
    return " ".join(sorted(wanted))


def audit_issued(agent: AgentRef, issued: IssuedToken, *, grant: str, parent_jti: str | None = None,
                 gated: dict | None = None) -> None:
    """The issuance on record, naming the root principal and the whole chain (agents.chain), and
    what the issuance gates saw (the trust score)."""
    claims = issued.claims
    data = {"jti": claims["jti"], "run": claims.get("run"), "scope": claims["scope"],
            "audience": claims["aud"],
            "expires_in": issued.expires_in, "grant": grant, **(gated or {})}
    if "act" in claims or "may_act" in claims:
        data.update(subject=claims["sub"], chain=chain.principals(claims), delegation=claims.get("dlg"),
                    may_act=(claims.get("may_act") or {}).get("sub"), parent_jti=parent_jti)
    audit_record(org=agent.org, actor=Actor.for_agent(agent), event=AuditEvent.TOKEN_ISSUED,
                 target=_target(agent), data=data)


def may_act_for(context: GrantContext, client_id: str | None) -> dict | None:
    """The `may_act` claim (RFC 8693 §4.4) naming the one agent of this org that may exchange the
    token: only an agent the client's owners allowed it to delegate to (`may_delegate_to`),
    matched on its immutable ids. One query, only when asked."""
    if client_id is None:
        return None
    agent = context.agent
    target = (Agent.objects.for_org(agent.org.pk).filter(client_id=client_id[:64], may_receive_from=agent.pk)
              .values_list("pk", "client_id").first())
    if target is None:
        _refuse(agent, "invalid_request", "This client may not name that agent in may_act.",
                "may_act_not_allowed")
    return {"sub": f"agent:{target[0]}", "client_id": target[1]}


def _run(agent: AgentRef, run_id: str | None) -> Run | None:
    if not run_id:
        return None
    run = Run.objects.for_org(agent.org.pk).filter(pk=_uuid_or_none(run_id), agent_id=agent.pk).first()
    status = run and run.status_at(timezone.now())
    if status == RunStatus.PENDING_APPROVAL:  # escalated: the agent polls as in RFC 8628 §3.5
        _refuse(agent, "authorization_pending", "The run is waiting for a person's approval.",
                "run_pending_approval")
    if status == RunStatus.STOPPING:
        _refuse(agent, "invalid_request", "The run is stopping: no new tokens.", "run_stopping")
    if status != RunStatus.RUNNING:
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
    client_observed(agent, ip=request.ip, agent_version=request.agent_version)
    audience, scopes = grant_audience(context, request.resource)
    scope = grant_scope(context, scopes, request.scope)
    run = _run(agent, request.run_id)
    if run is not None and run.audiences and audience not in run.audiences:
        _refuse(agent, "invalid_target", "The run was dispatched for other services.", "run_audience")
    may_act = may_act_for(context, request.may_act)
    gated = issuance_gates_check(agent, audience=audience, grant="client_credentials", run=run)
    issued = token_sign(org=agent.org, alg=context.token_alg, agent=agent, audience=audience, scope=scope,
                        origin=request.origin, may_act=may_act,
                        ttl=context.token_ttl, run=run, credential_id=context.secret_id)
    audit_issued(agent, issued, grant="client_credentials", gated=gated)
    if context.secret_use_stale:  # "last used" is kept to the minute, not written on every grant
        AgentSecret.objects.filter(pk=context.secret_id).update(last_used_at=timezone.now())
    return issued
