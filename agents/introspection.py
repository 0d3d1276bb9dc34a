"""Token introspection (RFC 7662) without a database query on its steady path.

Resource servers may introspect on every request they serve, so this is the product's hottest read.
It costs one round trip to the fast store and no query:

- The token is checked locally first (`token_decode`: signature with a cached key, `typ`, `iss`,
  times), which gives the revocation keys to read (one the store lost is read back from the
  database first: agents.revocation).
- The connection's credential record lives in the fast store too (`cn:<org>:<client id>`), read in
  that same round trip; a miss reads the database once and refills it. The record holds only the
  keyed hash of the connection's secret, never the secret. Changing, rotating or deleting the
  connection forgets it in the same step, so an old secret fails on the very next request.
- The audit log gets one entry the first time a worker sees a connection ask about a token, and
  another whenever the answer changes (active, then revoked): a resource server asking about the
  same token on each of its requests does not write thousands of identical entries. Which
  connection saw which token, and what it was told, is always on record.

If the store cannot be reached the connection is read from the database and every token is
inactive: verification fails closed.
"""

import hashlib
import logging
import threading
import time
import uuid
from dataclasses import dataclass

from cachetools import TLRUCache
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from agents import revocation
from agents.issuance import OAuthError
from agents.models import Connection
from agents.selectors import ConnectionRef, OrgRef, connection_for_client
from agents.tokens import TokenInvalid, audience_matches, token_decode
from audit.actors import Actor
from audit.events import AuditEvent
from audit.services import Target, audit_record
from core.credentials import CredentialRefused, credential_check, credential_presented
from core.secrets import secret_hash
from core.tenancy import org_scope_enter

# A connection's record changes only through agents.services (update, secret rotation, delete),
# which call `connection_record_forget` in the same step.
CONNECTION_RECORD_TTL = 600
# A forgotten record is replaced by this marker for a while, and a fill only adds where nothing is:
# a request that read the database just before the change cannot put the old record (and with it
# the old secret) back after it. Until the marker expires the connection is read from the database.
FORGOTTEN = ("forgotten",)
FORGOTTEN_TTL = 60
INACTIVE_MEMORY = 300  # seconds an inactive answer about one token string is remembered
MAX_CLIENT_ID = 64

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Introspection:
    connection: ConnectionRef
    claims: dict | None  # None: inactive


def connection_record_key(org_slug: str, client_id: str) -> str:
    return f"cn:{org_slug}:{client_id}"


def _record(ref: ConnectionRef) -> tuple:
    return (str(ref.pk), ref.name, ref.audience, ref.secret_hash, ref.hash_kid, ref.lookup_id, ref.expires_at,
            ref.revoked, str(ref.org.pk), ref.org.slug)


def _from_record(record) -> ConnectionRef | None:
    if record == FORGOTTEN:
        return None
    try:
        pk, name, audience, hashed, kid, lookup_id, expires_at, revoked, org_pk, org_slug = record
        return ConnectionRef(pk=uuid.UUID(pk), name=name, audience=audience, secret_hash=hashed, hash_kid=kid,
                             lookup_id=lookup_id, expires_at=expires_at, revoked=revoked,
                             org=OrgRef(uuid.UUID(org_pk), org_slug))
    except (TypeError, ValueError):  # a record from an older layout: read the database instead
        return None


def _refuse(secret: str):
    secret_hash(secret)  # the same work as a real check: timing says nothing about which part failed
    raise OAuthError("invalid_client", "Client authentication failed.", 401)


def introspect(*, org_slug: str, client_id: str, secret: str, token: str) -> Introspection:
    """Authenticate the connection and judge the token. OAuthError(invalid_client) if the
    connection's credentials are wrong; otherwise an Introspection (inactive or active)."""
    presented = credential_presented(secret, Connection.PREFIX)
    if not presented or not client_id or len(client_id) > MAX_CLIENT_ID:
        _refuse(secret)
    try:
        claims = token_decode(token, org_slug=org_slug)
    except TokenInvalid:
        claims = None
    record_key = connection_record_key(org_slug, client_id)
    revocation_keys = revocation.revocation_keys(claims) if claims else {}
    try:
        found = revocation.store_read(revocation_keys, also=[record_key])
    except revocation.RevocationUnavailable:
        found = None
    connection = _from_record(found[record_key]) if found and record_key in found else None
    if connection is None:
        connection = connection_for_client(org_slug=org_slug, client_id=client_id)
        if connection is None:
            _refuse(secret)
        if found is not None:
            _remember_connection(record_key, connection)
    # A connection registered before secrets carried their lookup id has none to compare.
    named_other = connection.lookup_id is not None and connection.lookup_id != presented.lookup_id
    try:
        if named_other:
            raise CredentialRefused("bad_secret")
        credential_check(connection, presented.secret, timezone.now())
    except CredentialRefused:
        raise OAuthError("invalid_client", "Client authentication failed.", 401)
    org_scope_enter(connection.org)  # the request acts in the authenticated connection's org
    if claims is not None and (
            found is None  # the store is unreachable: fail closed
            or revocation.reason_in(claims, revocation_keys, found)
            or not audience_matches(claims, connection.audience)):
        claims = None
    result = Introspection(connection, claims)
    _audit_first_sight(result, token)
    return result


def _remember_connection(key: str, connection: ConnectionRef) -> None:
    try:
        # Only if absent: a record forgotten since this request read the database stays forgotten.
        cache.add(key, _record(connection), CONNECTION_RECORD_TTL)
    except Exception:  # only a cache fill: the next request reads the database again
        logger.warning("could not cache connection record", exc_info=True)


def connection_record_forget(org_slug: str, client_id: str) -> None:
    """Drop the connection's record from the fast store, within the transaction that changes the
    connection: now (a store that cannot be written refuses the change, as a revocation does) and
    again once the change commits, since a request may have read the old row in between."""
    key = connection_record_key(org_slug, client_id)
    try:
        cache.set(key, FORGOTTEN, FORGOTTEN_TTL)
    except Exception as exc:
        raise revocation.RevocationUnavailable(type(exc).__name__) from exc
    transaction.on_commit(lambda: _forget_again(key))


def _forget_again(key: str) -> None:
    try:
        cache.set(key, FORGOTTEN, FORGOTTEN_TTL)
    except Exception:
        logger.error("could not forget %s again after its commit", key, exc_info=True)


# What this worker has already recorded: (connection, token, answer) until the token expires.
# TLRUCache evicts each entry at its own time and the least recently used beyond maxsize, so memory
# stays bounded whatever callers send. Per process: with N workers, up to N entries per answer.
_seen = TLRUCache(maxsize=20_000, ttu=lambda _key, until, _now: until, timer=time.time)
_seen_lock = threading.Lock()


def forget_seen() -> None:
    with _seen_lock:
        _seen.clear()


def _audit_first_sight(result: Introspection, token: str) -> None:
    claims = result.claims
    if claims is not None:
        token_id, until = claims["jti"], float(claims["exp"])
    else:
        token_id = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
        until = time.time() + INACTIVE_MEMORY
    key = (result.connection.pk, token_id, claims is not None)
    with _seen_lock:
        if key in _seen:
            return
    connection = result.connection
    audit_record(org=connection.org, actor=Actor.for_connection(connection),
                 event=AuditEvent.TOKEN_INTROSPECTED, target=Target("connection", str(connection.pk)),
                 data={"jti": claims["jti"] if claims else None, "active": claims is not None,
                       "connection": str(connection.pk)})
    with _seen_lock:  # only once it is on record: a failed append is retried by the next request
        _seen[key] = until
