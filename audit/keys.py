"""The audit key ring (`IAM_AUDIT_KEYS`): the keys that MAC the chain's entries and sign its checkpoints.

A ring entry is `kid:base64url key`; the first is current. Each yields two keys by HKDF-SHA256 under
distinct labels: an HMAC-SHA256 key for entry MACs (and verification marks) and an Ed25519 key pair
for checkpoints, so one secret per kid serves both without either use weakening the other (nor the
credential hashes, when the ring is the IAM_HMAC_KEYS one). The keys live in settings, never in the
database: whoever can write the database can recompute the chain's SHA-256 hashes, but neither the
MACs over them nor a checkpoint's signature. To rotate, put a new key first; entries and checkpoints
made under older kids verify as long as their key stays in the ring.
"""

import base64
import functools
import hashlib
import hmac

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

_MAC_LABEL = b"iam audit chain: entry mac v1"
_SIGNING_LABEL = b"iam audit chain: checkpoint ed25519 v1"
KID_MAX_LENGTH = 32  # AuditEntry.hash_kid


def current_kid() -> str:
    return next(iter(settings.IAM_AUDIT_KEYS))


def _derive(secret: bytes, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(secret)


@functools.lru_cache(maxsize=32)
def _mac_key(secret: bytes) -> bytes:
    return _derive(secret, _MAC_LABEL)


@functools.lru_cache(maxsize=32)
def _signing_key(secret: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_derive(secret, _SIGNING_LABEL))


def mac(kid: str, material: bytes) -> str | None:
    """HMAC-SHA256 of `material` under the ring's key `kid`, hex; None when the ring has no such kid."""
    secret = settings.IAM_AUDIT_KEYS.get(kid)
    if secret is None:
        return None
    return hmac.new(_mac_key(secret), material, hashlib.sha256).hexdigest()


def sign(kid: str, material: bytes) -> bytes:
    """An Ed25519 signature of `material` under the ring's key `kid`."""
    return _signing_key(settings.IAM_AUDIT_KEYS[kid]).sign(material)


def public_key(kid: str) -> Ed25519PublicKey | None:
    secret = settings.IAM_AUDIT_KEYS.get(kid)
    return None if secret is None else _signing_key(secret).public_key()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_jwks() -> dict:
    """Every checkpoint key of the ring as a JWK Set (RFC 8037 OKP keys), current first."""
    keys = []
    for kid in settings.IAM_AUDIT_KEYS:
        raw = public_key(kid).public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        keys.append({"kty": "OKP", "crv": "Ed25519", "x": b64url(raw), "kid": kid, "alg": "EdDSA",
                     "use": "sig"})
    return {"keys": keys}
