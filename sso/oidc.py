"""The OpenID Connect relying party: discovery, the authorization request, the code exchange, the
ID token's verification, userinfo, and back-channel logout tokens.

Every request to the provider (discovery, JWKS, token, userinfo) goes through
`core.outbound.outbound_request`. The discovered `issuer` must equal the configured one exactly.
The authorization request always carries PKCE (S256) and a nonce; the verifier is kept sealed in
the flow's row, bound to the connection and the flow's nonce. The callback checks the RFC 9207 `iss`
parameter, exchanges the code (client_secret_basic or _post, as the provider supports), and
verifies the ID token with PyJWT against the provider's JWKS: an allow-listed asymmetric algorithm
(HS256 only keyed with the client secret and only on a connection set up for it, never `none`),
the key picked from the stored JWKS by `kid` (a `jku`, `x5u`, `jwk` or `x5c` header is never
used), `iss` exact, `aud` holding the client id (and `azp` equal to it when present or when there
are several audiences), `exp` and `iat` with 60 seconds of skew, and `nonce` equal to the flow's.
Userinfo is read only after that, and its `sub` must be the ID token's. An unknown `kid` refreshes
the JWKS, at most once a minute per connection.

mozilla-django-oidc serves for its PKCE helper only: its backend is one provider per settings file,
checks no `iss`, decodes with audience checking off, defaults to HS256 and PKCE off, and matches
people by email without `email_verified`.

Nothing here logs or returns a secret: the client secret, the code, the verifier and the tokens
never reach a log line, an audit record or an error message.
"""

import base64
import hmac
import json
import secrets
from datetime import UTC, datetime, timedelta
from urllib.parse import quote_plus, urlencode, urlsplit

import jwt
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from mozilla_django_oidc.utils import generate_code_challenge

from core.errors import Invalid
from core.outbound import OutboundRefused, outbound_request
from core.secrets import seal, unseal
from sso.models import Connection, SeenAssertion
from sso.signin import SsoRefused

ASYMMETRIC_ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")
KEY_TYPES = {"RS256": ("RSA", None), "PS256": ("RSA", None), "ES256": ("EC", "P-256"),
             "EdDSA": ("OKP", "Ed25519")}
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
SKEW_SECONDS = 60
JWKS_REFRESH_SECONDS = 60
MAX_TOKEN_CHARS = 16_000
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
DISPLAY_CLAIMS = ("sub", "iss", "email", "email_verified", "name", "preferred_username", "given_name",
                  "family_name", "amr", "acr", "auth_time", "sid")


# --- discovery and keys ---------------------------------------------------------------------


def _get_json(url: str, *, field: str, what: str) -> dict:
    try:
        response = outbound_request("GET", url, headers={"Accept": "application/json"})
    except OutboundRefused as exc:
        message = f"The {what} could not be fetched ({exc.reason})."
        raise Invalid(message, code="provider_unreachable", fields={field: [message]}) from None
    if response.status != 200:
        message = f"The {what} answered HTTP {response.status}."
        raise Invalid(message, code="provider_unreachable", fields={field: [message]})
    try:
        document = json.loads(response.body)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        message = f"The {what} is not a JSON object."
        raise Invalid(message, code="provider_invalid", fields={field: [message]})
    return document


def _web_url(value) -> bool:
    if not isinstance(value, str) or len(value) > 1000:
        return False
    parts = urlsplit(value)
    return parts.scheme in ("https", "http") and bool(parts.hostname) and not parts.fragment


