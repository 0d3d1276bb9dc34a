"""The Single sign-on pages through HTTP as a browser sends it: connections (list, new, detail and
its edit form, refresh, test, delete) against the real OpenID Provider on loopback, and domains
verified against a DNS server of the tests' own. Who may see and change them, another org's ids as
404s, refusals shown on the page changing nothing, and the re-authentication a change needs."""

import json
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import SecurityPolicy
from audit.models import AuditEntry
from sso.api import SsoConnectionSerializer
from sso.connections import certificate_info
from sso.models import Connection, Domain, Flow
from tests.dns_server import LocalDns
from tests.factories import MemberFactory, OrgFactory, RoleFactory, TeamFactory, sign_in
from tests.helpers import audit_events, latest_event
from tests.sso import oidc_peer as peer
from tests.sso.oidc_peer import oidc_connection

oidc_peer_process, oidc_peer = peer.oidc_peer_process, peer.oidc_peer  # the fixtures
pytestmark = pytest.mark.django_db
ORIGIN = settings.IAM_CANONICAL_ORIGIN.rstrip("/")


def url(name, org, **kwargs):
    return reverse(f"sso:{name}", kwargs={"org": org.slug, **kwargs})


def certificate(days: int) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp.example.com")])
    now = timezone.now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=days)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def saml_connection(org, *days, slug="entra"):
    """A SAML connection row as the metadata import leaves it (certificates ending in `days`)."""
    connection = Connection(org=org, name="Entra", slug=slug, protocol="saml",
                            idp_entity_id="https://sts.example.com/", idp_sso_url="https://sts.example.com/sso",
                            accepted_mfa=["http://schemas.microsoft.com/claims/multipleauthn"])
    pems = [certificate(d) for d in days]
    connection.seal("idp_certificates", json.dumps(pems))
    connection.idp_certificates_info = [certificate_info(p) for p in pems]
    connection.save()
    return connection


def html(response) -> str:
    return response.content.decode()


def entries(org) -> int:
    return AuditEntry.objects.for_org(org).count()


@pytest.fixture
def org():
    return OrgFactory(slug="acme", name="Acme Robotics")


@pytest.fixture
def owner(org):
    return MemberFactory(org=org, role="owner")


@pytest.fixture
def browser(owner):
    return sign_in(Client(), owner.user, mfa=True)


def oidc_form(oidc_peer, org, slug="okta", **fields):
    client_id, secret = oidc_peer.register(f"{ORIGIN}/sso/{org.slug}/{slug}/oidc/callback/")
    return {"name": "Okta", "slug": slug, "issuer": oidc_peer.issuer, "client_id": client_id,
            "client_secret": secret, "scopes": "openid email profile", "default_role": "member",
            "jit": "on", "accepted_mfa": "mfa\n otp \n\nmfa", "groups_attribute": "groups", **fields}


def edit_form(connection, **fields):
    """The edit form as the page fills it in, with `fields` changed."""
    data = {"name": connection.name, "default_role": connection.default_role,
            "accepted_mfa": "\n".join(connection.accepted_mfa),
            "groups_attribute": connection.groups_attribute, "group_mappings": "",
            "client_id": connection.client_id, "scopes": connection.scopes}
    if connection.enabled:
        data["enabled"] = "on"
    if connection.jit:
        data["jit"] = "on"
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


# --- who sees what ---------------------------------------------------------------------------


