"""Capability tokens: RFC 9068 JWT access tokens, and the one verification path.

Our own API, the introspection endpoint and (through introspection) resource servers all verify
with `token_verify`: a fixed algorithm allow-list, `typ: at+jwt`, a key we published (found by
`kid`, never from the token's own `jwk`/`jku`/`x5u` headers), `iss`, `aud`, `exp`/`nbf`/`iat`
with a small skew, required claims, then revocation in the fast store.
"""

import base64
import binascii
import json
import threading
import time
import uuid
from dataclasses import dataclass

import jwt
from cachetools import TLRUCache
from django.conf import settings

from agents import chain, revocation
from agents.keys import ALGORITHMS, signer_for, verifier_for

REQUIRED_CLAIMS = ["iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope", "org"]


class TokenInvalid(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _origins() -> tuple[str, ...]:
    return (settings.IAM_CANONICAL_ORIGIN.rstrip("/"), *settings.IAM_ORIGIN_ALIASES)


def public_origin(origin: str | None = None) -> str:
    """The origin to send people to: the one a client used when it is configured, else canonical."""
    return origin if origin in _origins() else _origins()[0]


def issuer_for(org_slug: str, origin: str | None = None) -> str:
    """The org's issuer: under the origin a client used, when that is one the server is configured
    to answer as (development's localhost and 127.0.0.1), else the canonical origin. Never taken
    from a request header the configuration does not list."""
    base = origin if origin in _origins() else _origins()[0]
    return f"{base}/oauth/{org_slug}"


def issuers_for(org_slug: str) -> frozenset[str]:
    """Every issuer a token of this org may carry (one in production)."""
    return frozenset(f"{origin}/oauth/{org_slug}" for origin in _origins())


@dataclass(frozen=True)
class IssuedToken:
    token: str
    claims: dict
    expires_in: int


def token_sign(*, org, alg: str, agent, audience: str, scope: str, ttl: int, run=None,
               credential_id=None, act: dict | None = None, origin: str | None = None,
               subject: str | None = None, run_id: str | None = None, delegation_id=None,
               may_act: dict | None = None, ancestors: list | None = None) -> IssuedToken:
    """Sign a capability token for `agent` (the client): its own (`sub` is the agent), or delegated
    (`subject` names the root principal, `act` the chain, `delegation_id` the person's approval,
    `ancestors` the tokens it was exchanged from; agents.chain)."""
    now = int(time.time())
    claims = {
        "iss": issuer_for(org.slug, origin),
        "sub": subject or agent.subject,
        "aud": audience,
        "exp": now + ttl,
        "iat": now,
        "nbf": now,
        "jti": uuid.uuid4().hex,
        "client_id": agent.client_id,
        "scope": scope,
        "org": org.slug,
    }
    if run is not None or run_id:
        claims["run"] = str(run.pk) if run is not None else run_id
    if credential_id is not None:
        claims["cred"] = str(credential_id)
    if act:
        claims["act"] = act
    if may_act:
        claims["may_act"] = may_act
    if delegation_id is not None:
        claims["dlg"] = str(delegation_id)
    if ancestors:
        claims["anc"] = ancestors
    signer = signer_for(org, alg)
    token = jwt.encode(claims, signer.key, algorithm=signer.alg, headers={"kid": signer.kid, "typ": "at+jwt"})
    revocation.token_issued(claims)
    return IssuedToken(token, claims, ttl)


def token_verify(token: str, *, org_slug: str | None = None, audience: str | None = None) -> dict:
    """The token's claims if it is valid and not revoked, else TokenInvalid(reason).

    May raise revocation.RevocationUnavailable: callers must treat that as invalid (fail closed).
    """
    claims = token_decode(token, org_slug=org_slug, audience=audience)
    reason = revocation.revoked_reason(claims)
    if reason:
        raise TokenInvalid(reason)
    return claims


def token_decode(token: str, *, org_slug: str | None = None, audience: str | None = None) -> dict:
    """Every check but revocation, all local (no I/O): the claims, or TokenInvalid(reason).

    Only for callers that then read the revocation state themselves in a round trip they already
    make (introspection); everything else calls `token_verify`.
    """
    if not token or len(token) > 8192:
        raise TokenInvalid("malformed")
    with _verified_lock:
        hit = _verified.get(token)
    if hit is None:
        kid, claims = _verify_signed(token)
        with _verified_lock:
            _verified[token] = (kid, claims)
    else:
        kid, claims = hit
        _check_key(verifier_for(kid), claims["org"])  # a key that stopped being published ends its tokens
        _check_times(claims)
    if org_slug is not None and (claims["org"] != org_slug or claims["iss"] not in issuers_for(org_slug)):
        raise TokenInvalid("wrong_issuer")
    if audience is not None and not audience_matches(claims, audience):
        raise TokenInvalid("wrong_audience")
    return claims


# Tokens whose signature and claims this process has already verified, until they expire. Agents
# present the same token on every call for its few minutes of life, so resource servers introspect
# it again and again: a repeat skips the signature and the parsing, never the key, time and
# revocation checks. Bounded, and only successes are kept, so garbage cannot fill it.
_verified = TLRUCache(maxsize=4096, ttu=lambda _token, hit, _now: hit[1]["exp"] + _skew(), timer=time.time)
_verified_lock = threading.Lock()


def _skew() -> int:
    return settings.IAM_CLOCK_SKEW_SECONDS


def verified_forget() -> None:
    with _verified_lock:
        _verified.clear()


def _unverified_header(token: str) -> dict:
    # Only to pick the key; PyJWT validates the whole token again, header included. Read here
    # because PyJWT's own reader costs as much as a third of the signature check.
    head = token.partition(".")[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise TokenInvalid("malformed")
    if not isinstance(header, dict):
        raise TokenInvalid("malformed")
    return header


def _verify_signed(token: str) -> tuple[str, dict]:
    header = _unverified_header(token)
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in ("at+jwt", "application/at+jwt"):
        raise TokenInvalid("wrong_type")
    if header.get("alg") not in ALGORITHMS:
        raise TokenInvalid("algorithm_not_allowed")
    kid = str(header.get("kid", ""))
    verifier = verifier_for(kid)
    if verifier is None or verifier.alg != header["alg"]:
        raise TokenInvalid("unknown_key")
    claims = _decode(token, verifier)
    _check_key(verifier, claims["org"])
    if claims["iss"] not in issuers_for(claims["org"]):
        raise TokenInvalid("wrong_issuer")
    try:
        chain.principals(claims)
        chain.ancestor_links(claims)
    except chain.ChainMalformed:
        raise TokenInvalid("malformed")
    return kid, claims


def _check_key(verifier, org_slug: str) -> None:
    if verifier is None or (verifier.unpublish_at is not None and verifier.unpublish_at <= time.time()):
        raise TokenInvalid("unknown_key")
    if org_slug != verifier.org_slug:  # a key vouches for its own org only
        raise TokenInvalid("wrong_issuer")


def _check_times(claims: dict) -> None:
    """PyJWT's time checks, for a token verified earlier: expiry, then not-before and issued-at."""
    now = time.time()
    if claims["exp"] <= now - _skew():
        raise TokenInvalid("expired")
    if max(claims.get("nbf", 0), claims["iat"]) > now + _skew():
        raise TokenInvalid("not_yet_valid")


def audience_matches(claims: dict, audience: str) -> bool:
    """RFC 7519 §4.1.3: `aud` is one string or a list of them."""
    aud = claims.get("aud")
    return aud == audience or (isinstance(aud, list) and audience in aud)


def _decode(token: str, verifier) -> dict:
    # The audience is checked by the caller (`audience_matches`), so a verified token can be reused.
    options = {"require": REQUIRED_CLAIMS, "verify_aud": False}
    try:
        return jwt.decode(token, verifier.key, algorithms=[verifier.alg], options=options,
                          leeway=settings.IAM_CLOCK_SKEW_SECONDS)
    except jwt.ExpiredSignatureError:
        raise TokenInvalid("expired")
    except jwt.ImmatureSignatureError:
        raise TokenInvalid("not_yet_valid")
    except jwt.MissingRequiredClaimError:
        raise TokenInvalid("missing_claim")
    except jwt.PyJWTError:
        raise TokenInvalid("bad_signature")
