"""Effects on an org's SSO connections: create (importing the IdP's discovery document or SAML
metadata through the outbound guard), change, delete, refresh what the IdP published, and warn
before an IdP signing certificate expires. Every change is audited inside its transaction; no
secret (client secret, SP private key) ever reaches an audit record or an answer.
"""

import json
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.actors import Actor
from audit.events import AuditEvent
from audit.services import Target, audit_record, records_denials
from core.errors import Conflict, DenialAudit, Invalid, ServiceError
from core.outbound import OutboundRefused, outbound_request
from core.roles import BuiltinRole
from rbac.models import Role, Team
from sso.models import Connection, Protocol
from sso.people import ASSIGNABLE_ROLES

METADATA_MAX_BYTES = 1_000_000
EXPIRY_WARNING_DAYS = 30
# Fields an owner may change after creation (the protocol and slug stay: they are in the IdP's
# configuration as redirect URIs and entity ids).
UPDATABLE = (
    "name",
    "enabled",
    "default_role",
    "jit",
    "accepted_mfa",
    "groups_attribute",
    "group_mappings",
    "notes",
    "scopes",
    "client_id",
    "id_token_hs256",
    "allow_idp_initiated",
)


def _invalid(field: str, message: str, code: str = "invalid") -> Invalid:
    return Invalid(message, code=code, fields={field: [message]})


# --- shape -----------------------------------------------------------------------------------


def _check_role(role: str) -> str:
    if role not in ASSIGNABLE_ROLES:
        raise _invalid(
            "default_role", "Choose member, viewer or billing_admin: an IdP never hands out Owner."
        )
    return role


def _check_values(field: str, values) -> list[str]:
    if not isinstance(values, list) or not all(isinstance(v, str) and 0 < len(v) <= 200 for v in values):
        raise _invalid(field, "A list of strings.")
    if len(values) > 50:
        raise _invalid(field, "At most 50 values.")
    return list(dict.fromkeys(values))


def mappings_check(org, mappings) -> list[dict]:
    """Group mappings: each {"group", and one of "role" (built-in, never Owner), "custom_role" (an
    id of this org's roles) or "team" (an id of this org's teams, with "team_role")}. Another
    org's id reads exactly like a missing one."""
    if not isinstance(mappings, list) or len(mappings) > 200:
        raise _invalid("group_mappings", "A list of at most 200 mappings.")
    checked = []
    for item in mappings:
        if not isinstance(item, dict) or not isinstance(item.get("group"), str) or not item["group"].strip():
            raise _invalid("group_mappings", 'Each mapping names a "group".')
        group = item["group"].strip()[:200]
        targets = [k for k in ("role", "custom_role", "team") if k in item]
        if len(targets) != 1:
            raise _invalid("group_mappings", 'Each mapping has exactly one of "role", "custom_role", "team".')
        kind = targets[0]
        value = str(item[kind])
        if kind == "role":
            if value not in ASSIGNABLE_ROLES:
                raise _invalid(
                    "group_mappings", "A group maps to member, viewer or billing_admin, never Owner."
                )
            checked.append({"group": group, "role": value})
        elif kind == "custom_role":
            if not _exists(Role, org, value):
                raise _invalid("group_mappings", "No such role in this organization.")
            checked.append({"group": group, "custom_role": value})
        else:
            team_role = str(item.get("team_role", "member"))
            if team_role not in ("member", "admin"):
                raise _invalid("group_mappings", 'A team mapping\'s "team_role" is member or admin.')
            if not _exists(Team, org, value):
                raise _invalid("group_mappings", "No such team in this organization.")
            checked.append({"group": group, "team": value, "team_role": team_role})
    return checked


def _exists(model, org, pk: str) -> bool:
    import uuid

    try:
        uuid.UUID(pk)
    except ValueError:
        return False
    return model.objects.for_org(org).filter(pk=pk).exists()


# --- what the IdP published ---------------------------------------------------------------------


def _oidc_import(connection: Connection) -> None:
    from sso import oidc

    metadata = oidc.provider_discover(connection.issuer)
    connection.jwks = oidc.jwks_fetch(metadata["jwks_uri"])
    connection.provider_metadata = metadata