def test_every_page_renders_for_an_owner(browser, org, oidc_peer):
    oidc = oidc_connection(org, oidc_peer, slug="okta", name="Okta", jit=True)
    saml = saml_connection(org, 10, 400)
    domain = Domain.objects.create(org=org, domain="acme.example")
    pages = {
        "connections": url("connections", org),
        "new oidc": url("connection-new", org, protocol="oidc"),
        "new saml": url("connection-new", org, protocol="saml"),
        "oidc detail": url("connection-detail", org, pk=oidc.pk),
        "saml detail": url("connection-detail", org, pk=saml.pk),
        "delete": url("connection-delete", org, pk=oidc.pk),
        "domains": url("domains", org),
        "remove domain": url("domain-remove", org, pk=domain.pk),
    }
    for name, path in pages.items():
        response = browser.get(path)
        assert response.status_code == 200, name
        assert f'href="{url("connections", org)}" aria-current="page">Single sign-on' in html(response), name
    listed = html(browser.get(pages["connections"]))
    assert pages["oidc detail"] in listed and pages["saml detail"] in listed
    assert f"{ORIGIN}/sso/acme/okta/oidc/login/" in listed
    assert f"{ORIGIN}/sso/acme/entra/saml/login/" in listed
    assert listed.count('data-testid="certificate-expiring"') == 1  # the SAML one, 10 days from its end
    assert pages["new oidc"] in listed and pages["new saml"] in listed
    assert "OpenID Connect" in listed and "SAML 2.0" in listed


def test_the_list_says_when_the_metadata_was_fetched_or_why_it_failed(browser, org, oidc_peer):
    connection = oidc_connection(org, oidc_peer, slug="okta", name="Okta")
    assert "never" in html(browser.get(url("connections", org)))
    Connection.objects.filter(pk=connection.pk).update(metadata_error="The provider answered HTTP 500.")
    assert "The provider answered HTTP 500." in html(browser.get(url("connections", org)))


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_a_member_without_sso_read_gets_403_and_no_nav_entry(org, role):
    connection = saml_connection(org, 400)
    domain = Domain.objects.create(org=org, domain="acme.example")
    client = sign_in(Client(), MemberFactory(org=org, role=role).user, mfa=True)
    for path in (url("connections", org), url("connection-detail", org, pk=connection.pk),
                 url("connection-new", org, protocol="oidc"), url("domains", org),
                 url("domain-remove", org, pk=domain.pk), url("connection-delete", org, pk=connection.pk)):
        assert client.get(path).status_code == 403, path
    for path in (url("connection-detail", org, pk=connection.pk), url("domains", org),
                 url("connection-delete", org, pk=connection.pk), url("domain-verify", org, pk=domain.pk)):
        assert client.post(path, {"name": "x", "domain": "other.example"}).status_code == 403, path
    assert Connection.objects.get().name == "Entra" and Domain.objects.count() == 1
    assert latest_event(org, "access.denied").data["required"] == "sso:write"
    members = html(client.get(f"/orgs/{org.slug}/members/"))
    assert url("connections", org) not in members


def test_a_reader_sees_the_pages_but_no_controls_and_cannot_change(org):
    connection = saml_connection(org, 400)
    client = sign_in(Client(), MemberFactory(org=org, role="billing_admin").user, mfa=True)
    listed = html(client.get(url("connections", org)))
    assert "Entra" in listed and url("connection-new", org, protocol="oidc") not in listed
    detail = client.get(url("connection-detail", org, pk=connection.pk))
    assert detail.status_code == 200 and "Save connection" not in html(detail)
    assert client.post(url("connection-detail", org, pk=connection.pk), {"name": "Mine"}).status_code == 403
    assert client.post(url("connection-test", org, pk=connection.pk)).status_code == 403
    assert Connection.objects.get().name == "Entra"


def test_another_orgs_connection_and_domain_are_404(browser, org):
    other = OrgFactory()
    theirs = saml_connection(other, 400)
    their_domain = Domain.objects.create(org=other, domain="other.example")
    for path in (url("connection-detail", org, pk=theirs.pk), url("connection-delete", org, pk=theirs.pk),
                 url("domain-remove", org, pk=their_domain.pk)):
        assert browser.get(path).status_code == 404, path
    connection_pages = ("connection-detail", "connection-delete", "connection-refresh", "connection-test")
    domain_pages = ("domain-verify", "domain-remove")
    for path in (*(url(name, org, pk=theirs.pk) for name in connection_pages),
                 *(url(name, org, pk=their_domain.pk) for name in domain_pages)):
        assert browser.post(path, {"name": "Mine"}).status_code == 404, path
    assert Connection.objects.get().name == "Entra" and Domain.objects.get().domain == "other.example"
    assert browser.get(url("connection-new", org, protocol="ldap")).status_code == 404


