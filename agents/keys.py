"""Per-org token-signing keys: creation, rotation, the published JWKS, and in-process key caches.

Rotation follows the safe order: a new key is published (in the JWKS) `IAM_SIGNING_KEY_PUBLISH_LEAD`
before it signs, so resource servers that cache the JWKS already know it; the old key stops signing
when the new one activates and stays published until every token it signed has expired.

Parsing a PEM key costs far more than signing with it, so parsed keys are cached per process. The
caches hold only what the database says; a retired or unpublished key is re-read after at most
`CACHE_SECONDS`, and verification also checks the unpublish time it cached.
"""

import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agents.models import SigningKey
from agents.policy import agent_policy_for_org
from audit.actors import Actor
from audit.events import AuditEvent
from audit.services import audit_record
from core.models import Organization
from core.secrets import seal, unseal

ALGORITHMS = ("ES256", "EdDSA", "RS256")  # the allow-list; the org policy picks one
CACHE_SECONDS = 30
MAX_TOKEN_SECONDS = 3600  # the policy's upper bound for token lifetimes


def key_generate(alg: str):
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    raise ValueError(f"unsupported signing algorithm {alg}")


def _public_jwk(alg: str, private_key, kid: str) -> dict:
    algorithm = jwt.get_algorithm_by_name(alg)
    jwk = algorithm.to_jwk(private_key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


def _context(org_id, kid: str) -> str:
    return f"signing-key:{org_id}:{kid}"


@transaction.atomic
def signing_key_create(*, org, alg: str, activates_at: datetime | None = None) -> SigningKey:
    kid = secrets.token_urlsafe(12)
    private_key = key_generate(alg)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key = SigningKey.objects.create(
        org_id=org.pk, kid=kid, alg=alg, private_key=seal(pem, context=_context(org.pk, kid)),
        public_jwk=_public_jwk(alg, private_key, kid), activates_at=activates_at or timezone.now(),
    )
    audit_record(org=org, actor=Actor.system("signing keys"), event=AuditEvent.SIGNING_KEY_CREATED,
                 data={"kid": kid, "alg": alg, "activates_at": key.activates_at})
    return key


@transaction.atomic
def signing_key_rotate(*, org, alg: str, lead: timedelta | None = None) -> SigningKey:
    """Publish a new key now; it starts signing after `lead`, when the current keys retire."""
    lead = timedelta(seconds=settings.IAM_SIGNING_KEY_PUBLISH_LEAD_SECONDS) if lead is None else lead
    new = signing_key_create(org=org, alg=alg, activates_at=timezone.now() + lead)
    current = SigningKey.objects.for_org(org).select_for_update().filter(retired_at__isnull=True).exclude(
        kid=new.kid)
    for key in current:
        key.retired_at = new.activates_at
        key.unpublish_at = new.activates_at + timedelta(seconds=MAX_TOKEN_SECONDS + 60)
        key.save(update_fields=["retired_at", "unpublish_at"])
        audit_record(org=org, actor=Actor.system("signing keys"), event=AuditEvent.SIGNING_KEY_RETIRED,
                     data={"kid": key.kid, "unpublish_at": key.unpublish_at})
    return new


def _signing_now(org_id, alg: str):
    now = timezone.now()
    return (SigningKey.objects.for_org(org_id).filter(alg=alg, activates_at__lte=now)
            .exclude(retired_at__lte=now).order_by("-activates_at").first())


@transaction.atomic
def signing_key_first(*, org, alg: str) -> SigningKey:
    """The org's signing key for `alg`, made now if it has none. The org row is locked first, so two
    first token requests running at once make one key between them, not two. FOR NO KEY UPDATE, not
    FOR UPDATE: audit appends of the same org running meanwhile take FOR KEY SHARE on the org row
    (their foreign key) while holding the chain head this one's audit entry then waits for; a full
    row lock would deadlock with them."""
    Organization.objects.select_for_update(no_key=True).filter(pk=org.pk).exists()
    return _signing_now(org.pk, alg) or signing_key_create(org=org, alg=alg)


def signing_keys_rotate_due(*, now=None) -> int:
    """Rotate each org's signing key once it is older than IAM_SIGNING_KEY_ROTATE_DAYS (a system job
    over every org). Returns how many orgs got a new key."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.IAM_SIGNING_KEY_ROTATE_DAYS)
    stale = (SigningKey.objects.unscoped()  # a system job over every org
             .filter(retired_at__isnull=True, activates_at__lte=cutoff).values_list("org_id", flat=True))
    rotated = 0
    for org in Organization.objects.filter(pk__in=set(stale)).order_by("pk"):
        signing_key_rotate(org=org, alg=agent_policy_for_org(org).token_alg)
        rotated += 1
    return rotated


def published_keys(org) -> list[dict]:
    now = timezone.now()
    keys = SigningKey.objects.for_org(org).filter(created_at__lte=now).exclude(unpublish_at__lte=now)
    return [k.public_jwk for k in keys.order_by("-activates_at")]


@dataclass(frozen=True)
class Signer:
    kid: str
    alg: str
    key: object
    fetched: float


@dataclass(frozen=True)
class Verifier:
    org_id: object
    org_slug: str
    alg: str
    key: object
    unpublish_at: float | None
    fetched: float


_signers: dict = {}
_verifiers: dict = {}


def signer_for(org, alg: str) -> Signer:
    """The org's current signing key (created on first use), parsed once per process."""
    cached = _signers.get(org.pk)
    if cached and cached.alg == alg and time.monotonic() - cached.fetched < CACHE_SECONDS:
        return cached
    key = _signing_now(org.pk, alg)
    if key is None:
        key = signing_key_first(org=org, alg=alg)
    pem = unseal(key.private_key, context=_context(org.pk, key.kid))
    signer = Signer(key.kid, key.alg, serialization.load_pem_private_key(pem, password=None),
                    time.monotonic())
    _signers[org.pk] = signer
    return signer


def verifier_for(kid: str) -> Verifier | None:
    cached = _verifiers.get(kid)
    if cached and time.monotonic() - cached.fetched < CACHE_SECONDS:
        return cached
    key = SigningKey.objects.unscoped().select_related("org").filter(kid=kid).first()  # the kid names its org
    if key is None:
        _verifiers.pop(kid, None)
        return None
    algorithm = jwt.get_algorithm_by_name(key.alg)
    verifier = Verifier(key.org_id, key.org.slug, key.alg, algorithm.from_jwk(key.public_jwk),
                        key.unpublish_at.timestamp() if key.unpublish_at else None, time.monotonic())
    _verifiers[kid] = verifier
    return verifier


def caches_clear() -> None:
    """For tests and key rotation commands: forget parsed keys in this process."""
    _signers.clear()
    _verifiers.clear()
