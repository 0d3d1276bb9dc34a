"""Bad input at the edge of each surface is that surface's own error, never a 500 and never another
surface's format: malformed ids, numbers out of any range, crafted cursors, oversized, deeply nested
and many-field bodies."""

import json
from urllib.parse import urlencode

import pytest
from django.test import Client
from rest_framework.test import APIClient

from core.permissions import Perm
from rbac.models import Team
from tests.agents.conftest import FORM, basic, build_world, post_form
from tests.factories import api_key_for, sign_in
from tests.helpers import audit_events, last_seq

pytestmark = pytest.mark.django_db

DASHES = "-" * 36
DIGITS = "9" * 5000  # longer than Python will turn into an int (sys.get_int_max_str_digits)
TOO_BIG = 3 * 1024 * 1024  # over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB)
MANY_FIELDS = "&".join(f"f{i}=1" for i in range(1001))  # over DATA_UPLOAD_MAX_NUMBER_FIELDS (1,000)


@pytest.fixture
def api(org, owner):
    _, secret = api_key_for(org, list(Perm), created_by=owner.user)
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.fixture
def page(owner):
    return sign_in(Client(raise_request_exception=False), owner.user)


def assert_api_error(response, status: int, code: str) -> dict:
    assert (response.status_code, response.json()["error"]) == (status, code), response.content[:300]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"] == code and body["detail"]
    return body


def assert_oauth_error(response, status: int, error: str = "invalid_request") -> None:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["error"] == error and body["error_description"]


# --- Queries on the admin API ------------------------------------------------------------------


def test_too_many_query_parameters_on_the_api_are_a_json_400(org, api):
    assert_api_error(api.get(f"/api/v1/orgs/{org.slug}/members?{MANY_FIELDS}"), 400, "parse_error")


# --- Bodies on the admin API --------------------------------------------------------------------


def test_a_json_body_over_the_upload_limit_is_a_json_413_and_creates_nothing(org, api):
    before = last_seq(org)
    body = json.dumps({"name": "x" * TOO_BIG})
    response = api.post(f"/api/v1/orgs/{org.slug}/teams", body, content_type="application/json")
    assert_api_error(response, 413, "request_too_large")
    assert last_seq(org) == before and not Team.objects.for_org(org).exists()


def test_deeply_nested_json_is_a_json_400_and_creates_nothing(org, api):
    before = last_seq(org)
    for body in ("[" * 100_000, '{"a":' * 100_000, "[" * 100_000 + "]" * 100_000):
        response = api.post(f"/api/v1/orgs/{org.slug}/teams", body, content_type="application/json")
        assert_api_error(response, 400, "parse_error")
    assert last_seq(org) == before and not Team.objects.for_org(org).exists()


# --- Bodies at the OAuth endpoints --------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["token", "introspect", "revoke"])
def test_an_oversized_oauth_body_is_an_rfc6749_413(org, endpoint):
    world = build_world(org)
    client = Client(raise_request_exception=False)
    body = urlencode({"grant_type": "client_credentials", "pad": "x" * TOO_BIG})
    response = client.post(world.url(endpoint), body, content_type=FORM,
                           HTTP_AUTHORIZATION=basic(world.agent.client_id, world.agent_secret))
    assert_oauth_error(response, 413)
    assert not audit_events(org, "token.issued").exists()


@pytest.mark.parametrize("endpoint", ["token", "introspect", "revoke"])
def test_a_thousand_field_oauth_body_or_query_is_an_rfc6749_400(org, endpoint):
    world = build_world(org)
    client = Client(raise_request_exception=False)
    auth = basic(world.agent.client_id, world.agent_secret)
    in_body = client.post(world.url(endpoint), f"grant_type=client_credentials&{MANY_FIELDS}",
                          content_type=FORM, HTTP_AUTHORIZATION=auth)
    assert_oauth_error(in_body, 400)
    in_query = client.post(f"{world.url(endpoint)}?{MANY_FIELDS}", "grant_type=client_credentials",
                           content_type=FORM, HTTP_AUTHORIZATION=auth)
    assert_oauth_error(in_query, 400)
    assert not audit_events(org, "token.issued").exists()


def test_the_token_endpoint_still_answers_a_normal_request(org, client):
    world = build_world(org)
    response = post_form(client, world.url("token"), {"grant_type": "client_credentials"},
                         auth=(world.agent.client_id, world.agent_secret))
    assert response.status_code == 200 and response.json()["access_token"]