# --- creating a connection --------------------------------------------------------------------


def test_the_new_page_shows_what_to_enter_at_the_idp_before_the_slug_is_known(browser, org):
    oidc = html(browser.get(url("connection-new", org, protocol="oidc")))
    assert f"{ORIGIN}/sso/acme/&lt;slug&gt;/oidc/callback/" in oidc
    assert f"{ORIGIN}/sso/acme/&lt;slug&gt;/oidc/backchannel-logout/" in oidc
    assert "Accepted amr/acr values" in oidc and 'type="password" name="client_secret"' in oidc
    assert "idp_metadata_xml" not in oidc
    for idp in ("Okta", "Microsoft Entra ID", "Google Workspace", "Another provider"):
        assert f"<summary>{idp}</summary>" in oidc
    saml = html(browser.get(url("connection-new", org, protocol="saml")))
    assert f"{ORIGIN}/sso/acme/&lt;slug&gt;/saml/acs/" in saml
    assert f"{ORIGIN}/sso/acme/&lt;slug&gt;/saml/metadata/" in saml
    assert "Accepted AuthnContextClassRefs" in saml and "client_secret" not in saml
    assert "urn:oasis:names:tc:SAML:2.0:ac:classes:MultiFactor" in saml
    assert "http://schemas.microsoft.com/claims/multipleauthn" in saml


def test_an_owner_creates_an_oidc_connection_from_the_providers_discovery(browser, org, oidc_peer):
    form = oidc_form(oidc_peer, org)
    response = browser.post(url("connection-new", org, protocol="oidc"), form)
    connection = Connection.objects.get()
    assert response.status_code == 302
    assert response["Location"] == url("connection-detail", org, pk=connection.pk)
    assert (connection.name, connection.slug, connection.protocol, connection.issuer) == (
        "Okta", "okta", "oidc", oidc_peer.issuer)
    assert connection.jit is True and connection.accepted_mfa == ["mfa", "otp"]
    assert connection.unsealed("client_secret") == form["client_secret"]
    assert connection.provider_metadata["issuer"] == oidc_peer.issuer and connection.jwks["keys"]
    assert latest_event(org, "sso.connection_created").data == {"name": "Okta", "slug": "okta",
                                                                 "protocol": "oidc"}
    detail = browser.get(response["Location"])
    body = html(detail)
    shown = SsoConnectionSerializer(connection).data
    assert f'data-testid="redirect-uri">{shown["redirect_uri"]}<' in body
    assert f'data-testid="backchannel-logout-uri">{shown["backchannel_logout_uri"]}<' in body
    assert f'data-testid="login-url">{shown["login_url"]}<' in body
    assert 'data-testid="client-secret">set<' in body and form["client_secret"] not in body
    assert "Created Okta." in body


def test_a_new_saml_connection_reads_the_pasted_metadata(browser, org):
    saml = pytest.importorskip("sso.saml")
    if not hasattr(saml, "metadata_read"):
        pytest.skip("sso.saml.metadata_read is not there yet")
    pem = certificate(400)
    body = "".join(pem.strip().splitlines()[1:-1])
    xml = (
        '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
        'xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp.example.com/saml">'
        '<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        '<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>'
        f'{body}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>'
        '<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" '
        'Location="https://idp.example.com/saml/sso"/></md:IDPSSODescriptor></md:EntityDescriptor>')
    response = browser.post(url("connection-new", org, protocol="saml"), {
        "name": "Entra", "slug": "entra", "default_role": "viewer", "idp_metadata_xml": xml,
        "accepted_mfa": "http://schemas.microsoft.com/claims/multipleauthn", "groups_attribute": "groups"})
    assert response.status_code == 302, html(response)
    connection = Connection.objects.get()
    assert connection.idp_entity_id == "https://idp.example.com/saml" and connection.default_role == "viewer"
    detail = html(browser.get(response["Location"]))
    assert connection.idp_certificates_info[0]["fingerprint_sha256"] in detail
    assert f"{ORIGIN}/sso/acme/entra/saml/acs/" in detail