def provider_discover(issuer: str) -> dict:
    """The provider's discovery document, fetched from `{issuer}/.well-known/openid-configuration`
    through the outbound guard and checked: its `issuer` equals `issuer` exactly, it names an
    authorization, token and JWKS endpoint, offers the code flow, signs ID tokens with an algorithm
    we accept, and does PKCE with S256 if it says which methods it does. Raises Invalid."""
    if not _web_url(issuer) or urlsplit(issuer).query:
        message = "The issuer must be an https URL without query or fragment."
        raise Invalid(message, code="issuer_invalid", fields={"issuer": [message]})
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    document = _get_json(url, field="issuer", what="discovery document")

    def refuse(message, code="provider_invalid"):
        raise Invalid(message, code=code, fields={"issuer": [message]})

    if document.get("issuer") != issuer:
        refuse("The discovery document names another issuer.", code="issuer_mismatch")
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not _web_url(document.get(name)):
            refuse(f"The discovery document has no usable {name}.")
    if "userinfo_endpoint" in document and not _web_url(document["userinfo_endpoint"]):
        refuse("The discovery document has no usable userinfo_endpoint.")
    if "code" not in (document.get("response_types_supported") or []):
        refuse("The provider does not offer the authorization code flow.")
    algorithms = document.get("id_token_signing_alg_values_supported") or []
    if not set(algorithms) & {*ASYMMETRIC_ALGORITHMS, "HS256"}:
        refuse("The provider signs ID tokens with no algorithm we accept.")
    methods = document.get("code_challenge_methods_supported")
    if methods is not None and "S256" not in methods:
        refuse("The provider does not support PKCE with S256.")
    if not set(_auth_methods(document)) & {"client_secret_basic", "client_secret_post"}:
        refuse("The provider accepts neither client_secret_basic nor client_secret_post.")
    return document


def jwks_fetch(jwks_uri: str) -> dict:
    """The provider's signing keys from `jwks_uri` through the outbound guard: public keys of a type
    we verify with, private members and symmetric keys dropped. Raises Invalid."""
    if not _web_url(jwks_uri):
        message = "The JWKS URL is not usable."
        raise Invalid(message, code="provider_invalid", fields={"issuer": [message]})
    document = _get_json(jwks_uri, field="issuer", what="JWKS")
    keys = []
    for key in document.get("keys") or []:
        if not isinstance(key, dict) or key.get("kty") not in ("RSA", "EC", "OKP"):
            continue
        if key.get("use", "sig") != "sig":
            continue
        public = {name: value for name, value in key.items() if name not in PRIVATE_MEMBERS}
        try:
            jwt.PyJWK(public)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            continue
        keys.append(public)
    if not keys:
        message = "The provider's JWKS holds no signing key we can use."
        raise Invalid(message, code="jwks_empty", fields={"issuer": [message]})
    return {"keys": keys}


def jwks_refresh(connection: Connection) -> bool:
    """Fetch the JWKS again, at most once a minute per connection (one conditional UPDATE claims
    the minute, so concurrent callbacks make one request). True when new keys were stored."""
    now = timezone.now()
    claimed = (Connection.objects.for_org(connection.org).filter(pk=connection.pk)
               .filter(Q(metadata_fetched_at__isnull=True)
                       | Q(metadata_fetched_at__lte=now - timedelta(seconds=JWKS_REFRESH_SECONDS)))
               .update(metadata_fetched_at=now))
    if not claimed:
        return False
    connection.metadata_fetched_at = now
    try:
        keys = jwks_fetch(connection.provider_metadata.get("jwks_uri", ""))
    except Invalid:
        return False
    Connection.objects.for_org(connection.org).filter(pk=connection.pk).update(jwks=keys)
    connection.jwks = keys
    return True


# --- the authorization request --------------------------------------------------------------


def redirect_uri(connection: Connection) -> str:
    path = reverse("sso:oidc-callback", kwargs={"org": connection.org.slug, "connection": connection.slug})
    return settings.IAM_CANONICAL_ORIGIN.rstrip("/") + path


def pkce_pair() -> tuple[str, str]:
    """A code verifier (86 characters of 64 random bytes) and its S256 challenge."""
    verifier = secrets.token_urlsafe(64)
    return verifier, generate_code_challenge(verifier, "S256")


def _verifier_context(connection: Connection, nonce: str) -> str:
    return f"sso.oidc.verifier:{connection.org_id}:{connection.pk}:{nonce}"


def verifier_seal(connection: Connection, nonce: str, verifier: str) -> str:
    """The verifier sealed for the flow whose nonce is `nonce` (the nonce is random per flow)."""
    return seal(verifier.encode(), context=_verifier_context(connection, nonce))


