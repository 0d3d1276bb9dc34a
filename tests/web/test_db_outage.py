"""Fault drill: the database goes away for real, as in a restart under load (the open connection
dies and new ones are refused), and every surface answers 503 with Retry-After in its own format;
once it is back the next request works, and nothing was written meanwhile.

The drill breaks the real connection on both backends. On PostgreSQL a second connection
terminates this one's backend (pg_terminate_backend) and reconnects go to a port nobody listens on.
On SQLite the test database lives in memory and closing its only connection would destroy it, so
the connection is set aside and reconnects go to a file that cannot be opened; sqlite3 raises
OperationalError either way. These tests commit (transaction=True): a terminated backend takes any
open transaction with it.
"""

import socket
import time
from contextlib import contextmanager

import pytest
from django.db import close_old_connections, connection
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import UserSession
from core.models import Organization
from core.permissions import Perm
from tests.agents.conftest import build_world, post_form
from tests.factories import PASSWORD, api_key_for, sign_in
from tests.helpers import audit_events, last_seq
from tests.scim.conftest import SCIM_JSON, scim_for

pytestmark = pytest.mark.django_db(transaction=True)

SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _terminate_backend() -> None:
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    killer = connection.get_new_connection(connection.get_connection_params())
    try:
        killer.autocommit = True
        killer.execute("SELECT pg_terminate_backend(%s)", [pid])
        deadline = time.monotonic() + 5
        while killer.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
            assert time.monotonic() < deadline, "the backend did not end"
            time.sleep(0.01)
    finally:
        killer.close()


@contextmanager
def database_down():
    """The default database is unreachable inside the block; afterwards it is the same database,
    working, on a fresh connection (PostgreSQL) or the connection set aside (SQLite)."""
    params = connection.settings_dict
    saved_params = dict(params)
    set_aside = None
    if connection.vendor == "postgresql":
        _terminate_backend()
        params.update(HOST="127.0.0.1", PORT=str(_closed_port()))
    else:
        connection.ensure_connection()
        set_aside, connection.connection = connection.connection, None
        params["NAME"] = "/nonexistent-directory/iam.sqlite3"
    try:
        yield
    finally:
        close_old_connections()
        params.clear()
        params.update(saved_params)
        if set_aside is not None:
            connection.connection = set_aside
        else:
            connection.close()
        connection.errors_occurred = False


def between_requests():
    # What Django does when a request finishes (the test client skips it): a connection that
    # failed is closed, so the next request reconnects, to a database that still refuses.
    close_old_connections()


def assert_retry_after(response, status: int = 503):
    assert response.status_code == status, response.content[:300]
    assert int(response["Retry-After"]) > 0


def test_every_surface_answers_503_in_its_own_format_while_the_database_is_down():
    world = build_world()
    org = world.org
    _, key = api_key_for(org, [Perm.MEMBER_READ], created_by=world.owner.user)
    api = APIClient(raise_request_exception=False, HTTP_AUTHORIZATION=f"Bearer {key}")
    browser = sign_in(Client(raise_request_exception=False), world.owner.user)
    anonymous = Client(raise_request_exception=False)
    scim = scim_for(org)
    scim.client.raise_request_exception = False
    seq, sessions = last_seq(org), UserSession.objects.count()

    with database_down():
        # The connection that was open dies under the first request (a view: the token grant).
        token = post_form(anonymous, world.url("token"), {"grant_type": "client_credentials"},
                          auth=(world.agent.client_id, world.agent_secret))
        assert_retry_after(token)
        assert token["Cache-Control"] == "no-store"
        assert token.json()["error"] == "temporarily_unavailable" and token.json()["error_description"]
        between_requests()

        # Admin API, in DRF (the API key is looked up while authenticating).
        listed = api.get(f"/api/v1/orgs/{org.slug}/members")
        assert_retry_after(listed)
        assert listed["Content-Type"] == "application/json"
        assert listed.json()["error"] == "unavailable" and listed.json()["detail"]
        between_requests()

        # Admin API with a session: the session is loaded by a middleware, before any view.
        by_session = browser.get(f"/api/v1/orgs/{org.slug}/members")
        assert_retry_after(by_session)
        assert by_session.json()["error"] == "unavailable"
        between_requests()

        # Pages: the signed-in page fails in a middleware, the login form in its view.
        page = browser.get(f"/orgs/{org.slug}/members/")
        assert_retry_after(page)
        assert page["Content-Type"].startswith("text/html") and b"Temporarily unavailable" in page.content
        between_requests()
        login = anonymous.post("/login/", {"email": world.owner.user.email, "password": PASSWORD})
        assert_retry_after(login)
        assert b"Temporarily unavailable" in login.content
        between_requests()

        # SCIM, chosen by its path: an IdP's request that carries a session cookie.
        scim.client.cookies = browser.cookies
        provisioning = scim.get("/Users")
        assert_retry_after(provisioning)
        assert provisioning["Content-Type"] == SCIM_JSON
        body = provisioning.json()
        assert body["schemas"] == [SCIM_ERROR] and body["status"] == "503" and body["detail"]

    # The database is back: the same rows, the next request works, and nothing was written.
    assert Organization.objects.filter(pk=org.pk).exists()
    assert last_seq(org) == seq and UserSession.objects.count() == sessions
    assert not audit_events(org, "token.issued").exists()
    again = post_form(anonymous, world.url("token"), {"grant_type": "client_credentials"},
                      auth=(world.agent.client_id, world.agent_secret))
    assert again.status_code == 200 and again.json()["access_token"]
    assert audit_events(org, "token.issued").count() == 1
    assert api.get(f"/api/v1/orgs/{org.slug}/members").status_code == 200
    assert browser.get(f"/orgs/{org.slug}/members/").status_code == 200


def test_the_revocation_endpoint_answers_503_in_rfc6749_json():
    world = build_world()
    with database_down():
        response = post_form(Client(raise_request_exception=False), world.url("revoke"), {"token": "x"},
                             auth=(world.agent.client_id, world.agent_secret))
    assert_retry_after(response)
    assert response.json()["error"] == "temporarily_unavailable"
    assert response["Cache-Control"] == "no-store"


def test_a_scim_view_that_loses_the_database_answers_503():
    scim = scim_for()
    scim.client.raise_request_exception = False
    with database_down():
        response = scim.get("/Users")
    assert_retry_after(response)
    assert response.json()["schemas"] == [SCIM_ERROR] and response.json()["status"] == "503"