@pytest.mark.parametrize("fields, status, message", [
    ({"default_role": "owner"}, 400, "Select a valid choice."),
    ({"client_secret": ""}, 400, "This field is required."),
    ({"slug": "not a slug"}, 400, "Enter a valid “slug”"),
    ({"accepted_mfa": "x" * 201}, 400, "A list of strings."),
])
def test_a_bad_field_is_shown_on_the_form_and_nothing_is_created(browser, org, oidc_peer, fields, status,
                                                                  message):
    before = entries(org)
    response = browser.post(url("connection-new", org, protocol="oidc"), oidc_form(oidc_peer, org, **fields))
    assert response.status_code == status
    assert message in html(response)
    assert not Connection.objects.exists() and entries(org) == before


def test_a_duplicate_slug_is_refused_on_the_form(browser, org, oidc_peer):
    oidc_connection(org, oidc_peer, slug="okta", name="First")
    before = entries(org)
    response = browser.post(url("connection-new", org, protocol="oidc"), oidc_form(oidc_peer, org))
    assert response.status_code == 409 and "Already taken." in html(response)
    assert list(Connection.objects.values_list("name", flat=True)) == ["First"]
    assert entries(org) == before
    # The form keeps what was typed, and shows the URLs for the slug it was given.
    assert f"{ORIGIN}/sso/acme/okta/oidc/callback/" in html(response)


def test_a_loopback_issuer_is_refused_by_the_outbound_guard(browser, org, oidc_peer, settings):
    form = oidc_form(oidc_peer, org)
    settings.IAM_OUTBOUND_ALLOW_NETWORKS = []
    response = browser.post(url("connection-new", org, protocol="oidc"), form)
    assert response.status_code == 400
    assert 'id="id_issuer_error"' in html(response) and form["client_secret"] not in html(response)
    assert not Connection.objects.exists()
    assert not audit_events(org, "sso.connection_created").exists()


def test_creating_needs_a_fresh_sign_in(org, owner, oidc_peer):
    stale = sign_in(Client(), owner.user, mfa=True, auth_age=3600)
    response = stale.post(url("connection-new", org, protocol="oidc"), oidc_form(oidc_peer, org))
    assert response.status_code == 302 and response["Location"].startswith("/reauth/?next=")
    assert not Connection.objects.exists()
    added = stale.post(url("domains", org), {"domain": "acme.example"})
    assert added.status_code == 302 and added["Location"].startswith("/reauth/?next=")
    assert not Domain.objects.exists()
    kept = {name for name, _ in stale.session["iam_reauth_resume"]["fields"]}
    assert "domain" in kept and "client_secret" not in kept


# --- the connection's page --------------------------------------------------------------------


