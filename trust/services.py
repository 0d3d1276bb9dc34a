"""Effects on trust: the org's trust policy, its trust roots, attestations and signals. Each takes
the `actor` it acts for and audits inside its transaction; refusals are audited after the rollback.

An attestation is a compact JWS whose header `kid` names a key of one of the org's registered roots;
it is verified against that key only (keys inside the statement, `jwk`/`jku`/`x5u`/`x5c`, are never
used: a statement carrying one is refused), with an allow-listed algorithm, and must be about the
agent it is posted for (`sub: agent:<id>`), with a `type`, an integer `weight` in -50..50, `iat` and
`exp`. It counts until `exp` by its timestamp; no worker has to remove it. A registered key is a
public signing key: not symmetric (`kty: oct`), `use` "sig" when it says, and when it names an `alg`
(one of ATTESTATION_ALGORITHMS) a statement must be signed with that one. A statement recorded
already (the same compact JWS, or the same `jti` from the same root) is a conflict, on record.

Signals come from two places. A downstream service reports one of the four public types
(SignalType) about an agent that calls it: `signal_record` itself refuses another org's agent or one
that does not hold the connection's audience, and keeps the refusal on record. The product records
what it observes at the token endpoint (`product_signal_record`): the kinds in PRODUCT_SIGNAL_KINDS,
which no connection may report. They are kept as TrustSignal rows with no connection; they are not
SignalType choices, because changing a field's choices is a migration (trust.models is not ours to
change), and nothing in the database enforces choices.
"""

import hashlib
from datetime import UTC, datetime

import jwt
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.actors import Actor
from audit.events import AuditEvent, Outcome
from audit.services import Target, audit_record, records_denials
from core.errors import Conflict, DenialAudit, Invalid, NotFound
from core.org_settings import settings_apply
from trust.models import Attestation, Severity, SignalType, TrustPolicy, TrustRoot, TrustSignal

TRUST_POLICY_FIELDS = (
    "org_floor",
    "weight_identity",
    "weight_behaviour",
    "weight_compliance",
    "weight_attestations",
    "signal_half_life_seconds",
    "secret_max_age_days",
    "required_attestations",
    "separation_of_duties",
    "approval_ttl_seconds",
)
ATTESTATION_ALGORITHMS = ("ES256", "ES384", "EdDSA", "RS256", "PS256")
EMBEDDED_KEY_HEADERS = ("jwk", "jku", "x5u", "x5c")
PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")
MAX_ATTESTATION_CHARS = 16_000
MAX_ROOT_KEYS = 20
# What the product observes about an agent (agents.signals names them), with the severity kept on
# the row; trust.scoring weighs each kind itself.
AUTHENTICATION_FAILURE = "authentication_failure"
UNEXPECTED_NETWORK = "unexpected_network"
SCOPE_REFUSED = "scope_refused"
AUDIENCE_REFUSED = "audience_refused"
PRODUCT_SIGNAL_KINDS = {
    AUTHENTICATION_FAILURE: Severity.LOW,
    UNEXPECTED_NETWORK: Severity.MEDIUM,
    SCOPE_REFUSED: Severity.LOW,
    AUDIENCE_REFUSED: Severity.LOW,
}
IDENTITY_SIGNAL_KINDS = (AUTHENTICATION_FAILURE, UNEXPECTED_NETWORK)
MAX_SIGNAL_DETAIL = 200


def trust_policy_for_org(org) -> TrustPolicy:
    """The org's row, or the defaults when nobody has changed them."""
    try:
        return org.trust_policy
    except TrustPolicy.DoesNotExist:
        return TrustPolicy(org=org)


@records_denials
@transaction.atomic
def trust_policy_set(*, org, actor: Actor, **changes) -> TrustPolicy:
    required = changes.get("required_attestations")
    if required is not None:
        if not isinstance(required, list) or not all(
            isinstance(t, str) and 0 < len(t) <= 100 for t in required
        ):
            message = "A list of attestation types (text, at most 100 characters each)."
            raise Invalid(message, fields={"required_attestations": [message]})
        changes["required_attestations"] = sorted(set(required))
    policy = TrustPolicy.objects.for_org(org).select_for_update().first() or TrustPolicy(org=org)
    # Before the row's own validation, whose check of the same constraint names no field.
    if not any(changes.get(f, getattr(policy, f)) for f in TRUST_POLICY_FIELDS if f.startswith("weight_")):
        raise Invalid(
            "At least one component must weigh something.",
            fields={"weight_identity": ["All weights are zero."]},
        )
    changed = settings_apply(policy, changes, TRUST_POLICY_FIELDS)
    audit_record(
        org=org,
        actor=actor,
        event=AuditEvent.POLICY_CHANGED,
        target=Target.of(org),
        data={"fields": sorted(changed), "previous": changed},
    )
    return policy


