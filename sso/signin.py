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
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme, urlencode

from accounts import login_flow, mfa
from accounts.policy import policy_for_org
from audit.actors import Actor
from audit.events import AuditEvent, Outcome
from audit.services import Target, audit_record
from core.models import Organization
from core.ratelimit import counters_incr
from core.secrets import secret_hash, secret_matches
from core.tenancy import org_scope_enter
from sso import people
from sso.models import Connection, Flow, Identity, IdpSession
from sso.outcomes import REASONS, Assertion, SsoRefused  # noqa: F401  (the protocols' interface)

BINDING_KEY = "iam_sso_binding"
FRESH_SKEW_SECONDS = 60
FLOW_SECONDS = 600


def connection_for(
    org_slug: str, connection_slug: str, protocol: str, *, disabled_too: bool = False
) -> Connection:
    """The enabled connection the URL names, with the org's scope entered; 404 otherwise.
    `disabled_too`: a switched-off connection's IdP may still end the sessions it started."""
    org = Organization.objects.filter(slug=org_slug).first()
    if org is None:
        raise Http404
    org_scope_enter(org)
    connection = (
        Connection.objects.for_org(org)
        .select_related("org")
        .filter(slug=connection_slug, protocol=protocol)
        .filter(**({} if disabled_too else {"enabled": True}))
        .first()
    )
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


def flow_start(
    request,
    connection,
    *,
    next_url: str = "",
    test: bool = False,
    nonce: str = "",
    verifier_sealed: str = "",
    request_id: str = "",
    reauth: bool = False,
) -> tuple[Flow, str]:
    """A new flow bound to this browser session and connection. Returns it and its `state`."""
    _throttle(request, connection)
    binding = _binding(request)
    flow = Flow(
        org=connection.org,
        connection=connection,
        nonce=nonce,
        verifier_sealed=verifier_sealed,
        request_id=request_id,
        next_url=safe_local(request, next_url),
        test=test,
        reauth=reauth,
        started_by=request.user if (test or reauth) and request.user.is_authenticated else None,
        expires_at=timezone.now() + timedelta(seconds=flow_seconds()),
    )
    mac, kid = secret_hash(_state_message(flow.id, connection.pk, binding))
    flow.state_hash = mac
    flow.session_hash = hashlib.sha256(binding.encode()).hexdigest()
    flow.save()
    audit_record(
        org=connection.org,
        actor=Actor.anonymous(),
        event=AuditEvent.SSO_LOGIN_STARTED,
        target=Target.of(connection),
        data={"connection": connection.slug, "protocol": connection.protocol},
    )
    return flow, f"{flow.id.hex}.{kid}.{mac}"


def _throttle(request, connection) -> None:
    """Each start writes a row and an audit entry: at most IAM_SSO_START_IP_LIMIT a minute per client
    IP, the first refusal of a minute on record. A lost counter store lets starts through (this
    limits load; it guards nothing)."""
    limit = getattr(settings, "IAM_SSO_START_IP_LIMIT", 60)
    try:
        (count,) = counters_incr([f"sso:start:{request.audit_context.ip or 'unknown'}"], 60)
    except Exception:  # noqa: BLE001 (the cache is down: no limit rather than no sign-in)
        return
    if count > limit:
        first = count == limit + 1
        if first:
            audit_record(
                org=connection.org,
                actor=Actor.anonymous(),
                event=AuditEvent.SSO_LOGIN_REFUSED,
                outcome=Outcome.DENIED,
                target=Target.of(connection),
                data={
                    "connection": connection.slug,
                    "protocol": connection.protocol,
                    "reason": "rate_limited",
                },
            )
        raise SsoRefused("rate_limited", 429, audited=True, retry_after=60)


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
    spent = (
        Flow.objects.for_org(connection.org)
        .filter(pk=flow.pk, consumed_at__isnull=True, expires_at__gt=now)
        .update(consumed_at=now)
    )
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
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        if target.startswith("/") and not target.startswith("//") and "\\" not in target:
            return target
    return ""


# --- refusals ----------------------------------------------------------------------------------


