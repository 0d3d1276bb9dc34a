"""Re-authenticating at the IdP (for people who sign in only through SSO), end to end against the
loopback OpenID Provider: the re-authentication page offers it, the provider is asked to
authenticate afresh (`prompt=login`, `max_age=0`), and only an ID token whose `auth_time` is new
refreshes the session's proof."""

import time

import pytest

from accounts.policy import AUTH_TIME_KEY
from sso.models import Identity
from tests.factories import OrgFactory
from tests.helpers import latest_event
from tests.sso import oidc_peer as peer
from tests.sso.oidc_peer import oidc_connection
from tests.sso.test_oidc import _callback_path, _query, acme, round_trip

oidc_peer_process, oidc_peer = peer.oidc_peer_process, peer.oidc_peer  # the fixtures
pytestmark = pytest.mark.django_db


def _signed_in(client, oidc_peer):
    org = acme()
    connection = oidc_connection(org, oidc_peer, jit=True)
    assert round_trip(client, oidc_peer, connection).status_code == 302
    session = client.session
    session[AUTH_TIME_KEY] = time.time() - 3600  # an hour ago: a change would need re-authentication
    session.save()
    return org, connection


def test_the_reauth_page_offers_the_idp_and_the_idp_authenticates_afresh(client, oidc_peer):
    org, connection = _signed_in(client, oidc_peer)
    target = f"/orgs/{org.slug}/sso/"
    page = client.get("/reauth/", {"next": target}).content.decode()
    link = f"/sso/reauth/{connection.pk}/?next=%2Forgs%2F{org.slug}%2Fsso%2F"
    assert link in page.replace("&amp;", "&")
    location = client.get(link)["Location"]
    assert _query(location)["prompt"] == "login" and _query(location)["max_age"] == "0"
    back = oidc_peer.login(location, "alice-0001")
    response = client.get(_callback_path(back))
    assert response.status_code == 302 and response["Location"] == target
    assert client.session[AUTH_TIME_KEY] > time.time() - 60
    assert latest_event(org, "reauth.success").data == {"method": "sso"}


def test_an_id_token_from_an_earlier_authentication_does_not_re_authenticate(client, oidc_peer):
    org, connection = _signed_in(client, oidc_peer)
    location = client.get(f"/sso/reauth/{connection.pk}/")["Location"]
    claims = oidc_peer.claims(connection.client_id, _query(location)["nonce"], sub="alice-0001",
                              auth_time=int(time.time()) - 600)
    oidc_peer.next_id_token(oidc_peer.sign(claims))
    back = oidc_peer.login(location, "alice-0001")
    response = client.get(_callback_path(back))
    assert response.status_code == 403
    assert client.session[AUTH_TIME_KEY] < time.time() - 3000
    assert latest_event(org, "sso.login_refused").data["reason"] == "reauth_not_fresh"


def test_another_persons_connection_is_a_404(client, oidc_peer):
    _signed_in(client, oidc_peer)
    other = oidc_connection(OrgFactory(), oidc_peer, slug="other-idp")
    assert not Identity.objects.filter(connection=other).exists()
    assert client.get(f"/sso/reauth/{other.pk}/").status_code == 404


def test_a_switched_off_connections_provider_still_ends_the_sessions_it_started(oidc_peer):
    from sso.models import Connection, IdpSession
    from tests.sso.test_oidc import _logout
    from tests.sso.test_oidc import _signed_in as signed_in_at

    org = acme()
    connection = oidc_connection(org, oidc_peer, jit=True)
    client, identity, sid = signed_in_at(oidc_peer, connection)
    Connection.objects.filter(pk=connection.pk).update(enabled=False)
    assert client.get(f"/sso/{org.slug}/{connection.slug}/oidc/login/").status_code == 404
    token = oidc_peer.logout_token(connection.client_id, "alice-0001", sid)
    assert _logout(connection, token).status_code == 200
    assert "_auth_user_id" not in client.session
    assert not IdpSession.objects.filter(identity=identity).exists()
