"""Token exchange (RFC 8693): an agent that was handed a token gets one it may use itself.

The acting agent B authenticates as a client and presents the `subject_token` (an access token of
this issuer that names B in `may_act`), optionally its own `actor_token`. The result keeps the
subject's `sub`, `org`, `run` and delegation, nests the chain in `act` (agents.chain), and never
carries more than every link holds:

- scope ⊆ the subject token's scope ∩ B's grant ∩ B's owners' power ∩ the audience's scopes, and,
  for a chain rooted in a person, ∩ that person's permissions now (the delegation's standing);
- lifetime ≤ the subject token's remaining lifetime and the org's token lifetime;
- the chain's depth ≤ the org's `max_delegation_depth`, and no agent twice in it;
- every link alive: the subject token is verified (its own and every ancestor's revocation keys,
  one store round trip), and so is the delegation it descends from.

Refusals are RFC 8693 §2.2.2's, as the contract lists them, each on record as
`token_exchange.error` with its reason. The cost is constant whatever the depth: the grant's one
statement, the delegation's when the chain has one, the `may_act` lookup when asked, one audit
append, and no query for verification on the store's steady path.
"""

import time
from dataclasses import dataclass

from django.utils import timezone

from agents import chain, revocation
from agents.delegation import delegation_standing
from agents.grants import delegable_scopes
from agents.issuance import (
    OAuthError,
    _uuid_or_none,
    agent_authenticate,
    audit_issued,
    client_observed,
    issuance_gates_check,
    may_act_for,
)
from agents.models import Run, RunStatus
from agents.selectors import AgentRef, GrantContext
from agents.tokens import IssuedToken, TokenInvalid, token_sign, token_verify
from audit.actors import Actor
from audit.events import AuditEvent, Outcome
from audit.services import Target, audit_record

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
KNOWN_TOKEN_TYPES = {
    ACCESS_TOKEN_TYPE,
    "urn:ietf:params:oauth:token-type:refresh_token",
    "urn:ietf:params:oauth:token-type:id_token",
    "urn:ietf:params:oauth:token-type:jwt",
    "urn:ietf:params:oauth:token-type:saml1",
    "urn:ietf:params:oauth:token-type:saml2",
}


@dataclass(frozen=True)
class ExchangeRequest:
    org_slug: str
    client_id: str
    client_secret: str
    subject_token: str | None
    subject_token_type: str | None
    actor_token: str | None = None
    actor_token_type: str | None = None
    resource: str | None = None
    audience: str | None = None
    scope: str | None = None
    may_act: str | None = None
    origin: str | None = None
    ip: str | None = None
    agent_version: str | None = None


def _fail(agent: AgentRef, error: str, description: str, reason: str, subject: dict | None = None) -> None:
    data = {"reason": reason, "client_id": agent.client_id}
    if subject is not None:
        data.update(subject=subject.get("sub"), chain=_chain_or_none(subject))
    audit_record(
        org=agent.org,
        actor=Actor.for_agent(agent),
        event=AuditEvent.TOKEN_EXCHANGE_ERROR,
        outcome=Outcome.DENIED,
        target=Target("agent", str(agent.pk)),
        data=data,
    )
    raise OAuthError(error, description)


def _chain_or_none(claims: dict):
    try:
        return chain.principals(claims)
    except (chain.ChainMalformed, KeyError):
        return None


def _verified(agent: AgentRef, token: str, what: str) -> dict:
    try:
        return token_verify(token, org_slug=agent.org.slug)
    except TokenInvalid as exc:
        _fail(
            agent,
            "invalid_request",
            f"The {what} is not a valid access token of this issuer.",
            f"{what}_{exc.reason}",
        )
    except revocation.RevocationUnavailable:
        raise OAuthError("temporarily_unavailable", "Try again shortly.", 503)