def refuse(request, connection, exc: SsoRefused):
    """Audit the refusal in the connection's org and answer with a page that names no secret."""
    if exc.audited:
        response = render(
            request, "sso/refused.html", {"detail": exc.detail, "reason": exc.reason}, status=exc.status
        )
        if exc.retry_after:
            response["Retry-After"] = str(exc.retry_after)
        return response
    org = connection.org if connection is not None else None
    audit_record(
        org=org,
        actor=Actor.anonymous(),
        event=AuditEvent.SSO_LOGIN_REFUSED,
        outcome=Outcome.DENIED,
        target=Target.of(connection) if connection is not None else None,
        data={
            "connection": connection.slug if connection is not None else "",
            "protocol": connection.protocol if connection is not None else "",
            "reason": exc.reason,
        },
    )
    return render(
        request, "sso/refused.html", {"detail": exc.detail, "reason": exc.reason}, status=exc.status
    )


# --- the person ----------------------------------------------------------------------------


PENDING_SSO_KEY = "iam_sso_login"  # which identity and IdP session the login in progress is for


def sign_in(request, connection, flow: Flow | None, assertion: Assertion):
    """Finish a verified sign-in: link or provision the person, apply the MFA mandate, start the
    session and send them on (a test flow shows the claims instead). Returns the response. Raises
    SsoRefused (the caller answers with `refuse`). `flow` is None for an IdP-initiated login."""
    if flow is not None and flow.test:
        return _test_result(request, connection, flow, assertion)
    if flow is not None and flow.reauth:
        return _reauthenticated(request, connection, flow, assertion)
    with transaction.atomic():
        user, identity, linked = people.person_for(connection, assertion)
    org = connection.org
    proven = sorted(set(assertion.mfa_values) & set(connection.accepted_mfa or []))
    request.session[PENDING_SSO_KEY] = {
        "identity": str(identity.pk),
        "idp_session": assertion.idp_session,
        "connection": str(connection.pk),
    }
    audit_record(
        org=org,
        actor=Actor.for_user(user),
        event=AuditEvent.SSO_LOGIN_ACCEPTED,
        target=Target.of(connection),
        data={
            "connection": connection.slug,
            "protocol": connection.protocol,
            "subject": assertion.subject[:200],
            "linked": linked,
            "mfa": bool(proven),
        },
    )
    next_url = flow.next_url if flow is not None else ""
    if not proven and policy_for_org(org).mfa_required:
        if mfa.has_second_factor(user):
            # Our own second factor, right after the callback: the session stays anonymous until then.
            audit_record(
                org=org,
                actor=Actor.for_user(user),
                event=AuditEvent.SSO_MFA_STEP_UP,
                target=Target.of(connection),
                data={"connection": connection.slug, "reason": "not_proven_by_idp"},
            )
            login_flow.pending_start(request, user, method="sso", sso_org=org.pk)
            return redirect(_with_next(reverse("accounts:mfa-verify"), next_url))
        # No factor yet: signed in, and the org's mandate sends every request to enrolment first.
        audit_record(
            org=org,
            actor=Actor.for_user(user),
            event=AuditEvent.SSO_MFA_STEP_UP,
            target=Target.of(connection),
            data={"connection": connection.slug, "reason": "enrolment"},
        )
    login_flow.complete_login(
        request, user, method="sso", mfa_method="idp" if proven else None, sso_org=org.pk
    )
    return redirect(next_url or reverse("accounts:home"))


def _with_next(url: str, next_url: str) -> str:
    return url + (f"?{urlencode({'next': next_url})}" if next_url else "")


def record_idp_session(request, user, method: str) -> None:
    """After any completed login (also after a second factor asked for an SSO login): remember
    which IdP session created this session, for back-channel logout."""
    pending = request.session.pop(PENDING_SSO_KEY, None)
    if not pending or method != "sso":
        return
    identity = (
        Identity.objects.unscoped()  # the login is not inside any org's scope yet
        .filter(pk=pending["identity"], user=user)
        .first()
    )
    if identity is None:
        return
    now = timezone.now()
    Identity.objects.unscoped().filter(pk=identity.pk).update(last_login_at=now)
    IdpSession.objects.create(
        org_id=identity.org_id,
        identity=identity,
        idp_session=pending["idp_session"][:255],
        session_key_hash=_key_hash(request.session.session_key),
    )