def _saml_metadata_fetch(url: str) -> str:
    try:
        response = outbound_request(
            "GET",
            url,
            headers={"Accept": "application/samlmetadata+xml, text/xml"},
            max_bytes=METADATA_MAX_BYTES,
        )
    except OutboundRefused as exc:
        raise _invalid(
            "idp_metadata_url", f"The metadata could not be fetched ({exc.reason}).", "provider_unreachable"
        ) from None
    if response.status != 200:
        raise _invalid(
            "idp_metadata_url", f"The metadata URL answered HTTP {response.status}.", "provider_unreachable"
        )
    return response.body.decode("utf-8", errors="replace")


def _saml_import(connection: Connection, xml: str) -> None:
    from sso import saml

    if len(xml.encode()) > METADATA_MAX_BYTES:
        raise _invalid("idp_metadata_xml", "The metadata is larger than 1 MB.", "metadata_invalid")
    metadata = saml.metadata_read(xml)
    connection.idp_entity_id = metadata.entity_id
    connection.idp_sso_url = metadata.sso_url
    connection.seal("idp_metadata", xml)
    certificates_store(connection, metadata.certificates)


def certificates_store(connection: Connection, pems: list[str]) -> None:
    """Keep the IdP's signing certificates sealed, and their public facts for the page."""
    if not pems:
        raise _invalid("idp_metadata_xml", "The metadata holds no signing certificate.", "metadata_invalid")
    connection.seal("idp_certificates", json.dumps(pems))
    connection.idp_certificates_info = [certificate_info(pem) for pem in pems]


def certificate_info(pem: str) -> dict:
    cert = x509.load_pem_x509_certificate(pem.encode())
    return {
        "fingerprint_sha256": cert.fingerprint(hashes.SHA256()).hex(":"),
        "subject": cert.subject.rfc4514_string()[:200],
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
    }


def _sp_keys(connection: Connection) -> None:
    from sso import saml

    key, cert = saml.sp_keypair()
    connection.seal("sp_private_key", key)
    connection.sp_certificate = cert


# --- effects -----------------------------------------------------------------------------------


@records_denials
@transaction.atomic
def connection_create(
    *,
    org,
    actor: Actor,
    created_by=None,
    name: str,
    slug: str,
    protocol: str,
    default_role: str = BuiltinRole.MEMBER,
    jit: bool = False,
    enabled: bool = True,
    accepted_mfa=(),
    groups_attribute: str = "groups",
    group_mappings=(),
    notes: str = "",
    issuer: str = "",
    client_id: str = "",
    client_secret: str = "",
    scopes: str = "openid email profile",
    id_token_hs256: bool = False,
    idp_metadata_xml: str = "",
    idp_metadata_url: str = "",
    allow_idp_initiated: bool = False,
) -> Connection:
    if protocol not in Protocol.values:
        raise _invalid("protocol", 'Choose "oidc" or "saml".')
    if Connection.objects.for_org(org).filter(slug=slug).exists():
        raise Conflict(
            "A connection with this slug exists.", code="duplicate", fields={"slug": ["Already taken."]}
        )
    connection = Connection(
        org=org,
        name=name,
        slug=slug,
        protocol=protocol,
        default_role=_check_role(default_role),
        jit=jit,
        enabled=enabled,
        accepted_mfa=_check_values("accepted_mfa", list(accepted_mfa)),
        groups_attribute=groups_attribute,
        group_mappings=mappings_check(org, list(group_mappings)),
        notes=notes,
        created_by=created_by,
    )
    if protocol == Protocol.OIDC:
        for field, value in (("issuer", issuer), ("client_id", client_id), ("client_secret", client_secret)):
            if not value:
                raise _invalid(field, "Required for an OpenID Connect connection.")
        connection.issuer, connection.client_id, connection.scopes = issuer, client_id, scopes
        connection.id_token_hs256 = id_token_hs256
        connection.seal("client_secret", client_secret)
        _oidc_import(connection)
    else:
        if bool(idp_metadata_xml) == bool(idp_metadata_url):
            raise _invalid("idp_metadata_xml", "Give the IdP's metadata XML or its URL (one of them).")
        connection.idp_metadata_url = idp_metadata_url
        connection.allow_idp_initiated = allow_idp_initiated
        _saml_import(connection, idp_metadata_xml or _saml_metadata_fetch(idp_metadata_url))
        _sp_keys(connection)
    connection.metadata_fetched_at = timezone.now()
    connection.full_clean(exclude=["org", "created_by"])
    try:
        with transaction.atomic():
            connection.save()
    except IntegrityError:
        raise Conflict(
            "A connection with this slug exists.", code="duplicate", fields={"slug": ["Already taken."]}
        ) from None
    audit_record(
        org=org,
        actor=actor,
        event=AuditEvent.SSO_CONNECTION_CREATED,
        target=Target.of(connection),
        data={"name": name, "slug": slug, "protocol": protocol},
    )
    return connection


