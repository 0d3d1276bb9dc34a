"""The admin API's `sso-connections` (contract: SSO): creating an OIDC connection discovers the
provider through the outbound guard (here the real OpenID Provider on loopback), secrets are
write-only and sealed, roles an IdP may hand out stop below Owner, and a refusal changes nothing."""

import pytest
from django.conf import settings
from django.utils import timezone

from accounts.models import SecurityPolicy
from rbac.models import Team
from sso.models import Connection
from tests.factories import OrgFactory, TeamFactory
from tests.helpers import audit_events, latest_event
from tests.sso import oidc_peer as peer
from tests.trust.conftest import admin_client

oidc_peer_process, oidc_peer = peer.oidc_peer_process, peer.oidc_peer  # the fixtures
pytestmark = pytest.mark.django_db


@pytest.fixture
def org():
    return OrgFactory(slug="acme")


def _client_at_peer(oidc_peer, org, slug="okta"):
    redirect = f"{settings.IAM_CANONICAL_ORIGIN.rstrip('/')}/sso/{org.slug}/{slug}/oidc/callback/"
    return oidc_peer.register(redirect)


def _create(api, org, **fields):
    return api.post(f"/api/v1/orgs/{org.slug}/sso-connections", fields, format="json")


def _oidc_body(oidc_peer, org, **fields):
    client_id, secret = _client_at_peer(oidc_peer, org)
    return {"name": "Okta", "slug": "okta", "protocol": "oidc", "issuer": oidc_peer.issuer,
            "client_id": client_id, "client_secret": secret, "accepted_amr": ["mfa"], "jit": True, **fields}


def test_an_oidc_connection_is_created_from_discovery_with_its_secret_sealed(oidc_peer, org):
    api = admin_client(org)
    body = _oidc_body(oidc_peer, org)
    response = _create(api, org, **body)
    assert response.status_code == 201, response.content
    data = response.json()
    origin = settings.IAM_CANONICAL_ORIGIN.rstrip("/")
    assert data["protocol"] == "oidc" and data["issuer"] == oidc_peer.issuer
    assert data["redirect_uri"] == f"{origin}/sso/acme/okta/oidc/callback/"
    assert data["login_url"] == f"{origin}/sso/acme/okta/oidc/login/"
    assert data["accepted_amr"] == ["mfa"] and data["client_secret_set"] is True
    assert "client_secret" not in data and body["client_secret"] not in response.content.decode()
    row = Connection.objects.get()
    assert body["client_secret"] not in row.client_secret_sealed
    assert row.unsealed("client_secret") == body["client_secret"]
    assert row.provider_metadata["issuer"] == oidc_peer.issuer and row.jwks["keys"]
    entry = latest_event(org, "sso.connection_created")
    assert entry.data == {"name": "Okta", "slug": "okta", "protocol": "oidc"}
    assert body["client_secret"] not in str(entry.data)
    listed = api.get(f"/api/v1/orgs/{org.slug}/sso-connections").json()
    assert [c["slug"] for c in listed["results"]] == ["okta"]


def test_the_guard_refuses_a_loopback_issuer_unless_allow_listed(oidc_peer, org, settings):
    settings.IAM_OUTBOUND_ALLOW_NETWORKS = []
    response = _create(admin_client(org), org, **_oidc_body(oidc_peer, org))
    assert response.status_code == 400
    assert response.json()["error"] == "provider_unreachable"
    assert "issuer" in response.json()["fields"]
    assert not Connection.objects.exists()
    assert not audit_events(org, "sso.connection_created").exists()


@pytest.mark.parametrize("fields, field", [
    ({"default_role": "owner"}, "default_role"),
    ({"group_mappings": [{"group": "admins", "role": "owner"}]}, "group_mappings"),
    ({"group_mappings": [{"group": "admins"}]}, "group_mappings"),
    ({"accepted_amr": ["x" * 201]}, "accepted_amr"),
    ({"client_secret": ""}, "client_secret"),
])
def test_bad_fields_are_refused_and_nothing_is_created(oidc_peer, org, fields, field):
    response = _create(admin_client(org), org, **_oidc_body(oidc_peer, org, **fields))
    assert response.status_code == 400, response.content
    assert field in response.json().get("fields", {}), response.json()
    assert not Connection.objects.exists()