def verifier_unseal(connection: Connection, flow) -> str:
    try:
        return unseal(flow.verifier_sealed, context=_verifier_context(connection, flow.nonce)).decode()
    except Exception:  # a row edited or copied from another flow: the seal does not open
        raise SsoRefused("state_invalid") from None


def authorization_endpoint(connection: Connection) -> str:
    endpoint = connection.provider_metadata.get("authorization_endpoint")
    if not _web_url(endpoint):
        raise SsoRefused("provider_unconfigured", 503,
                         detail="This identity provider is not set up yet. Ask an administrator.")
    return endpoint


def authorization_url(connection: Connection, *, state: str, nonce: str, code_challenge: str,
                      login_hint: str = "", reauth: bool = False) -> str:
    """`reauth`: the provider must authenticate the person afresh (`prompt=login`, `max_age=0`;
    the ID token's `auth_time` is then checked, OpenID Connect Core 3.1.2.1)."""
    endpoint = authorization_endpoint(connection)
    params = {
        "response_type": "code",
        "client_id": connection.client_id,
        "redirect_uri": redirect_uri(connection),
        "scope": _scopes(connection),
        "state": state,
        "nonce": nonce,
        "code_challenge": code_challenge,
        "code_challenge_method": "S256",
    }
    if login_hint and len(login_hint) <= 254:
        params["login_hint"] = login_hint
    if reauth:
        params.update(prompt="login", max_age="0")
    return endpoint + ("&" if urlsplit(endpoint).query else "?") + urlencode(params)


def _scopes(connection: Connection) -> str:
    scopes = connection.scopes.split() or ["openid", "email", "profile"]
    if "openid" not in scopes:
        scopes.insert(0, "openid")
    return " ".join(dict.fromkeys(scopes))


# --- the callback ---------------------------------------------------------------------------


def response_issuer_check(connection: Connection, iss) -> None:
    """RFC 9207: the `iss` authorization response parameter is required when the provider says it
    sends one, and must be the issuer whenever present (a mix-up otherwise)."""
    if iss is None:
        if connection.provider_metadata.get("authorization_response_iss_parameter_supported"):
            raise SsoRefused("issuer_mismatch", detail="The identity provider's answer did not say who "
                             "sent it. Start again from the sign-in page.")
        return
    if not hmac.compare_digest(iss.encode(), connection.issuer.encode()):
        raise SsoRefused("issuer_mismatch", detail="This answer came from another identity provider. "
                         "Start again from the sign-in page.")


def _auth_methods(metadata: dict) -> list:
    return metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]