@records_denials
@transaction.atomic
def connection_update(
    *,
    connection: Connection,
    actor: Actor,
    client_secret: str | None = None,
    issuer: str | None = None,
    idp_metadata_xml: str | None = None,
    idp_metadata_url: str | None = None,
    **changes,
) -> Connection:
    """Change what an owner may change; a new client secret replaces the old one at once; a new
    issuer is discovered again; new SAML metadata (XML or URL) replaces the certificates."""
    unknown = set(changes) - set(UPDATABLE)
    if unknown:
        raise Invalid(
            "These fields cannot be changed.", fields={k: ["Cannot be changed."] for k in sorted(unknown)}
        )
    connection = Connection.objects.for_org(connection.org).select_for_update().get(pk=connection.pk)
    changed = []
    if "default_role" in changes:
        _check_role(changes["default_role"])
    if "accepted_mfa" in changes:
        changes["accepted_mfa"] = _check_values("accepted_mfa", changes["accepted_mfa"])
    if "group_mappings" in changes:
        changes["group_mappings"] = mappings_check(connection.org, changes["group_mappings"])
    for field, value in changes.items():
        if getattr(connection, field) != value:
            setattr(connection, field, value)
            changed.append(field)
    if connection.protocol == Protocol.OIDC:
        if client_secret:
            connection.seal("client_secret", client_secret)
            changed.append("client_secret")
        if issuer and issuer != connection.issuer:
            connection.issuer = issuer
            _oidc_import(connection)
            connection.metadata_fetched_at = timezone.now()
            changed.append("issuer")
    elif idp_metadata_xml or idp_metadata_url:
        if idp_metadata_url:
            connection.idp_metadata_url = idp_metadata_url
        _saml_import(connection, idp_metadata_xml or _saml_metadata_fetch(idp_metadata_url))
        connection.metadata_fetched_at = timezone.now()
        changed.append("idp_metadata")
    if not changed:
        return connection
    connection.updated_at = timezone.now()
    connection.full_clean(exclude=["org", "created_by"])
    connection.save()
    audit_record(
        org=connection.org,
        actor=actor,
        event=AuditEvent.SSO_CONNECTION_UPDATED,
        target=Target.of(connection),
        data={"name": connection.name, "fields": sorted(changed)},
    )
    return connection


@records_denials
@transaction.atomic
def connection_delete(*, connection: Connection, actor: Actor) -> None:
    """Remove a connection. If it is the org's last enabled one while the org requires SSO, refuse:
    nobody could sign in."""
    from accounts.policy import policy_for_org

    org = connection.org
    others = Connection.objects.for_org(org).filter(enabled=True).exclude(pk=connection.pk)
    if policy_for_org(org).sso_required and not others.exists():
        raise Conflict(
            "The organization requires single sign-on and this is its last connection: switch "
            '"SSO required" off first.',
            code="sso_required",
            audit=DenialAudit(
                org=org,
                actor=actor,
                event=AuditEvent.POLICY_DENIED,
                target=Target.of(connection),
                data={"reason": "last_sso_connection"},
            ),
        )
    name, slug = connection.name, connection.slug
    connection.delete()
    audit_record(
        org=org,
        actor=actor,
        event=AuditEvent.SSO_CONNECTION_DELETED,
        target=Target.of(org),
        data={"name": name, "slug": slug},
    )


