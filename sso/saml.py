"""The SAML 2.0 service provider, on pysaml2 (with xmlsec1): per-connection configuration built
from the database, SP metadata, SP-initiated login (HTTP-Redirect out, HTTP-POST back), and the
verification of the IdP's response.

djangosaml2 serves the design's idea (one pysaml2 configuration per request, from a loader) but not
its views or backend: those create unknown users by default, keep no assertion replay cache
(djangosaml2 issue #250) and read one configuration from settings. pysaml2 wants a signed
response but not a signed assertion by default; here every assertion must be signed, by a
certificate stored for the connection (the IdP metadata pysaml2 sees is built from those stored
certificates only, never from anything in the message). Before pysaml2 parses anything, the XML is
checked by defusedxml (no DTD, no entities), bounded in size, and refused when it carries a comment
(CVE-2017-11427: a comment inside a signed NameID survives canonicalisation and truncates the text
ElementTree reads) or a SHA-1 signature or digest.
"""

import base64
import binascii
import json
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException
from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from core.errors import Invalid
from sso.models import Connection, SeenAssertion
from sso.outcomes import Assertion, SsoRefused

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
RESPONSE_MAX_BYTES = 256 * 1024
SKEW_SECONDS = 60
IDP_INITIATED_SECONDS = 120
SHA1_URIS = (
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
    "http://www.w3.org/2000/09/xmldsig#sha1",
    "http://www.w3.org/2000/09/xmldsig#dsa-sha1",
    "http://www.w3.org/2000/09/xmldsig#hmac-sha1",
)
EMAIL_ATTRIBUTES = (
    "email",
    "mail",
    "emailaddress",
    "urn:oid:0.9.2342.19200300.100.1.3",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
)
NAME_ATTRIBUTES = (
    "displayname",
    "name",
    "cn",
    "urn:oid:2.16.840.1.113730.3.1.241",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
)


@dataclass(frozen=True)
class IdpMetadata:
    entity_id: str
    sso_url: str
    certificates: list


def _metadata_invalid(message: str) -> Invalid:
    return Invalid(message, code="metadata_invalid", fields={"idp_metadata_xml": [message]})


