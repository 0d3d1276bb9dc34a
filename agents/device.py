"""The device authorization grant (RFC 8628): a headless agent asks to act for a person.

1. The agent authenticates and asks (`device_start`) for a resource and scopes, and gets a device
   code (a credential: `dvc_<lookup id>_<secret>`, kept as its keyed hash) and a short user code.
2. The person, signed in (MFA and the org's policy apply: the page goes through the guard), types
   or follows the user code (`device_find`, rate-limited per person), sees which agent asks, for
   which service, which scopes and on behalf of which org, and approves for a lifetime within the
   org's policy, or denies (`device_decide`). An approval is a delegation (agents.delegation).
3. The agent polls the token endpoint (`device_poll`): `authorization_pending`, `slow_down` (too
   fast: the interval grows by five seconds, §3.5), `access_denied`, `expired_token`, then, once,
   the tokens. Everything ends by its timestamp; no worker needs to run.

User codes are 8 letters from a 20-letter alphabet without vowels (no words, no 0/O or 1/I), about
34 bits: short-lived (10 minutes), single use, and guessed only at the rate each person and each
agent is limited to. They are stored as a keyed hash, so the table gives nothing to type.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.delegation import delegation_create, delegation_revoke, delegation_standing
from agents.grants import delegable_scopes
from agents.issuance import OAuthError, _refuse, grant_audience, grant_scope
from agents.models import Agent, AgentStatus, Connection, Delegation, DeviceAuthorization, DeviceStatus
from agents.policy import agent_policy_for_org
from agents.selectors import GrantContext, owners_permissions
from audit.actors import Actor
from audit.events import AuditEvent, Outcome
from audit.services import Target, audit_record, records_denials
from core.errors import Conflict, Forbidden, Invalid
from core.ratelimit import counters_incr
from core.secrets import secret_matches
from rbac.guard import membership_permissions

USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
DEVICE_CODE_TTL = 600
POLL_INTERVAL = 5
SLOW_DOWN_STEP = 5  # RFC 8628 §3.5


class DeviceCodeThrottled(Exception):
    pass


def user_code_new() -> str:
    code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))
    return f"{code[:4]}-{code[4:]}"


def user_code_normal(raw: str) -> str | None:
    """What a person typed, as the code it names: case, spaces and dashes do not matter."""
    code = "".join(ch for ch in (raw or "")[:64].upper() if ch not in " -\t")
    if len(code) != USER_CODE_LENGTH or any(ch not in USER_CODE_ALPHABET for ch in code):
        return None
    return code


def user_code_hash(code: str) -> str:
    key = settings.IAM_HMAC_KEYS[settings.IAM_HMAC_CURRENT_KID]
    return hmac.new(key, b"user-code:" + code.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class DeviceStarted:
    authorization: DeviceAuthorization
    device_code: str
    user_code: str


def device_start(
    context: GrantContext, *, scope: str | None, resource: str | None, ip: str | None
) -> DeviceStarted:
    """Open a device authorization for an authenticated agent (RFC 8628 §3.1-3.2)."""
    agent = context.agent
    audience, connection_scopes = grant_audience(context, resource)
    scopes = grant_scope(context, connection_scopes, scope).split()
    for _attempt in range(5):
        user_code = user_code_new()
        fields, device_code = DeviceAuthorization.mint()
        try:
            authorization = _open(agent, audience, scopes, ip, user_code, fields)
        except IntegrityError:  # the same user code is live already: draw again
            continue
        if authorization is None:
            _refuse(
                agent,
                "slow_down",
                "Too many requests are waiting for a person; let some expire.",
                "device_rate_limited",
                429,
            )
        return DeviceStarted(authorization, device_code, user_code)
    raise OAuthError("temporarily_unavailable", "Try again shortly.", 503)


@transaction.atomic
def _open(agent, audience: str, scopes: list, ip, user_code: str, fields: dict) -> DeviceAuthorization | None:
    """The new request, or None when the agent already has as many waiting as the limit allows.
    The agent's row is locked while counting, so parallel requests cannot all pass the count."""
    Agent.objects.for_org(agent.org.pk).select_for_update().filter(pk=agent.pk).exists()
    now = timezone.now()
    pending = (
        DeviceAuthorization.objects.for_org(agent.org.pk)
        .filter(agent_id=agent.pk, status=DeviceStatus.PENDING, expires_at__gt=now)
        .count()
    )
    if pending >= settings.IAM_DEVICE_PENDING_LIMIT:
        return None
    authorization = DeviceAuthorization.objects.create(
        org_id=agent.org.pk,
        agent_id=agent.pk,
        user_code_hash=user_code_hash(user_code_normal(user_code)),
        audience=audience,
        scopes=scopes,
        interval=POLL_INTERVAL,
        requested_ip=ip,
        created_at=now,
        expires_at=now + timedelta(seconds=DEVICE_CODE_TTL),
        **fields,
    )
    audit_record(
        org=agent.org,
        actor=Actor.for_agent(agent),
        event=AuditEvent.DEVICE_REQUESTED,
        target=Target("agent", str(agent.pk)),
        data={"agent": str(agent.pk), "audience": audience, "scopes": scopes, "expires_in": DEVICE_CODE_TTL},
    )
    return authorization