def test_the_edit_form_changes_settings_and_maps_groups_by_name(browser, org, oidc_peer):
    connection = oidc_connection(org, oidc_peer, slug="okta", name="Okta", jit=True, accepted_mfa=["mfa"])
    role = RoleFactory(org=org, name="Deployers")
    team = TeamFactory(org=org, name="Platform")
    secret = connection.unsealed("client_secret")
    mappings = ("CN=eng,OU=Groups = role:viewer\nrelease = custom_role:Deployers\n"
                "platform = team:Platform:admin\nops = team:Platform")
    response = browser.post(url("connection-detail", org, pk=connection.pk), edit_form(
        connection, name="Okta production", jit=None, accepted_mfa="mfa\nhwk", group_mappings=mappings))
    assert response.status_code == 302, html(response)
    connection.refresh_from_db()
    assert connection.name == "Okta production" and connection.jit is False
    assert connection.accepted_mfa == ["mfa", "hwk"]
    assert connection.group_mappings == [
        {"group": "CN=eng,OU=Groups", "role": "viewer"},
        {"group": "release", "custom_role": str(role.pk)},
        {"group": "platform", "team": str(team.pk), "team_role": "admin"},
        {"group": "ops", "team": str(team.pk), "team_role": "member"},
    ]
    assert connection.unsealed("client_secret") == secret  # a blank secret keeps the stored one
    assert latest_event(org, "sso.connection_updated").data == {
        "name": "Okta production", "fields": ["accepted_mfa", "group_mappings", "jit", "name"]}
    page = html(browser.get(url("connection-detail", org, pk=connection.pk)))
    assert "release = custom_role:Deployers" in page and "platform = team:Platform:admin" in page


def test_switching_a_connection_off_and_writing_notes(browser, org):
    connection = saml_connection(org, 400)
    response = browser.post(url("connection-detail", org, pk=connection.pk),
                            edit_form(connection, enabled=None, notes="Owned by IT (Jane)."))
    assert response.status_code == 302
    connection.refresh_from_db()
    assert connection.enabled is False and connection.notes == "Owned by IT (Jane)."
    assert latest_event(org, "sso.connection_updated").data["fields"] == ["enabled", "notes"]
    assert "Owned by IT (Jane)." in html(browser.get(url("connection-detail", org, pk=connection.pk)))
    assert "Disabled" in html(browser.get(url("connections", org)))


def test_a_new_client_secret_replaces_the_old_and_is_never_shown(browser, org, oidc_peer):
    connection = oidc_connection(org, oidc_peer, slug="okta", name="Okta")
    response = browser.post(url("connection-detail", org, pk=connection.pk),
                            edit_form(connection, client_secret="a-new-secret-value"))
    assert response.status_code == 302
    assert Connection.objects.get().unsealed("client_secret") == "a-new-secret-value"
    assert latest_event(org, "sso.connection_updated").data["fields"] == ["client_secret"]
    assert "a-new-secret-value" not in html(browser.get(response["Location"]))


@pytest.mark.parametrize("mappings, message", [
    ("eng = team:Nobody:admin", "no team named “Nobody” in this organization."),
    ("eng = custom_role:Ghost", "no role named “Ghost” in this organization."),
    ("eng = role:owner", "A group maps to member, viewer or billing_admin, never Owner."),
    ("just a group", "write “group = role:viewer”"),
])
def test_a_refused_change_is_shown_and_changes_nothing(browser, org, mappings, message):
    connection = saml_connection(org, 400)
    TeamFactory(org=OrgFactory(), name="Nobody")  # another org's team reads as missing
    before = entries(org)
    response = browser.post(url("connection-detail", org, pk=connection.pk),
                            edit_form(connection, name="Renamed", group_mappings=mappings))
    assert response.status_code == 400
    assert message in html(response)
    assert Connection.objects.get().name == "Entra" and Connection.objects.get().group_mappings == []
    assert entries(org) == before


def test_the_saml_page_lists_the_certificates_and_marks_the_expiring_one(browser, org):
    connection = saml_connection(org, 10, 400)
    page = html(browser.get(url("connection-detail", org, pk=connection.pk)))
    soon, later = connection.idp_certificates_info
    assert soon["fingerprint_sha256"] in page and later["fingerprint_sha256"] in page
    assert page.count('data-testid="certificate-expiring"') == 1
    assert page.index(soon["fingerprint_sha256"]) < page.index('data-testid="certificate-expiring"')
    assert page.index('data-testid="certificate-expiring"') < page.index(later["fingerprint_sha256"])
    shown = SsoConnectionSerializer(connection).data
    for field in ("sp_entity_id", "sp_acs_url", "sp_metadata_url", "login_url"):
        assert shown[field] in page
    assert "CN=idp.example.com" in page