def _parse(xml: str | bytes):
    try:
        return SafeET.fromstring(xml, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (DefusedXmlException, SafeET.ParseError, ValueError):
        return None


def _pem(text: str) -> str | None:
    body = "".join(text.split())
    try:
        der = base64.b64decode(body, validate=True)
        cert = x509.load_der_x509_certificate(der)
    except (binascii.Error, ValueError):
        return None
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def metadata_read(xml: str) -> IdpMetadata:
    """The IdP's entity id, SSO endpoint (HTTP-Redirect, else HTTP-POST) and signing certificates
    from its metadata, parsed without DTDs or entities. Raises Invalid."""
    root = _parse(xml)
    if root is None:
        raise _metadata_invalid("This is not SAML metadata we can read (XML without DTD or entities).")
    candidates = [root] if root.tag == f"{{{MD}}}EntityDescriptor" else root.iter(f"{{{MD}}}EntityDescriptor")
    for entity in candidates:
        idp = entity.find(f"{{{MD}}}IDPSSODescriptor")
        if idp is None:
            continue
        services = {s.get("Binding"): s.get("Location") for s in idp.findall(f"{{{MD}}}SingleSignOnService")}
        sso_url = services.get(REDIRECT) or services.get(POST) or ""
        certificates = []
        for key in idp.findall(f"{{{MD}}}KeyDescriptor"):
            if key.get("use", "signing") != "signing":
                continue
            for node in key.iter(f"{{{DS}}}X509Certificate"):
                pem = _pem(node.text or "")
                if pem is None:
                    raise _metadata_invalid("A signing certificate in the metadata is not valid.")
                certificates.append(pem)
        entity_id = entity.get("entityID") or ""
        if not entity_id or not sso_url.startswith(("https://", "http://")):
            raise _metadata_invalid("The metadata names no entity id or no single sign-on endpoint.")
        if not certificates:
            raise _metadata_invalid("The metadata holds no signing certificate.")
        return IdpMetadata(
            entity_id=entity_id, sso_url=sso_url, certificates=list(dict.fromkeys(certificates))
        )
    raise _metadata_invalid("The metadata describes no identity provider (IDPSSODescriptor).")


def sp_keypair() -> tuple[str, str]:
    """The SP's signing key and a self-signed certificate for it (RSA 3072, ten years)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Agent IAM SAML SP")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


# --- the SP's configuration -------------------------------------------------------------------


def _url(name: str, connection: Connection) -> str:
    path = reverse(name, kwargs={"org": connection.org.slug, "connection": connection.slug})
    return settings.IAM_CANONICAL_ORIGIN.rstrip("/") + path


def sp_entity_id(connection: Connection) -> str:
    return _url("sso:saml-metadata", connection)


def acs_url(connection: Connection) -> str:
    return _url("sso:saml-acs", connection)


def _cert_body(pem: str) -> str:
    return "".join(line for line in pem.strip().splitlines() if "-----" not in line)


def idp_metadata_xml(connection: Connection) -> str:
    """The IdP's metadata as pysaml2 sees it: the stored entity id, endpoint and certificates only."""
    from xml.sax.saxutils import quoteattr

    keys = "".join(
        f'<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{_cert_body(pem)}'
        "</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
        for pem in json.loads(connection.unsealed("idp_certificates") or "[]")
    )
    return (
        f'<md:EntityDescriptor xmlns:md="{MD}" xmlns:ds="{DS}" '
        f"entityID={quoteattr(connection.idp_entity_id)}>"
        f'<md:IDPSSODescriptor protocolSupportEnumeration="{SAMLP}">{keys}'
        f'<md:SingleSignOnService Binding="{REDIRECT}" Location={quoteattr(connection.idp_sso_url)}/>'
        "</md:IDPSSODescriptor></md:EntityDescriptor>"
    )


class _SpConfig:
    """A pysaml2 SP configuration for one connection. pysaml2 reads the SP's certificate from a
    file, which lives in a private temporary directory only while the configuration is in use. The
    private key never goes there: the metadata and the response's verification need none, and the
    AuthnRequest is signed in `authn_redirect` (pysaml2's signers are process-wide objects whose key
    it swaps before each use, so two connections signing at once in two threads could mix keys)."""

    def __init__(self, connection: Connection, *, allow_unsolicited: bool = False):
        self.connection = connection
        self.allow_unsolicited = allow_unsolicited

    def __enter__(self):
        from saml2 import xmldsig
        from saml2.config import SPConfig

        self.directory = tempfile.mkdtemp(prefix="iam-saml-")
        cert_file = os.path.join(self.directory, "sp.crt")
        with open(cert_file, "w") as handle:
            handle.write(self.connection.sp_certificate)
        config = SPConfig()
        config.load(
            {
                "entityid": sp_entity_id(self.connection),
                "xmlsec_binary": shutil.which("xmlsec1"),
                "cert_file": cert_file,
                "metadata": {"inline": [idp_metadata_xml(self.connection)]},
                "accepted_time_diff": SKEW_SECONDS,
                "service": {
                    "sp": {
                        "endpoints": {"assertion_consumer_service": [(acs_url(self.connection), POST)]},
                        "want_assertions_signed": True,
                        "want_response_signed": False,
                        "authn_requests_signed": True,
                        "allow_unsolicited": self.allow_unsolicited,
                        "signing_algorithm": xmldsig.SIG_RSA_SHA256,
                        "digest_algorithm": xmldsig.DIGEST_SHA256,
                    }
                },
            }
        )
        return config

    def __exit__(self, *exc):
        shutil.rmtree(self.directory, ignore_errors=True)


def sp_metadata(connection: Connection) -> str:
    from saml2.metadata import entity_descriptor

    with _SpConfig(connection) as config:
        return str(entity_descriptor(config))


def authn_redirect(
    connection: Connection, *, request_id: str, relay_state: str, force_authn: bool = False
) -> str:
    """The IdP URL carrying our signed AuthnRequest (HTTP-Redirect, RSA-SHA256 over
    `SAMLRequest=…&RelayState=…&SigAlg=…` as the binding defines it, with this connection's key)."""
    import zlib
    from urllib.parse import urlencode

    from cryptography.hazmat.primitives.asymmetric import padding
    from saml2 import xmldsig
    from saml2.client import Saml2Client

    with _SpConfig(connection) as config:
        client = Saml2Client(config)
        extra = {"force_authn": "true"} if force_authn else {}
        _, request = client.create_authn_request(
            connection.idp_sso_url, message_id=request_id, sign=False, binding=POST, **extra
        )
    params = {
        "SAMLRequest": base64.b64encode(zlib.compress(str(request).encode())[2:-4]).decode(),
        "RelayState": relay_state,
        "SigAlg": xmldsig.SIG_RSA_SHA256,
    }
    signed = "&".join(urlencode({name: value}) for name, value in params.items()).encode()
    key = serialization.load_pem_private_key(connection.unsealed("sp_private_key").encode(), password=None)
    params["Signature"] = base64.b64encode(key.sign(signed, padding.PKCS1v15(), hashes.SHA256())).decode()
    glue = "&" if "?" in connection.idp_sso_url else "?"
    return connection.idp_sso_url + glue + urlencode(params)


def new_request_id() -> str:
    return "_" + secrets.token_hex(20)


# --- the IdP's answer -------------------------------------------------------------------------


def response_precheck(encoded: str) -> tuple[str, str]:
    """(decoded XML, its InResponseTo) once the message passed the checks made before pysaml2 sees
    it: size, base64, XML without DTD or entities, no comment, no SHA-1. Raises SsoRefused."""
    if not encoded:
        raise SsoRefused("saml_response_missing")
    if len(encoded) > RESPONSE_MAX_BYTES * 4 // 3 + 4:
        raise SsoRefused("saml_response_too_large", 413)
    try:
        xml = base64.b64decode(encoded, validate=False)
    except (binascii.Error, ValueError):
        raise SsoRefused("saml_response_invalid") from None
    if len(xml) > RESPONSE_MAX_BYTES:
        raise SsoRefused("saml_response_too_large", 413)
    root = _parse(xml)
    if root is None or root.tag != f"{{{SAMLP}}}Response":
        raise SsoRefused("saml_response_invalid")
    if b"<!--" in xml or b"<?" in xml.split(b"?>", 1)[-1]:
        raise SsoRefused(
            "saml_response_invalid",
            detail="The identity provider's answer carries XML "
            "comments or processing instructions; it is refused.",
        )
    for node in root.iter():
        if (
            node.tag in (f"{{{DS}}}SignatureMethod", f"{{{DS}}}DigestMethod")
            and node.get("Algorithm") in SHA1_URIS
        ):
            raise SsoRefused(
                "saml_weak_signature", detail="The answer is signed with SHA-1, which is refused."
            )
    assertions = list(root.iter(f"{{{SAML}}}Assertion")) + list(root.iter(f"{{{SAML}}}EncryptedAssertion"))
    if len(assertions) != 1:
        raise SsoRefused("saml_assertion_count", detail="The answer must hold exactly one assertion.")
    return xml.decode("utf-8", errors="replace"), root.get("InResponseTo") or ""


def response_verify(connection: Connection, encoded: str, *, request_id: str | None) -> Assertion:
    """Verify the IdP's answer with pysaml2 against the stored certificates: a signed assertion,
    Issuer, Destination, Recipient, Audience, NotBefore/NotOnOrAfter, InResponseTo (`request_id`,
    or None for an IdP-initiated answer), Success status; then spend the assertion's ID once.
    Raises SsoRefused."""
    from saml2 import BINDING_HTTP_POST
    from saml2.response import StatusError

    outstanding = {request_id: acs_url(connection)} if request_id else {}
    with _SpConfig(connection, allow_unsolicited=request_id is None) as config:
        from saml2.client import Saml2Client

        client = Saml2Client(config)
        try:
            response = client.parse_authn_request_response(
                encoded, BINDING_HTTP_POST, outstanding=outstanding
            )
        except StatusError:
            raise SsoRefused("saml_status", detail="The identity provider did not sign you in.") from None
        except Exception:  # noqa: BLE001 (pysaml2 raises many kinds; every one is a refusal)
            raise SsoRefused(
                "saml_response_rejected",
                detail="The identity provider's answer did not verify. Start again from the sign-in page.",
            ) from None
    if response is None or response.assertion is None:
        raise SsoRefused("saml_response_rejected")
    assertion = response.assertion
    if assertion.signature is None:
        raise SsoRefused("saml_assertion_unsigned", detail="The assertion is not signed.")
    if response.issuer() != connection.idp_entity_id:
        raise SsoRefused("saml_issuer_mismatch")
    _addressed_to_us(connection, assertion)
    if request_id is None:
        issued = _instant(assertion.issue_instant)
        if issued is None or abs((timezone.now() - issued).total_seconds()) > IDP_INITIATED_SECONDS:
            raise SsoRefused("saml_unsolicited_stale")
    not_on_or_after = None
    if assertion.conditions is not None:
        not_on_or_after = _instant(assertion.conditions.not_on_or_after)
    expires = (not_on_or_after or timezone.now() + timedelta(minutes=10)) + timedelta(seconds=SKEW_SECONDS)
    try:
        with transaction.atomic():
            SeenAssertion.objects.create(
                org=connection.org,
                connection=connection,
                assertion_id=f"saml:{assertion.id}"[:200],
                expires_at=expires,
            )
    except IntegrityError:
        raise SsoRefused("saml_replayed", detail="This sign-in was already used.") from None
    return _assertion(connection, response)


def _addressed_to_us(connection: Connection, assertion) -> None:
    """What pysaml2 leaves optional, required here (the Web SSO profile's own rules): the assertion
    names this SP in an AudienceRestriction (pysaml2 accepts an assertion with none), and every
    bearer SubjectConfirmationData names this ACS as its Recipient (pysaml2 checks the Recipient
    only when given conversation info, which an ACS never has)."""
    conditions = assertion.conditions
    audiences = {
        (audience.text or "").strip()
        for restriction in (conditions.audience_restriction if conditions is not None else [])
        for audience in restriction.audience or []
    }
    if sp_entity_id(connection) not in audiences:
        raise SsoRefused("saml_audience_mismatch", detail="The assertion is not meant for this service.")
    confirmations = [
        c for c in (assertion.subject.subject_confirmation if assertion.subject is not None else [])
        if c.method == "urn:oasis:names:tc:SAML:2.0:cm:bearer"
    ]
    acs = acs_url(connection)
    if not confirmations or any(
        c.subject_confirmation_data is None or c.subject_confirmation_data.recipient != acs
        for c in confirmations
    ):
        raise SsoRefused("saml_recipient_mismatch", detail="The assertion was sent to another address.")


def _instant(value) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def _first(ava: dict, names) -> str:
    lowered = {k.lower(): v for k, v in ava.items()}
    for name in names:
        values = lowered.get(name.lower())
        if values and isinstance(values[0], str):
            return values[0]
    return ""


def _assertion(connection: Connection, response) -> Assertion:
    ava = response.ava or {}
    name_id = response.name_id.text.strip() if response.name_id is not None and response.name_id.text else ""
    if not name_id:
        raise SsoRefused("saml_subject_missing")
    groups = ava.get(connection.groups_attribute, []) if connection.groups_attribute else []
    contexts = []
    session_index = ""
    authenticated_at = None
    for statement in response.assertion.authn_statement or []:
        session_index = session_index or (statement.session_index or "")
        instant = _instant(statement.authn_instant)
        if instant is not None and authenticated_at is None:
            authenticated_at = instant.timestamp()
        context = statement.authn_context
        if context is not None and context.authn_context_class_ref is not None:
            contexts.append((context.authn_context_class_ref.text or "").strip())
    email = _first(ava, EMAIL_ATTRIBUTES) or (name_id if "@" in name_id else "")
    shown = {name: values if len(values) != 1 else values[0] for name, values in list(ava.items())[:50]}
    shown.update(NameID=name_id, AuthnContextClassRef=", ".join(contexts))
    return Assertion(
        issuer=connection.idp_entity_id,
        subject=name_id,
        email=email.strip(),
        email_verified=True,
        display_name=_first(ava, NAME_ATTRIBUTES).strip(),
        groups=tuple(g for g in groups if isinstance(g, str)),
        mfa_values=tuple(c for c in contexts if c),
        idp_session=session_index,
        authenticated_at=authenticated_at,
        claims=shown,
    )


# --- the verified answer between the ACS and the finish step ------------------------------------


def _result_context(flow) -> str:
    return f"sso.saml.result:{flow.org_id}:{flow.pk}"


def result_seal(flow, assertion: Assertion) -> str:
    from dataclasses import asdict

    from core.secrets import seal

    return seal(json.dumps(asdict(assertion)).encode(), context=_result_context(flow))


def result_unseal(flow) -> Assertion:
    from core.secrets import unseal

    if not flow.result_sealed:
        raise SsoRefused("state_invalid")
    try:
        data = json.loads(unseal(flow.result_sealed, context=_result_context(flow)))
    except Exception:  # noqa: BLE001 (a row edited or copied from another flow)
        raise SsoRefused("state_invalid") from None
    data["groups"], data["mfa_values"] = tuple(data["groups"]), tuple(data["mfa_values"])
    return Assertion(**data)


def result_keep(flow, assertion: Assertion) -> bool:
    """Keep the verified assertion, sealed, on the outstanding flow its InResponseTo named, for the
    finish step; one conditional UPDATE, so of two answers to one request only the first is kept."""
    from sso.models import Flow

    sealed = result_seal(flow, assertion)
    return bool(Flow.objects.for_org(flow.org_id)
                .filter(pk=flow.pk, result_sealed="", consumed_at__isnull=True)
                .update(result_sealed=sealed))