@transaction.atomic
def metadata_refresh(*, connection: Connection, actor: Actor) -> bool:
    """Fetch what the IdP publishes again (OIDC discovery and JWKS; SAML metadata from its URL).
    A failure keeps what was stored and is recorded. Returns whether anything changed."""
    connection = Connection.objects.for_org(connection.org).select_for_update().get(pk=connection.pk)
    before = (
        connection.provider_metadata,
        connection.jwks,
        connection.idp_entity_id,
        connection.idp_sso_url,
        connection.idp_certificates_info,
    )
    reason = "ok"
    try:
        if connection.protocol == Protocol.OIDC:
            _oidc_import(connection)
        elif connection.idp_metadata_url:
            _saml_import(connection, _saml_metadata_fetch(connection.idp_metadata_url))
        else:
            reason = "pasted_metadata"
    except ServiceError as exc:
        reason = exc.code or "invalid"
        Connection.objects.for_org(connection.org).filter(pk=connection.pk).update(
            metadata_error=exc.detail[:200]
        )
        changed = False
    else:
        changed = before != (
            connection.provider_metadata,
            connection.jwks,
            connection.idp_entity_id,
            connection.idp_sso_url,
            connection.idp_certificates_info,
        )
        connection.metadata_error = ""
        connection.metadata_fetched_at = timezone.now()
        connection.save()
    audit_record(
        org=connection.org,
        actor=actor,
        event=AuditEvent.SSO_METADATA_REFRESHED,
        target=Target.of(connection),
        data={"connection": connection.slug, "changed": changed, "reason": reason},
    )
    return changed


def certificates_expiring(connection: Connection, *, now=None) -> list[dict]:
    """The IdP signing certificates that expire within the warning period (or already have)."""
    now = now or timezone.now()
    soon = now + timedelta(days=EXPIRY_WARNING_DAYS)
    return [
        info
        for info in connection.idp_certificates_info or []
        if datetime.fromisoformat(info["not_after"]).astimezone(UTC) <= soon
    ]


def certificates_warn(*, connection: Connection, now=None) -> int:
    """Record one `sso.certificate_expiring` per certificate and day it is within the warning period."""
    now = now or timezone.now()
    warned = 0
    for info in certificates_expiring(connection, now=now):
        if info.get("warned_on") == now.date().isoformat():
            continue
        audit_record(
            org=connection.org,
            actor=Actor.system("sso"),
            event=AuditEvent.SSO_CERTIFICATE_EXPIRING,
            target=Target.of(connection),
            data={
                "connection": connection.slug,
                "fingerprint": info["fingerprint_sha256"],
                "not_after": info["not_after"],
            },
        )
        info["warned_on"] = now.date().isoformat()
        warned += 1
    if warned:
        Connection.objects.for_org(connection.org).filter(pk=connection.pk).update(
            idp_certificates_info=connection.idp_certificates_info
        )
    return warned


# --- system jobs -------------------------------------------------------------------------------


def connections_maintain(*, now=None) -> dict:
    """The daily job: refresh what every enabled connection's IdP publishes from its URL, then warn
    about signing certificates near their end. Sign-in does not depend on it: a JWKS is also
    refreshed when an ID token names a key id it does not hold. Returns how many changed and how
    many warnings were recorded."""
    from core.tenancy import org_scope

    changed = warned = 0
    rows = (Connection.objects.unscoped()  # a system job over every org's connections
            .filter(enabled=True).select_related("org").order_by("org_id", "pk"))
    for connection in rows:
        with org_scope(connection.org):
            if connection.protocol == Protocol.OIDC or connection.idp_metadata_url:
                changed += metadata_refresh(connection=connection, actor=Actor.system("sso.refresh"))
                connection.refresh_from_db()
            warned += certificates_warn(connection=connection, now=now)
    return {"changed": changed, "warned": warned}


def flows_prune(*, now=None) -> int:
    """Delete sign-ins that ended or expired, and replay-cache entries past their NotOnOrAfter."""
    from sso.models import Flow, SeenAssertion

    now = now or timezone.now()
    flows, _ = Flow.objects.unscoped().filter(expires_at__lt=now - timedelta(hours=1)).delete()
    seen, _ = SeenAssertion.objects.unscoped().filter(expires_at__lt=now).delete()
    return flows + seen