# Trust roots ----------------------------------------------------------------------------------


def _public_keys(jwks) -> list[dict]:
    """The root's keys, each public, with a `kid`, and readable by PyJWT; else Invalid."""
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or not 0 < len(keys) <= MAX_ROOT_KEYS:
        raise Invalid(
            'Give a JWK set: {"keys": [...]} with 1 to 20 public keys.',
            fields={"jwks": ["A JWK set with 1 to 20 keys."]},
        )
    kids = []
    for key in keys:
        if not isinstance(key, dict) or not isinstance(key.get("kid"), str) or not key["kid"]:
            raise Invalid("Every key needs a kid.", fields={"jwks": ["Every key needs a kid."]})
        if key.get("kty") == "oct":
            raise Invalid(
                "A trust root signs with a public key pair; a shared secret cannot be one.",
                fields={"jwks": [f"Key {key['kid']} is symmetric (kty oct)."]},
            )
        if any(member in key for member in PRIVATE_JWK_MEMBERS):
            raise Invalid(
                "Register public keys only; never send a private key.",
                fields={"jwks": [f"Key {key['kid']} is private."]},
            )
        if "use" in key and key["use"] != "sig":
            raise Invalid(
                "A trust root's keys are signing keys.",
                fields={"jwks": [f"Key {key['kid']} is not a signing key (use must be sig)."]},
            )
        if "alg" in key and key["alg"] not in ATTESTATION_ALGORITHMS:
            raise Invalid(
                "That signature algorithm is not accepted.",
                fields={"jwks": [f"Key {key['kid']}: algorithm not accepted (one of "
                                 + ", ".join(ATTESTATION_ALGORITHMS) + ")."]},
            )
        try:
            jwt.PyJWK.from_dict(key)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            raise Invalid(
                "A key could not be read.", fields={"jwks": [f"Key {key['kid']} is not a usable JWK."]}
            )
        kids.append(key["kid"])
    if len(set(kids)) != len(kids):
        raise Invalid("Key ids must be unique.", fields={"jwks": ["Duplicate kid."]})
    return keys


@records_denials
@transaction.atomic
def trust_root_create(*, org, name: str, jwks, actor: Actor, created_by=None) -> TrustRoot:
    keys = _public_keys(jwks)
    kids = [k["kid"] for k in keys]
    taken = {
        kid
        for root in TrustRoot.objects.for_org(org).select_for_update()
        for kid in (k.get("kid") for k in root.jwks.get("keys", []))
    }
    if taken & set(kids):
        raise Conflict(
            "Another trust root of this organization already uses a key id.",
            code="duplicate",
            fields={"jwks": [f"kid {k} is taken." for k in sorted(taken & set(kids))]},
        )
    if TrustRoot.objects.for_org(org).filter(name=name).exists():
        raise Conflict("A trust root with this name exists.", code="duplicate", fields={"name": ["Taken."]})
    root = TrustRoot.objects.create(org=org, name=name, jwks={"keys": keys}, created_by=created_by)
    audit_record(
        org=org,
        actor=actor,
        event=AuditEvent.TRUST_ROOT_ADDED,
        target=Target.of(root),
        data={"name": name, "kids": kids},
    )
    return root


@transaction.atomic
def trust_root_delete(*, root: TrustRoot, actor: Actor) -> None:
    """Remove a root: the attestations it signed stop counting at once (they are deleted with it)."""
    org, target, name = root.org, Target.of(root), root.name
    count = root.attestations.count()
    root.delete()
    audit_record(
        org=org,
        actor=actor,
        event=AuditEvent.TRUST_ROOT_REMOVED,
        target=target,
        data={"name": name, "attestations": count},
    )


# Attestations ---------------------------------------------------------------------------------


class AttestationRefused(Invalid):
    code = "invalid_attestation"


