"""Capability tokens: RFC 9068 JWT access tokens, and the one verification path.

Our own API, the introspection endpoint and (through introspection) resource servers all verify
with `token_verify`: a fixed algorithm allow-list, `typ: at+jwt`, a key we published (found by
`kid`, never from the token's own `jwk`/`jku`/`x5u` headers), `iss`, `aud`, `exp`/`nbf`/`iat`
with a small skew, required claims, then revocation in the fast store.
"""

import time
import uuid
from dataclasses import dataclass

import jwt
from django.conf import settings

from agents import revocation
from agents.keys import ALGORITHMS, signer_for, verifier_for

REQUIRED_CLAIMS = ["iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope", "org"]


class TokenInvalid(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def issuer_for(org_slug: str) -> str:
    return f"{settings.IAM_CANONICAL_ORIGIN.rstrip('/')}/oauth/{org_slug}"


@dataclass(frozen=True)
class IssuedToken:
    token: str
    claims: dict
    expires_in: int


def token_sign(*, org, alg: str, agent, audience: str, scope: str, ttl: int, run=None,
               credential_id=None, act: dict | None = None) -> IssuedToken:
    now = int(time.time())
    claims = {
        "iss": issuer_for(org.slug),
        "sub": agent.subject,
        "aud": audience,
        "exp": now + ttl,
        "iat": now,
        "nbf": now,
        "jti": uuid.uuid4().hex,
        "client_id": agent.client_id,
        "scope": scope,
        "org": org.slug,
    }
    if run is not None:
        claims["run"] = str(run.pk)
    if credential_id is not None:
        claims["cred"] = str(credential_id)
    if act:
        claims["act"] = act
    signer = signer_for(org, alg)
    token = jwt.encode(claims, signer.key, algorithm=signer.alg, headers={"kid": signer.kid, "typ": "at+jwt"})
    return IssuedToken(token, claims, ttl)


def token_verify(token: str, *, org_slug: str | None = None, audience: str | None = None) -> dict:
    """The token's claims if it is valid and not revoked, else TokenInvalid(reason).

    May raise revocation.RevocationUnavailable: callers must treat that as invalid (fail closed).
    """
    if not token or len(token) > 8192:
        raise TokenInvalid("malformed")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenInvalid("malformed")
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in ("at+jwt", "application/at+jwt"):
        raise TokenInvalid("wrong_type")
    if header.get("alg") not in ALGORITHMS:
        raise TokenInvalid("algorithm_not_allowed")
    verifier = verifier_for(str(header.get("kid", "")))
    if verifier is None or verifier.alg != header["alg"]:
        raise TokenInvalid("unknown_key")
    if verifier.unpublish_at is not None and verifier.unpublish_at <= time.time():
        raise TokenInvalid("unknown_key")
    claims = _decode(token, verifier, audience)
    if claims["org"] != verifier.org_slug:  # a key vouches for its own org only
        raise TokenInvalid("wrong_issuer")
    if org_slug is not None and (claims["org"] != org_slug or claims["iss"] != issuer_for(org_slug)):
        raise TokenInvalid("wrong_issuer")
    if claims["iss"] != issuer_for(claims["org"]):
        raise TokenInvalid("wrong_issuer")
    reason = revocation.revoked_reason(claims)
    if reason:
        raise TokenInvalid(reason)
    return claims


def _decode(token: str, verifier, audience: str | None) -> dict:
    options = {"require": REQUIRED_CLAIMS, "verify_aud": audience is not None}
    try:
        return jwt.decode(token, verifier.key, algorithms=[verifier.alg], audience=audience,
                          options=options, leeway=settings.IAM_CLOCK_SKEW_SECONDS)
    except jwt.ExpiredSignatureError:
        raise TokenInvalid("expired")
    except jwt.ImmatureSignatureError:
        raise TokenInvalid("not_yet_valid")
    except jwt.InvalidAudienceError:
        raise TokenInvalid("wrong_audience")
    except jwt.MissingRequiredClaimError:
        raise TokenInvalid("missing_claim")
    except jwt.PyJWTError:
        raise TokenInvalid("bad_signature")
