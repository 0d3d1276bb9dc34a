"""High-entropy credentials for non-human principals (API keys, agent secrets, SCIM tokens).

A credential reads `<prefix>_<lookup id>_<secret>`. The database keeps the lookup id and an
HMAC-SHA256 of the secret under a server key (`IAM_HMAC_KEYS`, rotatable: the key id is stored with
each hash). A stolen database therefore yields no usable credential, and because the secret has 256
bits of entropy a fast keyed hash is the right tool (Argon2 is for low-entropy human passwords).
"""

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

LOOKUP_ID_BYTES = 8
SECRET_BYTES = 32


@dataclass(frozen=True)
class MintedCredential:
    display: str  # shown to the user once, never stored
    lookup_id: str
    secret_hash: str
    hash_kid: str


def secret_hash(secret: str, kid: str | None = None) -> tuple[str, str]:
    kid = kid or settings.IAM_HMAC_CURRENT_KID
    digest = hmac.new(settings.IAM_HMAC_KEYS[kid], secret.encode(), hashlib.sha256).hexdigest()
    return digest, kid


def secret_matches(secret: str, stored_hash: str, kid: str) -> bool:
    """Constant-time comparison, so response timing reveals nothing about the stored hash."""
    if kid not in settings.IAM_HMAC_KEYS:
        return False
    candidate, _ = secret_hash(secret, kid)
    return hmac.compare_digest(candidate, stored_hash)


def credential_mint(prefix: str) -> MintedCredential:
    lookup_id = secrets.token_hex(LOOKUP_ID_BYTES)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    digest, kid = secret_hash(secret)
    return MintedCredential(f"{prefix}_{lookup_id}_{secret}", lookup_id, digest, kid)


def credential_parse(raw: str, prefix: str) -> tuple[str, str] | None:
    """Split a presented credential; None when it cannot be one of ours (no lookup is made)."""
    if not raw or len(raw) > 200:
        return None
    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] != prefix:
        return None
    _, lookup_id, secret = parts
    if len(lookup_id) != LOOKUP_ID_BYTES * 2 or not all(c in "0123456789abcdef" for c in lookup_id):
        return None
    return lookup_id, secret


def seal(plaintext: bytes, *, context: str) -> str:
    """Encrypt a secret for storage (AES-256-GCM under the current `IAM_ENCRYPTION_KEYS` key).

    `context` is bound as associated data, so a sealed value copied into another row or column
    (say, one org's signing key into another org's) fails to open. Returns `kid.nonce.ciphertext`.
    """
    kid = settings.IAM_ENCRYPTION_CURRENT_KID
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(settings.IAM_ENCRYPTION_KEYS[kid]).encrypt(nonce, plaintext, context.encode())
    return ".".join([kid, _b64(nonce), _b64(sealed)])


def unseal(value: str, *, context: str) -> bytes:
    kid, nonce, sealed = value.split(".")
    return AESGCM(settings.IAM_ENCRYPTION_KEYS[kid]).decrypt(_unb64(nonce), _unb64(sealed), context.encode())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def link_secret() -> tuple[str, str]:
    """A single-use emailed link's secret and what is stored of it: 32 random bytes, kept as their
    SHA-256 only (high entropy, so a fast unkeyed hash cannot be brute-forced; a leaked table
    yields no usable link). Password reset and invitation links use it."""
    raw = secrets.token_urlsafe(32)
    return raw, link_secret_hash(raw)


def link_secret_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()