def _rejection(agent, actor, reason: str) -> DenialAudit:
    return DenialAudit(
        org=agent.org,
        actor=actor,
        event=AuditEvent.ATTESTATION_REJECTED,
        target=Target.of(agent),
        data={"agent": str(agent.pk), "reason": reason},
    )


def _refused(agent, actor, reason: str, message: str) -> AttestationRefused:
    return AttestationRefused(message, fields={"attestation": [message]},
                              audit=_rejection(agent, actor, reason))


def _duplicate(agent, actor) -> Conflict:
    return Conflict("This attestation was recorded already.", code="duplicate",
                    audit=_rejection(agent, actor, "duplicate"))


def _header(compact: str) -> dict:
    try:
        header = jwt.get_unverified_header(compact)
    except jwt.PyJWTError:
        return {}
    return header if isinstance(header, dict) else {}


def _root_key(org, kid: str):
    """(root, key) of the org whose set has this kid, or (None, None). One query."""
    for root in TrustRoot.objects.for_org(org).order_by("created_at"):
        for key in root.jwks.get("keys", []):
            if key.get("kid") == kid:
                return root, key
    return None, None


def _time(value) -> datetime:
    return datetime.fromtimestamp(value, tz=UTC)


@records_denials
@transaction.atomic
def attestation_add(*, agent, compact: str, actor: Actor) -> Attestation:
    """Verify and record a statement about `agent` (see the module's docstring)."""
    org = agent.org
    if (
        not isinstance(compact, str)
        or not compact
        or len(compact) > MAX_ATTESTATION_CHARS
        or compact.count(".") != 2
    ):
        raise _refused(agent, actor, "malformed", "Send the attestation as a compact JWS.")
    header = _header(compact)
    if not header:
        raise _refused(agent, actor, "malformed", "Send the attestation as a compact JWS.")
    if any(name in header for name in EMBEDDED_KEY_HEADERS):
        raise _refused(
            agent,
            actor,
            "embedded_key",
            "Attestations are verified against registered roots only; remove the embedded key.",
        )
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ATTESTATION_ALGORITHMS:
        raise _refused(agent, actor, "algorithm_not_allowed", "That signature algorithm is not accepted.")
    root, key = _root_key(org, kid) if isinstance(kid, str) and kid else (None, None)
    if root is None:
        raise _refused(agent, actor, "unknown_key", "No registered trust root has that key.")
    # Rows registered before these were checked at registration are held to them here too.
    if key.get("kty") == "oct" or ("use" in key and key["use"] != "sig"):
        raise _refused(agent, actor, "key_not_for_signing", "That key is not a signing key.")
    if "alg" in key and key["alg"] != alg:
        raise _refused(agent, actor, "wrong_key_algorithm", "The key is for another signature algorithm.")
    try:
        jwk = jwt.PyJWK.from_dict(key)
        claims = jwt.decode(
            compact,
            jwk.key,
            algorithms=[alg],
            options={"require": ["sub", "iat", "exp"], "verify_aud": False},
            leeway=settings.IAM_CLOCK_SKEW_SECONDS,
        )
    except jwt.ExpiredSignatureError:
        raise _refused(agent, actor, "expired", "The attestation has expired.")
    except jwt.ImmatureSignatureError:
        raise _refused(agent, actor, "not_yet_valid", "The attestation is not valid yet.")
    except (jwt.PyJWTError, ValueError, TypeError):
        raise _refused(
            agent, actor, "bad_signature", "The signature does not verify against the registered key."
        )
    weight, kind = claims.get("weight"), claims.get("type")
    if claims.get("sub") != agent.subject:
        raise _refused(agent, actor, "wrong_subject", "The attestation is about another agent.")
    if not isinstance(kind, str) or not 0 < len(kind) <= 100:
        raise _refused(agent, actor, "missing_type", "The attestation needs a type.")
    if isinstance(weight, bool) or not isinstance(weight, int) or not -50 <= weight <= 50:
        raise _refused(agent, actor, "bad_weight", "The weight must be a whole number between -50 and 50.")
    if not isinstance(claims["iat"], int | float) or not isinstance(claims["exp"], int | float):
        raise _refused(agent, actor, "malformed", "iat and exp must be times.")
    jti = claims.get("jti") if isinstance(claims.get("jti"), str) else ""
    digest = hashlib.sha256(compact.encode()).hexdigest()
    if jti and Attestation.objects.for_org(org).filter(root=root, jti=jti[:200]).exists():
        raise _duplicate(agent, actor)
    try:
        with transaction.atomic():
            attestation = Attestation.objects.create(
                org=org,
                agent=agent,
                root=root,
                kid=kid,
                type=kind,
                weight=weight,
                jti=jti[:200],
                issued_at=_time(claims["iat"]),
                expires_at=_time(claims["exp"]),
                digest=digest,
            )
    except IntegrityError:
        raise _duplicate(agent, actor)
    audit_record(
        org=org,
        actor=actor,
        event=AuditEvent.ATTESTATION_ADDED,
        target=Target.of(agent),
        data={
            "agent": str(agent.pk),
            "root": str(root.pk),
            "kid": kid,
            "type": kind,
            "weight": weight,
            "expires_at": attestation.expires_at.isoformat(),
        },
    )
    return attestation