# The person's side ------------------------------------------------------------------------------


def device_find(raw_code: str, *, user) -> DeviceAuthorization | None:
    """The pending, unexpired request a person's code names, or None (audited). Each person may
    try IAM_DEVICE_CODE_ATTEMPTS codes per ten minutes (DeviceCodeThrottled past that)."""
    (attempts,) = counters_incr([f"device:person:{user.pk}"], 600)
    if attempts > settings.IAM_DEVICE_CODE_ATTEMPTS:
        if attempts == settings.IAM_DEVICE_CODE_ATTEMPTS + 1:  # on record once, not per attempt
            user_code_rejected(user, "throttled")
        raise DeviceCodeThrottled()
    code = user_code_normal(raw_code)
    authorization = code and (
        DeviceAuthorization.objects.unscoped()  # a user code names its row, whatever the org
        .select_related("org", "agent")
        .filter(user_code_hash=user_code_hash(code))
        .first()
    )
    if not authorization:
        user_code_rejected(user, "unknown_code" if code else "malformed_code")
        return None
    if authorization.status != DeviceStatus.PENDING or authorization.expires_at <= timezone.now():
        user_code_rejected(
            user, "expired_code" if authorization.status == DeviceStatus.PENDING else "used_code"
        )
        return None
    return authorization


def user_code_rejected(user, reason: str) -> None:
    audit_record(
        org=None,
        actor=Actor.for_user(user),
        event=AuditEvent.USER_CODE_REJECTED,
        outcome=Outcome.FAILURE,
        data={"reason": reason},
    )


@dataclass(frozen=True)
class Offer:
    """What the consent page shows: the agent, the service, and what the person can give it."""

    authorization: DeviceAuthorization
    agent: Agent
    connection: Connection | None
    requested: list
    grantable: list  # requested ∩ the person's power ∩ the agent's grant ∩ its owners' power
    withheld: list
    max_lifetime: int


def device_offer(authorization: DeviceAuthorization, membership) -> Offer:
    agent = authorization.agent
    connection = (
        Connection.objects.for_org(authorization.org_id).filter(audience=authorization.audience).first()
    )
    offered = set(authorization.scopes) & set(agent.scopes) & set(connection.scopes if connection else ())
    grantable = delegable_scopes(offered, owners_permissions(agent.pk)) & delegable_scopes(
        offered, [membership_permissions(membership)]
    )
    policy = agent_policy_for_org(authorization.org)
    return Offer(
        authorization,
        agent,
        connection,
        sorted(authorization.scopes),
        sorted(grantable),
        sorted(set(authorization.scopes) - grantable),
        policy.delegation_max_lifetime_seconds,
    )


