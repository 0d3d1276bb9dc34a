"""A real SAML identity provider for the SAML tests: pysaml2's IdP (`saml2.server.Server`, with
xmlsec1), its own key and certificate generated per test session. It reads our AuthnRequest from
the login's redirect and answers with a signed response for the person the test chooses, exactly
as an IdP's auto-posting form would deliver it to our ACS.

Without xmlsec1 the tests that use it skip, unless IAM_REQUIRE_SERVICES=1 (CI), where they fail.
"""

import base64
import os
import shutil
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

IDP_ENTITY = "https://idp.acme.example/saml/metadata"
IDP_SSO = "https://idp.acme.example/saml/sso"
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
EMAIL_FORMAT = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
PASSWORD_CONTEXT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
MFA_CONTEXT = "urn:oasis:names:tc:SAML:2.0:ac:classes:MultiFactor"
SHA256_SIGNATURE = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256_DIGEST = "http://www.w3.org/2001/04/xmlenc#sha256"


def keypair(directory, name="idp"):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365)).sign(key, hashes.SHA256()))
    key_file, cert_file = os.path.join(directory, f"{name}.key"), os.path.join(directory, f"{name}.crt")
    with open(key_file, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    with open(cert_file, "w") as handle:
        handle.write(pem)
    return key_file, cert_file, pem


class SamlIdp:
    def __init__(self, directory, sso_url: str = IDP_SSO):
        self.directory = directory
        self.sso_url = sso_url
        self.key_file, self.cert_file, self.certificate = keypair(directory)

    def _config(self, sp_metadata: str = ""):
        from saml2.config import IdPConfig

        config = IdPConfig()
        config.load({
            "entityid": IDP_ENTITY,
            "xmlsec_binary": shutil.which("xmlsec1"),
            "key_file": self.key_file, "cert_file": self.cert_file,
            "metadata": {"inline": [sp_metadata]} if sp_metadata else {},
            "service": {"idp": {
                "endpoints": {"single_sign_on_service": [(self.sso_url, REDIRECT)]},
                "name_id_format": [EMAIL_FORMAT],
                "policy": {"default": {"lifetime": {"minutes": 5}, "attribute_restrictions": None,
                                       "name_form": "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"}},
            }},
        })
        return config

    def metadata(self) -> str:
        from saml2.metadata import entity_descriptor

        return str(entity_descriptor(self._config()))

    def respond(self, connection, login_location: str, *, name_id="carol@acme.example", email=None,
                name="Carol", groups=(), context=PASSWORD_CONTEXT, sign_assertion=True, sign_response=False,
                in_response_to=None, sign_alg=SHA256_SIGNATURE, digest_alg=SHA256_DIGEST, audience=None,
                destination=None, unsolicited=False, recipient=None, audience_restriction=True,
                authn_instant=None) -> tuple[str, str]:
        """(SAMLResponse, RelayState) answering the AuthnRequest in our login's redirect. `recipient`
        puts another address in the SubjectConfirmationData alone (the Destination stays ours);
        `audience_restriction=False` signs an assertion whose Conditions name no audience."""
        from saml2 import BINDING_HTTP_REDIRECT
        from saml2.saml import NameID
        from saml2.server import Server

        from sso.saml import sp_metadata

        query = {k: v[0] for k, v in parse_qs(urlsplit(login_location).query).items()}
        redirect_signature_verify(connection, login_location)
        server = Server(config=self._config(sp_metadata(connection)))
        request = server.parse_authn_request(query["SAMLRequest"], BINDING_HTTP_REDIRECT)
        identity = {"mail": [email if email is not None else name_id], "displayName": [name]}
        request_id = None if unsolicited else (in_response_to or request.message.id)
        extra = {}
        if recipient:
            extra["farg"] = {"assertion": {"subject": {"subject_confirmation": {
                "method": "urn:oasis:names:tc:SAML:2.0:cm:bearer",
                "subject_confirmation_data": {"recipient": recipient, "in_response_to": request_id}}}}}
        if not audience_restriction:
            from saml2.assertion import Policy

            policy = Policy(mds=server.metadata)
            policy.conditions = _conditions_without_audience
            extra["release_policy"] = policy
        if groups:
            identity["groups"] = list(groups)
        xml = server.create_authn_response(
            identity, in_response_to=request_id,
            destination=destination or request.message.assertion_consumer_service_url,
            sp_entity_id=audience or request.message.issuer.text,
            name_id=NameID(format=EMAIL_FORMAT, text=name_id),
            authn={"class_ref": context, "authn_auth": IDP_ENTITY,
                   **({"authn_instant": authn_instant} if authn_instant else {})},
            sign_assertion=sign_assertion, sign_response=sign_response, sign_alg=sign_alg,
            digest_alg=digest_alg, **extra)
        return base64.b64encode(str(xml).encode()).decode(), query.get("RelayState", "")


def _conditions_without_audience(sp_entity_id):
    from saml2 import saml
    from saml2.assertion import factory, instant
    from saml2.time_util import in_a_while

    return factory(saml.Conditions, not_before=instant(), not_on_or_after=in_a_while(minutes=5))


def redirect_signature_verify(connection, login_location: str) -> None:
    """As an IdP wanting signed requests checks ours: RSA-SHA256 over the query's own encoding of
    SAMLRequest, RelayState and SigAlg, with the certificate in our SP metadata. Raises if not."""
    from cryptography.hazmat.primitives.asymmetric import padding

    raw = dict(part.split("=", 1) for part in urlsplit(login_location).query.split("&"))
    query = {k: v[0] for k, v in parse_qs(urlsplit(login_location).query).items()}
    assert query["SigAlg"] == SHA256_SIGNATURE, query["SigAlg"]
    names = ("SAMLRequest", "RelayState", "SigAlg")
    signed = "&".join(f"{name}={raw[name]}" for name in names if name in raw)
    certificate = x509.load_pem_x509_certificate(connection.sp_certificate.encode())
    certificate.public_key().verify(base64.b64decode(query["Signature"]), signed.encode(),
                                    padding.PKCS1v15(), hashes.SHA256())


def xmlsec_missing_reason() -> str | None:
    if shutil.which("xmlsec1") is None:
        return "xmlsec1 is missing (apt-get install xmlsec1)"
    return None


@pytest.fixture(scope="session")
def saml_idp(tmp_path_factory):
    reason = xmlsec_missing_reason()
    if reason:
        if os.environ.get("IAM_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason} (IAM_REQUIRE_SERVICES=1 requires it)")
        pytest.skip(reason)
    return SamlIdp(str(tmp_path_factory.mktemp("saml-idp")))


def saml_connection(org, idp: SamlIdp, *, slug="acme-saml", **fields):
    """A saved SAML connection of `org` to the IdP, through the same effect the API uses."""
    from audit.actors import Actor
    from sso.connections import connection_create

    return connection_create(org=org, actor=Actor.system("test"), name=fields.pop("name", "Acme SAML"),
                             slug=slug, protocol="saml", idp_metadata_xml=idp.metadata(), **fields)


class SamlIdpServer:
    """The IdP on loopback for the browser: GET /sso with our AuthnRequest answers with the page an
    IdP answers with, a form that POSTs the signed response to our ACS as soon as it loads. It signs
    in whoever `person` names (set by the test)."""

    def __init__(self, directory):
        import threading
        from html import escape
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        outer = self
        self.person = {"name_id": "carol@acme.example"}
        self.connection = None

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                from sso.saml import acs_url

                location = f"http://127.0.0.1:{outer.port}{self.path}"
                saml_response, relay = outer.idp.respond(outer.connection, location, **outer.person)
                action = escape(acs_url(outer.connection))
                page = (f'<html><body><h1>Test SAML IdP</h1><form method="post" action="{action}">'
                        f'<input type="hidden" name="SAMLResponse" value="{escape(saml_response)}">'
                        f'<input type="hidden" name="RelayState" value="{escape(relay)}">'
                        '<button type="submit">Continue</button></form>'
                        "<script>document.forms[0].submit()</script></body></html>").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.idp = SamlIdp(directory, sso_url=f"http://127.0.0.1:{self.port}/sso")
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