def token_exchange(connection: Connection, *, code: str, verifier: str) -> dict:
    """Exchange the code at the token endpoint with the PKCE verifier. Returns the token response."""
    metadata = connection.provider_metadata
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri(connection),
            "code_verifier": verifier}
    headers = {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"}
    secret = connection.unsealed("client_secret")
    methods = _auth_methods(metadata)
    if "client_secret_basic" in methods:
        # RFC 6749 2.3.1: both parts form-urlencoded before the Basic encoding.
        pair = f"{_form(connection.client_id)}:{_form(secret)}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    elif "client_secret_post" in methods:
        form.update(client_id=connection.client_id, client_secret=secret)
    else:
        raise SsoRefused("token_exchange_failed", 502)
    try:
        response = outbound_request("POST", metadata.get("token_endpoint", ""), body=urlencode(form).encode(),
                                    headers=headers, max_redirects=0)
    except OutboundRefused:
        raise SsoRefused("provider_unreachable", 502,
                         detail="The identity provider could not be reached. Try again later.") from None
    if response.status != 200:
        raise SsoRefused("token_exchange_failed",
                         detail="The identity provider refused to complete this sign-in. "
                                "Start again from the sign-in page.")
    try:
        body = json.loads(response.body)
    except ValueError:
        body = None
    if (not isinstance(body, dict) or not isinstance(body.get("id_token"), str)
            or str(body.get("token_type", "")).lower() not in ("bearer", "dpop")):
        raise SsoRefused("token_exchange_failed",
                         detail="The identity provider's answer had no ID token.")
    return body


def _form(value: str) -> str:
    return quote_plus(value)


def _allowed_algorithms(connection: Connection) -> tuple:
    # HS256 keyed with the client secret, only for a connection set up for it.
    return (*ASYMMETRIC_ALGORITHMS, "HS256") if connection.id_token_hs256 else ASYMMETRIC_ALGORITHMS


def _matching_keys(jwks: dict, kid, alg: str) -> list:
    kty, crv = KEY_TYPES[alg]
    found = []
    for key in (jwks or {}).get("keys") or []:
        if not isinstance(key, dict) or key.get("kty") != kty or (crv and key.get("crv") != crv):
            continue
        if key.get("use", "sig") != "sig" or key.get("alg", alg) != alg:
            continue
        if kid is not None and key.get("kid") != kid:
            continue
        found.append(key)
    return found


def _verification_key(connection: Connection, header: dict):
    alg = header["alg"]
    if alg == "HS256":
        secret = connection.unsealed("client_secret")
        if not secret:
            raise jwt.InvalidTokenError("no client secret")
        return secret.encode()
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise jwt.InvalidTokenError("kid")
    keys = _matching_keys(connection.jwks, kid, alg)
    if not keys and jwks_refresh(connection):
        keys = _matching_keys(connection.jwks, kid, alg)
    if len(keys) != 1:  # none, or several keys without a kid to choose between them
        raise jwt.InvalidTokenError("no key")
    public = {name: value for name, value in keys[0].items() if name not in PRIVATE_MEMBERS}
    return jwt.PyJWK(public, algorithm=alg).key


def _jwt_verify(connection: Connection, token, *, required: list) -> dict:
    """Signature, algorithm, `iss`, `aud`/`azp`, `exp`, `iat`: what ID and logout tokens share."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise jwt.InvalidTokenError("token")
    header = jwt.get_unverified_header(token)
    if header.get("alg") not in _allowed_algorithms(connection):
        raise jwt.InvalidAlgorithmError("alg")
    if "crit" in header:
        raise jwt.InvalidTokenError("crit")
    # A key named by the token itself (jku, x5u, jwk, x5c) is never fetched or used: the key
    # comes from the provider's JWKS, found by kid.
    key = _verification_key(connection, header)
    claims = jwt.decode(token, key, algorithms=[header["alg"]], audience=connection.client_id,
                        issuer=connection.issuer, leeway=SKEW_SECONDS,
                        options={"require": required, "verify_signature": True, "verify_exp": True,
                                 "verify_iat": True, "verify_nbf": True, "verify_aud": True,
                                 "verify_iss": True, "strict_aud": False})
    if not hmac.compare_digest(str(claims.get("iss")).encode(), connection.issuer.encode()):
        raise jwt.InvalidIssuerError("iss")
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if "azp" in claims or len(audiences) > 1:
        if claims.get("azp") != connection.client_id:
            raise jwt.InvalidAudienceError("azp")
    if not isinstance(claims.get("iat"), (int, float)) or claims["iat"] > _now() + SKEW_SECONDS:
        raise jwt.ImmatureSignatureError("iat")
    return claims


def _now() -> float:
    return timezone.now().timestamp()


def id_token_verify(connection: Connection, token, *, nonce: str) -> dict:
    """The ID token's claims once verified (see the module's docstring). Raises SsoRefused."""
    try:
        claims = _jwt_verify(connection, token, required=["iss", "sub", "aud", "exp", "iat"])
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise SsoRefused("id_token_invalid", detail="The identity provider's ID token was not valid. "
                         "Start again from the sign-in page.") from None
    if header.get("typ") == "logout+jwt" or "events" in claims:
        raise SsoRefused("id_token_invalid")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 255:
        raise SsoRefused("id_token_invalid")
    if not nonce or not isinstance(claims.get("nonce"), str) or \
            not hmac.compare_digest(claims["nonce"].encode(), nonce.encode()):
        raise SsoRefused("nonce_mismatch", detail="The ID token does not belong to this sign-in. "
                         "Start again from the sign-in page.")
    return claims


def userinfo_fetch(connection: Connection, access_token: str, subject: str) -> dict:
    """Userinfo, read only after the ID token was verified; its `sub` must be the ID token's."""
    endpoint = connection.provider_metadata.get("userinfo_endpoint")
    if not endpoint or not access_token:
        return {}
    try:
        response = outbound_request("GET", endpoint, max_redirects=0,
                                    headers={"Accept": "application/json",
                                             "Authorization": f"Bearer {access_token}"})
    except OutboundRefused:
        raise SsoRefused("provider_unreachable", 502,
                         detail="The identity provider could not be reached. Try again later.") from None
    try:
        claims = json.loads(response.body) if response.status == 200 else None
    except ValueError:
        claims = None
    if not isinstance(claims, dict) or claims.get("sub") != subject:
        raise SsoRefused("userinfo_invalid", detail="The identity provider's user information did not "
                         "match its ID token.")
    return claims


