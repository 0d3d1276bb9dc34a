"""Tokens an agent gets to act for a person: the device code grant (RFC 8628 §3.4) and the refresh
token grant (RFC 6749 §6, rotated on every use, OAuth 2.1 §4.3.1).

Both issue under a delegation (agents.delegation) and re-read its standing first, so the token
carries at most what every link holds at this moment. The access token reads `sub: user:<id>`,
`act: {"sub": "agent:<id>"}`, `dlg: <delegation id>`; the refresh token (unless the org's policy
forbids them) is of the delegation's family and ends with it.
"""

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from agents import device
from agents.delegation import (
    Standing,
    delegation_of,
    delegation_revoke,
    delegation_standing,
    refresh_find,
    refresh_mint,
    refresh_spent,
    refresh_take,
)
from agents.issuance import (
    OAuthError,
    _refuse,
    agent_authenticate,
    audit_issued,
    client_observed,
    issuance_gates_check,
    may_act_for,
)
from agents.models import RefreshToken
from agents.selectors import GrantContext
from agents.tokens import IssuedToken, token_sign
from audit.actors import Actor
from audit.events import AuditEvent
from audit.services import Target, audit_record
from core.credentials import credential_presented


@dataclass(frozen=True)
class DelegatedGrant:
    issued: IssuedToken
    refresh_token: str | None


@dataclass(frozen=True)
class DelegatedRequest:
    org_slug: str
    client_id: str
    client_secret: str
    scope: str | None = None
    may_act: str | None = None
    origin: str | None = None
    ip: str | None = None
    agent_version: str | None = None


def device_grant(request: DelegatedRequest, device_code: str) -> DelegatedGrant:
    presented = credential_presented(device_code or "", device.DeviceAuthorization.PREFIX)
    authorization = device.device_row(device_code, presented)
    context = agent_authenticate(
        request.org_slug,
        request.client_id,
        request.client_secret,
        authorization.audience if authorization else None,
    )
    client_observed(context.agent, ip=request.ip, agent_version=request.agent_version)
    standing = device.device_claim(authorization, presented, context)
    plan = _plan(context, standing, request, grant="device_code")  # a refusal leaves the code
    device.device_spend(authorization, context)
    return _sign(context, plan, request, grant="device_code")


def refresh_grant(request: DelegatedRequest, refresh_token: str) -> DelegatedGrant:
    """Rotate: the presented token is spent (one conditional UPDATE) and a new one issued with the
    access token. A spent one presented again ends the family. Checks come before the spend, so a
    refused request (a wider scope, a person who cannot act just now) does not cost the token."""
    presented = credential_presented(refresh_token or "", RefreshToken.PREFIX)
    row = presented and refresh_find(presented)
    context = agent_authenticate(
        request.org_slug, request.client_id, request.client_secret, row.delegation.audience if row else None
    )
    agent = context.agent
    client_observed(agent, ip=request.ip, agent_version=request.agent_version)
    if not row or row.agent_id != agent.pk or row.org_id != agent.org.pk:
        _refuse(agent, "invalid_grant", "The refresh token is not valid.", "refresh_token_invalid")
    if row.spent_at is not None:
        _family_end(context, row.delegation_id)
    if row.refusal():
        _refuse(agent, "invalid_grant", "The refresh token is not valid.", f"refresh_token_{row.refusal()}")
    standing = delegation_standing(row.delegation_id, agent.org.pk)
    plan = _plan(context, standing, request, grant="refresh_token")
    if not refresh_take(row):
        if refresh_spent(row):  # a parallel use spent it first: reuse
            _family_end(context, row.delegation_id)
        _refuse(agent, "invalid_grant", "The refresh token is not valid.", "refresh_token_revoked")
    return _sign(context, plan, request, grant="refresh_token")


def _family_end(context: GrantContext, delegation_id) -> None:
    """A spent refresh token came back: someone holds a copy. The whole family (the delegation and
    every token under it) ends, on record, and this request is refused."""
    agent = context.agent
    delegation = delegation_of(agent.org.pk, delegation_id)
    with transaction.atomic():
        audit_record(
            org=agent.org,
            actor=Actor.for_agent(agent),
            event=AuditEvent.REFRESH_REUSED,
            target=Target("delegation", str(delegation_id)),
            data={"delegation": str(delegation_id), "agent": str(agent.pk)},
        )
        if delegation is not None:
            delegation_revoke(
                delegation=delegation, actor=Actor.for_agent(agent), reason="refresh_token_reused"
            )
    raise OAuthError("invalid_grant", "The refresh token has been used already.")


@dataclass(frozen=True)
class _Plan:
    standing: Standing
    scope: str
    may_act: dict | None
    gated: dict


def _plan(context: GrantContext, standing: Standing | None, request: DelegatedRequest, *,
          grant: str) -> _Plan:
    agent = context.agent
    if standing is None or standing.agent_id != agent.pk:
        _refuse(agent, "invalid_grant", "The delegation is not valid.", "delegation_unknown")
    if standing.refusal:
        _refuse(agent, "invalid_grant", "The delegation is no longer valid.", standing.refusal)
    if standing.audience not in agent.audiences or context.audience != standing.audience:
        _refuse(
            agent,
            "invalid_target",
            "This client may no longer ask for that resource.",
            "resource_not_granted",
        )
    allowed = standing.scopes_for(agent.scopes, context.audience_scopes, context.owners)
    wanted = set(request.scope.split()) if request.scope else allowed
    if not wanted or not wanted <= allowed:
        _refuse(agent, "invalid_scope", "The requested scope is not delegated.", "scope_not_delegated")
    may_act = may_act_for(context, request.may_act)
    gated = issuance_gates_check(agent, audience=standing.audience, grant=grant)
    return _Plan(standing, " ".join(sorted(wanted)), may_act, gated)


def _sign(context: GrantContext, plan: _Plan, request: DelegatedRequest, *, grant: str) -> DelegatedGrant:
    agent, standing = context.agent, plan.standing
    remaining = int((standing.expires_at - timezone.now()).total_seconds())
    issued = token_sign(
        org=agent.org,
        alg=context.token_alg,
        agent=agent,
        audience=standing.audience,
        scope=plan.scope,
        ttl=max(1, min(context.token_ttl, remaining)),
        credential_id=context.secret_id,
        origin=request.origin,
        subject=standing.subject,
        act={"sub": agent.subject},
        delegation_id=standing.delegation_id,
        may_act=plan.may_act,
    )
    refresh = None
    if context.refresh_tokens:
        refresh = refresh_mint(
            delegation_id=standing.delegation_id,
            agent_id=agent.pk,
            org_id=agent.org.pk,
            user_id=standing.user_id,
            expires_at=standing.expires_at,
        )
    audit_issued(agent, issued, grant=grant, gated=plan.gated)
    return DelegatedGrant(issued, refresh)