def exchange_grant(request: ExchangeRequest) -> IssuedToken:
    resource = request.resource or request.audience
    if request.resource and request.audience and request.resource != request.audience:
        resource = None  # decided below, once the client is known
    context = agent_authenticate(request.org_slug, request.client_id, request.client_secret, resource)
    agent = context.agent
    client_observed(agent, ip=request.ip, agent_version=request.agent_version)
    if request.resource and request.audience and request.resource != request.audience:
        _fail(agent, "invalid_target", "Name one resource.", "resource_ambiguous")
    if not request.subject_token:
        _fail(agent, "invalid_request", "subject_token is required.", "subject_token_missing")
    if request.subject_token_type != ACCESS_TOKEN_TYPE:
        known = request.subject_token_type in KNOWN_TOKEN_TYPES
        _fail(
            agent,
            "invalid_request",
            "Only access tokens of this issuer can be exchanged.",
            "subject_token_type_unsupported" if known else "subject_token_type_invalid",
        )
    if bool(request.actor_token) != bool(request.actor_token_type):
        _fail(
            agent,
            "invalid_request",
            "actor_token and actor_token_type go together.",
            "actor_token_incomplete",
        )
    if request.actor_token_type and request.actor_token_type != ACCESS_TOKEN_TYPE:
        _fail(
            agent,
            "invalid_request",
            "The actor token must be an access token of this issuer.",
            "actor_token_type_unsupported",
        )
    subject = _verified(agent, request.subject_token, "subject_token")
    actor_claims = _check_actor(agent, subject, request)
    new_act = chain.act_for_exchange(subject, agent.subject)
    extended = {**subject, "act": new_act}
    principals = chain.principals(extended)
    agents = [p for p in principals if p.startswith("agent:")]
    if len(agents) != len(set(agents)):
        _fail(
            agent,
            "invalid_request",
            "An agent may not appear twice in a delegation chain.",
            "chain_loop",
            subject,
        )
    if len(principals) - 1 > context.max_delegation_depth:
        _fail(
            agent,
            "invalid_request",
            "The delegation chain would be too deep for this organization.",
            "chain_too_deep",
            subject,
        )
    standing = _delegation(agent, subject)
    audience, connection_scopes = _target(context, resource, subject)
    if standing is not None and audience != standing.audience:
        # The person approved one service; no agent down the chain may carry it to another.
        _fail(agent, "invalid_target", "The person delegated access to another resource.",
              "delegation_audience", subject)
    scope = _scope(context, subject, connection_scopes, standing, request.scope)
    remaining = int(subject["exp"] - time.time())
    if remaining <= 0:
        _fail(agent, "invalid_request", "The subject token has expired.", "subject_token_expired", subject)
    may_act = may_act_for(context, request.may_act)
    if subject.get("run"):
        _assert_run_running(agent, subject)
    gated = issuance_gates_check(agent, audience=audience, grant="token_exchange")
    issued = token_sign(
        org=agent.org,
        alg=context.token_alg,
        agent=agent,
        audience=audience,
        scope=scope,
        ttl=min(context.token_ttl, remaining),
        credential_id=context.secret_id,
        origin=request.origin,
        subject=subject["sub"],
        act=new_act,
        run_id=subject.get("run"),
        delegation_id=subject.get("dlg"),
        may_act=may_act,
        ancestors=chain.ancestors_for_exchange(subject, *([actor_claims] if actor_claims else [])),
    )
    audit_issued(agent, issued, grant="token_exchange", parent_jti=subject["jti"], gated=gated)
    return issued


def _assert_run_running(agent: AgentRef, subject: dict) -> None:
    """A token handed on inside a run is new for that run: only while it runs (not once it is told
    to stop, and not after). One query, only for run-bound subjects."""
    run = Run.objects.for_org(agent.org.pk).filter(pk=_uuid_or_none(subject["run"])).first()
    if run is None or run.status_at(timezone.now()) != RunStatus.RUNNING:
        _fail(agent, "invalid_request", "The subject token's run is not running.", "run_not_running", subject)


def _check_actor(agent: AgentRef, subject: dict, request: ExchangeRequest) -> dict | None:
    """Who may act (RFC 8693 §4.4): the subject token must name this very agent in `may_act`, by its
    immutable ids, and an actor token, when sent, must be this agent's own, so the agent named, the
    agent asking and the agent acting are one."""
    may_act = subject.get("may_act")
    if not isinstance(may_act, dict):
        _fail(
            agent,
            "invalid_request",
            "The subject token does not allow anyone to act with it.",
            "may_act_missing",
            subject,
        )
    if may_act.get("sub") != agent.subject or may_act.get("client_id") != agent.client_id:
        _fail(
            agent,
            "invalid_request",
            "The subject token does not name this client in may_act.",
            "may_act_mismatch",
            subject,
        )
    if request.actor_token:
        actor = _verified(agent, request.actor_token, "actor_token")
        if actor.get("sub") != agent.subject or actor.get("client_id") != agent.client_id or actor.get("act"):
            _fail(
                agent,
                "invalid_request",
                "The actor token must be this client's own token.",
                "actor_token_not_own",
                subject,
            )
        if actor["sub"] != may_act.get("sub"):
            _fail(
                agent,
                "invalid_request",
                "The actor is not the one named in may_act.",
                "may_act_mismatch",
                subject,
            )
        return actor
    return None


def _delegation(agent: AgentRef, subject: dict):
    if not subject.get("dlg"):
        if subject["sub"].startswith("user:"):
            _fail(agent, "invalid_request", "The subject token is not valid.", "delegation_missing", subject)
        return None
    standing = delegation_standing(subject["dlg"], agent.org.pk)
    if standing is None or standing.refusal or standing.subject != subject["sub"]:
        _fail(
            agent,
            "invalid_request",
            "The delegation behind the subject token is no longer valid.",
            standing.refusal if standing and standing.refusal else "delegation_invalid",
            subject,
        )
    return standing


def _target(context: GrantContext, resource: str | None, subject: dict) -> tuple[str, list]:
    agent = context.agent
    if resource is None:
        if len(agent.audiences) != 1:
            _fail(agent, "invalid_target", "Name the resource (RFC 8707).", "resource_missing", subject)
        resource = agent.audiences[0]
    if resource not in agent.audiences or context.audience != resource:
        _fail(
            agent,
            "invalid_target",
            "This client may not ask for that resource.",
            "resource_not_allowed",
            subject,
        )
    return resource, context.audience_scopes


def _scope(
    context: GrantContext, subject: dict, connection_scopes: list, standing, requested: str | None
) -> str:
    agent = context.agent
    allowed = set(subject["scope"].split()) & set(agent.scopes) & set(connection_scopes)
    allowed = delegable_scopes(allowed, context.owners)
    if standing is not None:
        allowed &= delegable_scopes(allowed, [standing.person_perms]) & standing.approved
    wanted = set(requested.split()) if requested else allowed
    if not wanted or not wanted <= allowed:
        _fail(
            agent,
            "invalid_scope",
            "The requested scope is wider than the chain allows.",
            "scope_widened",
            subject,
        )
    return " ".join(sorted(wanted))