@records_denials
@transaction.atomic
def device_decide(
    *,
    authorization: DeviceAuthorization,
    membership,
    approve: bool,
    lifetime_seconds: int | None,
    actor: Actor,
):
    """The person's answer. Approving creates the delegation for what they can give now."""
    authorization = (
        DeviceAuthorization.objects.for_org(membership.org_id)
        .select_for_update()
        .select_related("agent", "org")
        .get(pk=authorization.pk)
    )
    now = timezone.now()
    if authorization.status != DeviceStatus.PENDING or authorization.expires_at <= now:
        raise Conflict("This request has expired or has been answered already.", code="device_code_spent")
    target = Target("agent", str(authorization.agent_id))
    if not approve:
        authorization.status, authorization.decided_by, authorization.decided_at = (
            DeviceStatus.DENIED,
            membership,
            now,
        )
        authorization.save(update_fields=["status", "decided_by", "decided_at"])
        audit_record(
            org=authorization.org,
            actor=actor,
            event=AuditEvent.DELEGATION_DENIED,
            target=target,
            data={"agent": str(authorization.agent_id), "device_authorization": str(authorization.pk)},
        )
        return None
    if authorization.agent.status != AgentStatus.ACTIVE:
        raise Conflict("This agent cannot be approved: it is not active.", code="agent_inactive")
    offer = device_offer(authorization, membership)
    if not offer.grantable:
        raise Forbidden(
            "You cannot give this agent any of the permissions it asks for.", code="nothing_to_delegate"
        )
    lifetime = offer.max_lifetime if lifetime_seconds is None else lifetime_seconds
    if not 300 <= lifetime <= offer.max_lifetime:
        message = f"Choose between 300 and {offer.max_lifetime} seconds (the organization's limit)."
        raise Invalid(message, fields={"lifetime_seconds": [message]})
    delegation = delegation_create(
        agent=authorization.agent,
        membership=membership,
        audience=authorization.audience,
        scopes=offer.grantable,
        lifetime_seconds=lifetime,
        actor=actor,
        device_authorization=authorization,
    )
    authorization.status, authorization.decided_by, authorization.decided_at = (
        DeviceStatus.APPROVED,
        membership,
        now,
    )
    authorization.delegation = delegation
    authorization.save(update_fields=["status", "decided_by", "decided_at", "delegation"])
    return delegation


# The agent's side: polling the token endpoint ----------------------------------------------------


def device_row(device_code: str, presented) -> DeviceAuthorization | None:
    if presented is None:
        return None
    return (
        DeviceAuthorization.objects.unscoped()  # the device code names its row; the org is checked after
        .filter(lookup_id=presented.lookup_id)
        .first()
    )


def device_claim(authorization: DeviceAuthorization | None, presented, context: GrantContext):
    """The standing of the delegation an approved code may issue under, for the authenticated
    agent polling with its device code; otherwise the RFC 8628 §3.5 error. Spends nothing: the
    caller checks what it would issue first, then spends the code (`device_spend`)."""
    agent = context.agent
    if (
        authorization is None
        or authorization.org_id != agent.org.pk
        or authorization.agent_id != agent.pk
        or not secret_matches(presented.secret, authorization.secret_hash, authorization.hash_kid)
    ):
        _refuse(agent, "invalid_grant", "Unknown device code.", "device_code_unknown")
    now = timezone.now()
    rows = DeviceAuthorization.objects.for_org(agent.org.pk).filter(pk=authorization.pk)
    if authorization.status == DeviceStatus.ISSUED:
        _refuse(agent, "invalid_grant", "This device code has been used.", "device_code_used")
    if authorization.expires_at <= now:
        if authorization.status == DeviceStatus.APPROVED:
            device_approval_lapse(authorization)
        raise OAuthError("expired_token", "The device code has expired; start again.")
    if authorization.status == DeviceStatus.DENIED:
        raise OAuthError("access_denied", "The person denied the request.")
    if authorization.status == DeviceStatus.PENDING:
        too_soon = authorization.last_polled_at is not None and (
            now - authorization.last_polled_at < timedelta(seconds=authorization.interval)
        )
        if too_soon:
            rows.update(interval=authorization.interval + SLOW_DOWN_STEP, last_polled_at=now)
            raise OAuthError("slow_down", "Polling too fast; wait the interval.")
        rows.update(last_polled_at=now)
        raise OAuthError("authorization_pending", "The person has not answered yet.")
    return delegation_standing(authorization.delegation_id, agent.org.pk, now)


def device_spend(authorization: DeviceAuthorization, context: GrantContext) -> None:
    """Spend an approved code: one conditional UPDATE, so of parallel polls exactly one issues."""
    won = (
        DeviceAuthorization.objects.for_org(context.agent.org.pk)
        .filter(pk=authorization.pk, status=DeviceStatus.APPROVED, expires_at__gt=timezone.now())
        .update(status=DeviceStatus.ISSUED, last_polled_at=timezone.now())
    )
    if not won:
        _refuse(context.agent, "invalid_grant", "This device code has been used.", "device_code_used")


def device_approval_lapse(authorization: DeviceAuthorization) -> bool:
    """An approved code expired before the agent came for its tokens: the approval it made ends
    too, so nobody's page shows a delegation that can never be used."""
    delegation = authorization.delegation_id and (
        Delegation.objects.for_org(authorization.org_id).filter(pk=authorization.delegation_id).first()
    )
    if not delegation:
        return False
    return delegation_revoke(
        delegation=delegation, actor=Actor.system("device authorization"), reason="device_code_expired"
    )