def test_refresh_fetches_again_and_a_failure_keeps_what_was_stored(browser, org, oidc_peer, settings):
    connection = oidc_connection(org, oidc_peer, slug="okta", name="Okta")
    Connection.objects.filter(pk=connection.pk).update(jwks={"keys": []})
    response = browser.post(url("connection-refresh", org, pk=connection.pk), follow=True)
    assert "the IdP published changes" in html(response)
    assert Connection.objects.get().jwks["keys"]
    settings.IAM_OUTBOUND_ALLOW_NETWORKS = []
    response = browser.post(url("connection-refresh", org, pk=connection.pk), follow=True)
    assert "The refresh failed" in html(response)
    stored = Connection.objects.get()
    assert stored.jwks["keys"] and stored.metadata_error
    assert latest_event(org, "sso.metadata_refreshed").data["changed"] is False


def test_test_connection_runs_the_round_trip_and_shows_the_claims(browser, org, owner, oidc_peer):
    connection = oidc_connection(org, oidc_peer, slug="okta", name="Okta", accepted_mfa=["otp"])
    response = browser.post(url("connection-test", org, pk=connection.pk))
    assert response.status_code == 302 and response["Location"].startswith(oidc_peer.issuer)
    flow = Flow.objects.get()
    assert flow.test is True and flow.started_by_id == owner.user_id
    back = urlsplit(oidc_peer.login(response["Location"], "carol-0003", amr="pwd otp"))
    result = browser.get(f"{back.path}?{back.query}")
    assert result.status_code == 200
    body = html(result)
    assert "Test of Okta: the round trip worked" in body and "carol@acme.example" in body
    assert "carol-0003" in body and "otp" in body
    assert f'href="/orgs/{org.slug}/sso/"' in body  # the org's side navigation, as on every org page
    assert latest_event(org, "sso.connection_tested").data["reason"] == "ok"
    assert not audit_events(org, "sso.login_accepted").exists()


def test_a_disabled_connection_cannot_be_tested(browser, org, oidc_peer):
    connection = oidc_connection(org, oidc_peer, slug="okta", name="Okta", enabled=False)
    response = browser.post(url("connection-test", org, pk=connection.pk), follow=True)
    assert "Enable the connection first" in html(response)
    assert not Flow.objects.exists()


def test_testing_a_saml_connection_starts_a_test_flow_at_the_idp(browser, org):
    from sso.saml import sp_keypair

    connection = saml_connection(org, 400)
    key, cert = sp_keypair()
    connection.seal("sp_private_key", key)
    connection.sp_certificate = cert
    connection.save()
    page = html(browser.get(url("connection-detail", org, pk=connection.pk)))
    assert 'class="button" disabled>Test connection' not in page
    response = browser.post(url("connection-test", org, pk=connection.pk))
    assert response.status_code == 302 and response["Location"].startswith(connection.idp_sso_url)
    assert Flow.objects.get().test is True


def test_delete_after_confirmation_and_not_the_last_one_when_sso_is_required(browser, org):
    connection = saml_connection(org, 400)
    SecurityPolicy.objects.update_or_create(org=org, defaults={"sso_required": True})
    refused = browser.post(url("connection-delete", org, pk=connection.pk), {"confirm": "yes"})
    assert refused.status_code == 409 and "switch" in html(refused)
    assert Connection.objects.exists()
    SecurityPolicy.objects.filter(org=org).update(sso_required=False)
    response = browser.post(url("connection-delete", org, pk=connection.pk), {"confirm": "yes"})
    assert response.status_code == 302 and response["Location"] == url("connections", org)
    assert not Connection.objects.exists()
    assert latest_event(org, "sso.connection_deleted").data == {"name": "Entra", "slug": "entra"}