def test_a_mapping_to_another_orgs_team_reads_as_missing(oidc_peer, org):
    foreign = TeamFactory(org=OrgFactory())
    mine = TeamFactory(org=org)
    body = _oidc_body(oidc_peer, org, group_mappings=[{"group": "eng", "team": str(foreign.pk)}])
    response = _create(admin_client(org), org, **body)
    assert response.status_code == 400 and "No such team" in str(response.json()["fields"])
    body = _oidc_body(oidc_peer, org, group_mappings=[{"group": "eng", "team": str(mine.pk),
                                                      "team_role": "admin"}])
    assert _create(admin_client(org), org, **body).status_code == 201
    assert Connection.objects.get().group_mappings == [{"group": "eng", "team": str(mine.pk),
                                                        "team_role": "admin"}]
    assert Team.objects.for_org(org).count() == 1


def test_a_slug_is_unique_in_the_org(oidc_peer, org):
    api = admin_client(org)
    assert _create(api, org, **_oidc_body(oidc_peer, org)).status_code == 201
    again = _create(api, org, **_oidc_body(oidc_peer, org))
    assert again.status_code == 409 and again.json()["error"] == "duplicate"
    assert Connection.objects.count() == 1


def test_a_new_client_secret_replaces_the_old_and_is_never_shown(oidc_peer, org):
    api = admin_client(org)
    created = _create(api, org, **_oidc_body(oidc_peer, org)).json()
    response = api.patch(f"/api/v1/orgs/{org.slug}/sso-connections/{created['id']}",
                         {"client_secret": "a-new-secret-value", "jit": False, "name": "Okta"}, format="json")
    assert response.status_code == 200, response.content
    assert "a-new-secret-value" not in response.content.decode()
    assert Connection.objects.get().unsealed("client_secret") == "a-new-secret-value"
    assert latest_event(org, "sso.connection_updated").data == {"name": "Okta",
                                                                 "fields": ["client_secret", "jit"]}


def test_the_last_connection_of_an_org_that_requires_sso_cannot_go(oidc_peer, org):
    api = admin_client(org)
    created = _create(api, org, **_oidc_body(oidc_peer, org)).json()
    SecurityPolicy.objects.update_or_create(org=org, defaults={"sso_required": True})
    refused = api.delete(f"/api/v1/orgs/{org.slug}/sso-connections/{created['id']}")
    assert refused.status_code == 409 and refused.json()["error"] == "sso_required"
    assert Connection.objects.exists()
    assert latest_event(org, "policy.denied").data == {"reason": "last_sso_connection"}
    SecurityPolicy.objects.filter(org=org).update(sso_required=False)
    assert api.delete(f"/api/v1/orgs/{org.slug}/sso-connections/{created['id']}").status_code == 204
    assert latest_event(org, "sso.connection_deleted").data == {"name": "Okta", "slug": "okta"}


def test_another_orgs_connection_is_a_404(oidc_peer, org):
    created = _create(admin_client(org), org, **_oidc_body(oidc_peer, org)).json()
    other = OrgFactory()
    theirs = admin_client(other)
    base = f"/api/v1/orgs/{other.slug}/sso-connections/{created['id']}"
    assert theirs.get(base).status_code == 404
    assert theirs.patch(base, {"jit": False}, format="json").status_code == 404
    assert theirs.delete(base).status_code == 404
    assert Connection.objects.get().jit is True


def test_refreshing_the_metadata_is_recorded(oidc_peer, org):
    api = admin_client(org)
    created = _create(api, org, **_oidc_body(oidc_peer, org)).json()
    before = Connection.objects.get().metadata_fetched_at
    response = api.post(f"/api/v1/orgs/{org.slug}/sso-connections/{created['id']}/refresh-metadata")
    assert response.status_code == 200
    assert Connection.objects.get().metadata_fetched_at >= before
    assert latest_event(org, "sso.metadata_refreshed").data == {"connection": "okta", "changed": False,
                                                                 "reason": "ok"}


def test_a_failed_refresh_keeps_what_was_stored(oidc_peer, org, settings):
    api = admin_client(org)
    created = _create(api, org, **_oidc_body(oidc_peer, org)).json()
    kept = Connection.objects.get().provider_metadata
    settings.IAM_OUTBOUND_ALLOW_NETWORKS = []
    response = api.post(f"/api/v1/orgs/{org.slug}/sso-connections/{created['id']}/refresh-metadata")
    assert response.status_code == 200
    row = Connection.objects.get()
    assert row.provider_metadata == kept and row.metadata_error
    assert latest_event(org, "sso.metadata_refreshed").data["reason"] == "provider_unreachable"
    assert response.json()["metadata_error"] == row.metadata_error
    assert timezone.now()