def assertion_from(connection: Connection, id_claims: dict, userinfo: dict):
    """The Assertion sign-in gets: the ID token's claims first, userinfo filling in the rest."""
    from sso.signin import Assertion

    claims = {**userinfo, **id_claims}
    email = claims.get("email") if isinstance(claims.get("email"), str) else ""
    name = claims.get("name") if isinstance(claims.get("name"), str) else ""
    groups = claims.get(connection.groups_attribute) if connection.groups_attribute else None
    if isinstance(groups, str):
        groups = [groups]
    groups = tuple(g for g in groups if isinstance(g, str)) if isinstance(groups, list) else ()
    amr = claims.get("amr") if isinstance(claims.get("amr"), list) else []
    mfa = [value for value in amr if isinstance(value, str)]
    if isinstance(claims.get("acr"), str) and claims["acr"]:
        mfa.append(claims["acr"])
    sid = id_claims.get("sid") if isinstance(id_claims.get("sid"), str) else ""
    auth_time = id_claims.get("auth_time")
    shown = {name: claims[name] for name in DISPLAY_CLAIMS if name in claims}
    if connection.groups_attribute and connection.groups_attribute in claims:
        shown[connection.groups_attribute] = list(groups)
    return Assertion(issuer=connection.issuer, subject=id_claims["sub"], email=email.strip(),
                     email_verified=claims.get("email_verified") is True, display_name=name.strip(),
                     groups=groups, mfa_values=tuple(mfa), idp_session=sid, claims=shown,
                     authenticated_at=auth_time if isinstance(auth_time, (int, float)) else None)


# --- back-channel logout --------------------------------------------------------------------


class LogoutRefused(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def logout_token_verify(connection: Connection, token) -> dict:
    """OpenID Connect Back-Channel Logout 1.0 §2.6: verified like an ID token, with `jti`, the
    back-channel logout event, a `sid` or `sub`, and no `nonce`; the `jti` is accepted once.
    Raises LogoutRefused."""
    try:
        claims = _jwt_verify(connection, token, required=["iss", "aud", "iat", "exp", "jti"])
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise LogoutRefused("logout_token_invalid") from None
    if header.get("typ") not in (None, "JWT", "logout+jwt"):
        raise LogoutRefused("logout_token_invalid")
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_EVENT), dict):
        raise LogoutRefused("logout_token_invalid")
    if "nonce" in claims:
        raise LogoutRefused("logout_token_invalid")
    sub, sid = claims.get("sub"), claims.get("sid")
    if not (isinstance(sub, str) and sub) and not (isinstance(sid, str) and sid):
        raise LogoutRefused("logout_token_invalid")
    if (sub is not None and not isinstance(sub, str)) or (sid is not None and not isinstance(sid, str)):
        raise LogoutRefused("logout_token_invalid")
    jti = claims["jti"]
    if not isinstance(jti, str) or not jti or len(jti) > 150:
        raise LogoutRefused("logout_token_invalid")
    expires = datetime.fromtimestamp(claims["exp"], tz=UTC) + timedelta(seconds=SKEW_SECONDS)
    try:
        with transaction.atomic():
            SeenAssertion.objects.create(org=connection.org, connection=connection,
                                         assertion_id=f"oidc-logout:{jti}", expires_at=expires)
    except IntegrityError:
        raise LogoutRefused("logout_token_replayed") from None
    return claims
