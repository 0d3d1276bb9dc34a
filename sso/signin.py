"""What both protocols share once the IdP's answer is verified: the flow in progress (its `state`),
who the answer names (linking on issuer and subject), just-in-time provisioning, the MFA mandate,
and the session.

The protocol modules (`sso.oidc`, `sso.saml`) verify what the IdP sent and hand over an
`Assertion`; nothing here trusts a claim the protocol layer has not verified.

A flow's `state` is `<flow id>.<key id>.<mac>`: an HMAC under the server key over the flow, the
connection and a random value kept in the browser's session, so a state from another browser or
for another connection fails the MAC before any row is read. It is spent by one conditional
UPDATE (`consumed_at IS NULL AND expires_at > now`): of two callbacks carrying it, one wins.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.http import Http404
from django.shortcuts import render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme

from audit.actors import Actor
from audit.events import AuditEvent, Outcome
from audit.services import Target, audit_record
from core.models import Organization
from core.secrets import secret_hash, secret_matches
from core.tenancy import org_scope_enter
from sso.models import Connection, Flow

BINDING_KEY = "iam_sso_binding"
FLOW_SECONDS = 600


@dataclass(frozen=True)
class Assertion:
    """What the IdP proved about the person, after the protocol layer verified it."""

    issuer: str  # the OIDC `iss`, or the SAML IdP's entity id
    subject: str  # the OIDC `sub`, or the SAML NameID
    email: str = ""
    email_verified: bool = False  # SAML: the IdP's assertion counts as verified
    display_name: str = ""
    groups: tuple = ()
    mfa_values: tuple = ()  # OIDC `amr` values and `acr`; SAML AuthnContextClassRef
    idp_session: str = ""  # OIDC `sid`, SAML SessionIndex
    claims: dict = field(default_factory=dict)  # shown by "test connection"; never secrets


class SsoRefused(Exception):
    """The IdP's answer, or the flow it claims to finish, is refused. `reason` is a stable code."""

    def __init__(self, reason: str, status: int = 400, detail: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.detail = detail or REASONS.get(reason, "Single sign-on could not be completed.")


REASONS = {
    "state_missing": "The sign-in request is missing its state. Start again from the sign-in page.",
    "state_invalid": "This sign-in link is not valid in this browser. Start again from the sign-in page.",
    "state_used": "This sign-in was already completed. Start again from the sign-in page.",
    "state_expired": "This sign-in took too long. Start again from the sign-in page.",
    "connection_disabled": "This sign-in method is switched off.",
    "account_inactive": "This account is deactivated.",
    "membership_inactive": "Your access to this organization is switched off.",
    "not_a_member": "You are not a member of this organization. Ask an administrator to add you.",
    "email_not_verified": "Your identity provider did not confirm this email address.",
    "account_not_linked": "An account with this email exists but is not linked to this identity "
                          "provider. Sign in with it and ask an administrator.",
    "domain_not_verified": "Your email domain is not verified for this organization.",
    "email_missing": "Your identity provider sent no email address.",
}


def connection_for(org_slug: str, connection_slug: str, protocol: str) -> Connection:
    """The enabled connection the URL names, with the org's scope entered; 404 otherwise."""
    org = Organization.objects.filter(slug=org_slug).first()
    if org is None:
        raise Http404
    org_scope_enter(org)
    connection = (Connection.objects.for_org(org).select_related("org")
                  .filter(slug=connection_slug, protocol=protocol, enabled=True).first())
    if connection is None:
        raise Http404
    return connection


# --- the flow ------------------------------------------------------------------------------


def _binding(request) -> str:
    value = request.session.get(BINDING_KEY)
    if not value:
        value = secrets.token_urlsafe(24)
        request.session[BINDING_KEY] = value
    return value


def _state_message(flow_id, connection_id, binding: str) -> str:
    return f"sso-state:{flow_id}:{connection_id}:{binding}"


def flow_start(request, connection, *, next_url: str = "", test: bool = False, nonce: str = "",
               verifier_sealed: str = "", request_id: str = "") -> tuple[Flow, str]:
    """A new flow bound to this browser session and connection. Returns it and its `state`."""
    binding = _binding(request)
    flow = Flow(org=connection.org, connection=connection, nonce=nonce, verifier_sealed=verifier_sealed,
                request_id=request_id, next_url=safe_local(request, next_url), test=test,
                started_by=request.user if test and request.user.is_authenticated else None,
                expires_at=timezone.now() + timedelta(seconds=flow_seconds()))
    mac, kid = secret_hash(_state_message(flow.id, connection.pk, binding))
    flow.state_hash = mac
    flow.session_hash = hashlib.sha256(binding.encode()).hexdigest()
    flow.save()
    audit_record(org=connection.org, actor=Actor.anonymous(), event=AuditEvent.SSO_LOGIN_STARTED,
                 target=Target.of(connection), data={"connection": connection.slug,
                                                     "protocol": connection.protocol})
    return flow, f"{flow.id.hex}.{kid}.{mac}"


def flow_seconds() -> int:
    return getattr(settings, "IAM_SSO_FLOW_SECONDS", FLOW_SECONDS)


def flow_peek(request, connection, state: str) -> Flow:
    """The flow this `state` names, checked (MAC, this browser, this connection, not spent, not
    expired) but not spent. Raises SsoRefused."""
    if not state:
        raise SsoRefused("state_missing")
    parts = state.split(".")
    if len(parts) != 3 or len(state) > 200:
        raise SsoRefused("state_invalid")
    flow_hex, kid, mac = parts
    binding = request.session.get(BINDING_KEY) or ""
    try:
        flow_id = _uuid(flow_hex)
    except ValueError:
        raise SsoRefused("state_invalid") from None
    if not binding or not secret_matches(_state_message(flow_id, connection.pk, binding), mac, kid):
        raise SsoRefused("state_invalid")
    flow = Flow.objects.for_org(connection.org).filter(pk=flow_id, connection=connection).first()
    if flow is None or not hmac.compare_digest(flow.state_hash, mac):
        raise SsoRefused("state_invalid")
    if flow.consumed_at is not None:
        raise SsoRefused("state_used")
    if flow.expires_at <= timezone.now():
        raise SsoRefused("state_expired")
    return flow


def flow_take(request, connection, state: str) -> Flow:
    """Check and spend the flow in one conditional UPDATE. Raises SsoRefused."""
    flow = flow_peek(request, connection, state)
    now = timezone.now()
    spent = (Flow.objects.for_org(connection.org)
             .filter(pk=flow.pk, consumed_at__isnull=True, expires_at__gt=now)
             .update(consumed_at=now))
    if not spent:
        raise SsoRefused("state_used")
    flow.consumed_at = now
    return flow


def _uuid(hex_value: str):
    import uuid

    if len(hex_value) != 32:
        raise ValueError(hex_value)
    return uuid.UUID(hex=hex_value)


def safe_local(request, target: str) -> str:
    """A local path to return to after sign-in, or "" (never another host: `//evil.com` too)."""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        if target.startswith("/") and not target.startswith("//") and "\\" not in target:
            return target
    return ""


# --- refusals ----------------------------------------------------------------------------------


def refuse(request, connection, exc: SsoRefused):
    """Audit the refusal in the connection's org and answer with a page that names no secret."""
    org = connection.org if connection is not None else None
    audit_record(org=org, actor=Actor.anonymous(), event=AuditEvent.SSO_LOGIN_REFUSED,
                 outcome=Outcome.DENIED,
                 target=Target.of(connection) if connection is not None else None,
                 data={"connection": connection.slug if connection is not None else "",
                       "protocol": connection.protocol if connection is not None else "",
                       "reason": exc.reason})
    return render(request, "sso/refused.html", {"detail": exc.detail, "reason": exc.reason},
                  status=exc.status)


# --- the person ----------------------------------------------------------------------------


@transaction.atomic
def sign_in(request, connection, flow: Flow, assertion: Assertion):
    """Finish a verified sign-in: link or provision the person, apply the MFA mandate, start the
    session and send them on (a test flow shows the claims instead). Returns the response. Raises
    SsoRefused (the caller answers with `refuse`)."""
    raise NotImplementedError