# --- domains ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nameserver():
    server = LocalDns()
    yield server
    server.close()


@pytest.fixture
def dns(nameserver, settings):
    settings.IAM_DNS_NAMESERVERS = [nameserver.nameserver]
    nameserver.txt = {}
    return nameserver


def test_a_domain_is_added_shown_with_its_txt_record_and_verified(browser, org, dns):
    response = browser.post(url("domains", org), {"domain": "Acme.Example"})
    assert response.status_code == 302 and response["Location"] == url("domains", org)
    domain = Domain.objects.get()
    page = html(browser.get(url("domains", org)))
    assert domain.domain == "acme.example" and "Not verified" in page
    assert f'data-testid="txt-name">{domain.txt_name}<' in page
    assert f'data-testid="txt-value">{domain.txt_value}<' in page
    missing = html(browser.post(url("domain-verify", org, pk=domain.pk), follow=True))
    assert f"No TXT record {domain.txt_name} with the value {domain.txt_value} was found." in missing
    assert not Domain.objects.get().verified
    dns.txt = {domain.txt_name: ["v=spf1 -all", domain.txt_value]}
    verified = html(browser.post(url("domain-verify", org, pk=domain.pk), follow=True))
    assert "acme.example is verified." in verified and "Verified" in verified
    assert Domain.objects.get().verified
    assert latest_event(org, "sso.domain_verified").data == {"domain": "acme.example"}


def test_a_domain_another_org_verified_is_refused_with_why(browser, org, dns):
    Domain.objects.create(org=OrgFactory(), domain="acme.example", verified_at="2026-01-01T00:00:00Z")
    browser.post(url("domains", org), {"domain": "acme.example"})
    mine = Domain.objects.get(org=org)
    dns.txt = {mine.txt_name: [mine.txt_value]}
    page = html(browser.post(url("domain-verify", org, pk=mine.pk), follow=True))
    assert "Another organization has verified this domain." in page
    assert not Domain.objects.get(pk=mine.pk).verified
    assert latest_event(org, "sso.domain_verify_failed").data["reason"] == "claimed_elsewhere"


def test_a_dns_failure_says_so_and_changes_nothing(browser, org, settings, monkeypatch):
    import core.resolver

    domain = Domain.objects.create(org=org, domain="acme.example")
    settings.IAM_DNS_NAMESERVERS = ["127.0.0.1:9"]  # nothing answers there
    monkeypatch.setattr(core.resolver, "LIFETIME_SECONDS", 0.5)
    page = html(browser.post(url("domain-verify", org, pk=domain.pk), follow=True))
    assert "The DNS lookup failed; try again shortly." in page
    assert not Domain.objects.get().verified


@pytest.mark.parametrize("value, status, message", [
    ("localhost", 400, "A domain name such as example.com."),
    ("acme.example", 409, "Listed."),
])
def test_a_refused_domain_is_shown_on_the_form(browser, org, value, status, message):
    Domain.objects.create(org=org, domain="acme.example")
    before = entries(org)
    response = browser.post(url("domains", org), {"domain": value})
    assert response.status_code == status and message in html(response)
    assert Domain.objects.count() == 1 and entries(org) == before


def test_a_domain_is_removed_after_confirmation(browser, org):
    domain = Domain.objects.create(org=org, domain="acme.example")
    confirm = html(browser.get(url("domain-remove", org, pk=domain.pk)))
    assert "Remove domain “acme.example”?" in confirm
    response = browser.post(url("domain-remove", org, pk=domain.pk), {"confirm": "yes"})
    assert response.status_code == 302 and not Domain.objects.exists()
    assert latest_event(org, "sso.domain_removed").data == {"domain": "acme.example", "verified": False}