def _key_hash(session_key: str | None) -> str:
    return hashlib.sha256((session_key or "").encode()).hexdigest()


def idp_sessions_end(connection, *, subject: str = "", idp_session: str = "") -> int:
    """Back-channel logout: end our sessions that this IdP session (or, without one, every session
    of this subject at the IdP) created. Returns how many ended."""
    rows = IdpSession.objects.for_org(connection.org).filter(identity__connection=connection)
    if idp_session:
        rows = rows.filter(idp_session=idp_session)
        if subject:
            rows = rows.filter(identity__subject=subject)
    elif subject:
        rows = rows.filter(identity__subject=subject)
    else:
        return 0
    ended = 0
    for user_id, hashes in _by_user(rows):
        ended += people.sessions_end(connection=connection, user_id=user_id, key_hashes=hashes)
    rows.delete()
    audit_record(
        org=connection.org,
        actor=Actor.system(f"idp:{connection.slug}"),
        event=AuditEvent.SSO_LOGOUT,
        target=Target.of(connection),
        data={"connection": connection.slug, "sessions": ended, "reason": "backchannel"},
    )
    return ended


def _by_user(rows):
    grouped: dict = {}
    for user_id, key_hash in rows.values_list("identity__user_id", "session_key_hash"):
        grouped.setdefault(user_id, set()).add(key_hash)
    return grouped.items()


def _reauthenticated(request, connection, flow: Flow, assertion: Assertion):
    """The person already signed in proved themselves again at their IdP: their re-authentication
    (and, when the IdP proved a second factor the connection accepts, their second factor) is fresh.
    Only for the identity linked to this very person; the session gets a new key."""
    user = request.user
    identity = (
        Identity.objects.for_org(connection.org)
        .filter(issuer=assertion.issuer, subject=assertion.subject)
        .first()
    )
    if (
        not user.is_authenticated
        or user.pk != flow.started_by_id
        or identity is None
        or identity.user_id != user.pk
    ):
        raise SsoRefused("reauth_other_person", 403)
    # We asked the IdP to authenticate afresh (OIDC prompt=login and max_age=0, SAML ForceAuthn);
    # an IdP may ignore the request, so only an authentication after the flow started counts.
    fresh_since = flow.created_at.timestamp() - FRESH_SKEW_SECONDS
    if assertion.authenticated_at is None or assertion.authenticated_at < fresh_since:
        raise SsoRefused("reauth_not_fresh", 403)
    proven = bool(set(assertion.mfa_values) & set(connection.accepted_mfa or []))
    login_flow.reauth_by_idp(request, mfa=proven, sso_org=connection.org_id)
    return redirect(flow.next_url or reverse("accounts:home"))


def _test_result(request, connection, flow: Flow, assertion: Assertion):
    """ "Test connection": the round trip ran; show what the IdP sent, sign nobody in."""
    if not request.user.is_authenticated or request.user.pk != flow.started_by_id:
        raise SsoRefused("state_invalid")
    audit_record(
        org=connection.org,
        actor=Actor.for_user(request.user),
        event=AuditEvent.SSO_CONNECTION_TESTED,
        target=Target.of(connection),
        data={"connection": connection.slug, "reason": "ok", "claims": sorted(assertion.claims)[:50]},
    )
    context = {
        "connection": connection,
        "org": connection.org,
        "assertion": assertion,
        "claims": sorted(assertion.claims.items()),
        "mfa_proven": sorted(set(assertion.mfa_values) & set(connection.accepted_mfa or [])),
        **_org_page_context(request, connection.org),
    }
    return render(request, "sso/test_result.html", context)


def _org_page_context(request, org) -> dict:
    """What the org pages' side navigation asks (`can`, `user_orgs`), for the one org page this
    module renders; the person's access is resolved as for any org page."""
    from accounts.selectors import orgs_for_user
    from core.permissions import Perm
    from rbac.guard import SessionPolicyDenied, access_for_request

    try:
        access = access_for_request(request, org.slug)
    except SessionPolicyDenied:
        access = None
    can = {perm.name.lower(): access is not None and access.has(perm) for perm in Perm}
    return {"access": access, "can": can, "user_orgs": orgs_for_user(request.user)}