# Signals --------------------------------------------------------------------------------------


class SignalRefused(NotFound):
    """The connection may not speak of this agent: alike whether the agent is another org's or
    does not call the service, so the answer says nothing about agents elsewhere."""

    code = "unknown_agent"


def _signal_denial(connection, actor: Actor, reason: str) -> DenialAudit:
    return DenialAudit(
        org=connection.org,
        actor=actor,
        event=AuditEvent.SIGNAL_REJECTED,
        target=Target.of(connection),
        data={"reason": reason, "connection": str(connection.pk)},
    )


@records_denials
@transaction.atomic
def signal_record(*, agent, connection, type: str, severity: str, actor: Actor) -> TrustSignal:
    """A downstream service reports what it saw the agent do. It speaks only of agents that call
    it: the agent must be of the connection's org and hold the connection's audience; and it
    reports only the public types (never what the product observes itself). Refusals are on
    record in the connection's org."""
    if agent.org_id != connection.org_id:
        raise SignalRefused("No agent with that client id calls this service.",
                            audit=_signal_denial(connection, actor, "other_org"))
    if connection.audience not in (agent.audiences or []):
        raise SignalRefused("No agent with that client id calls this service.",
                            audit=_signal_denial(connection, actor, "not_an_audience"))
    if type not in SignalType.values or severity not in Severity.values:
        raise Invalid("Unknown signal type or severity.", fields={"type": ["Not a reportable signal."]},
                      audit=_signal_denial(connection, actor, "unknown_type"))
    signal = TrustSignal.objects.create(
        org=agent.org, agent=agent, connection=connection, type=type, severity=severity, at=timezone.now()
    )
    audit_record(
        org=agent.org,
        actor=actor,
        event=AuditEvent.SIGNAL_RECEIVED,
        target=Target.of(agent),
        data={"agent": str(agent.pk), "type": type, "severity": severity, "connection": str(connection.pk)},
    )
    return signal


def signal_rejected(*, org, connection, reason: str, actor: Actor) -> None:
    audit_record(
        org=org,
        actor=actor,
        event=AuditEvent.SIGNAL_REJECTED,
        outcome=Outcome.DENIED,
        target=Target.of(connection),
        data={"reason": reason, "connection": str(connection.pk)},
    )


@transaction.atomic
def product_signal_record(*, agent, kind: str, detail: str = "") -> TrustSignal:
    """What the product observed about the agent (a failed authentication, a token request from
    outside its networks, a refused scope or audience), kept for its score (trust.scoring).

    Not audited here: the observation is the caller's event, on record where it happened.
    `detail` (a reason code, an address; never a secret) is checked but not kept: TrustSignal has
    no column for it."""
    if kind not in PRODUCT_SIGNAL_KINDS:
        raise Invalid("Not something the product observes.", fields={"kind": [f"Unknown kind {kind!r}."]})
    if not isinstance(detail, str) or len(detail) > MAX_SIGNAL_DETAIL or "\x00" in detail:
        raise Invalid("A short text detail.", fields={"detail": ["At most 200 characters, no NUL."]})
    return TrustSignal.objects.create(
        org_id=agent.org_id, agent=agent, connection=None, type=kind, severity=PRODUCT_SIGNAL_KINDS[kind],
        at=timezone.now(),
    )
