"""Bad input at the edge of each surface is that surface's own error, never a 500 and never another
surface's format: malformed ids, numbers out of any range, crafted cursors, oversized, deeply nested
and many-field bodies."""

import base64
import json
from urllib.parse import urlencode

import pytest
from django.core.validators import MaxValueValidator
from django.test import Client
from rest_framework.test import APIClient

from agents.forms import OVERLAP_LIMIT_SECONDS
from agents.models import AgentPolicy, AgentSecret
from core.permissions import Perm
from iam_project.api_urls import router
from rbac.models import Team
from tests.agents.conftest import FORM, basic, build_world, post_form
from tests.factories import TeamFactory, api_key_for, sign_in
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


def _detail_routes():
    """(prefix, action url_path or None, methods) of every detail route the admin API router makes."""
    for prefix, viewset, _ in router.registry:
        methods = [m for m, name in (("get", "retrieve"), ("patch", "partial_update"), ("put", "update"),
                                     ("delete", "destroy")) if hasattr(viewset, name)]
        yield prefix, None, methods
        for extra in viewset.get_extra_actions():
            if extra.detail and "(?P<" not in extra.url_path:
                yield prefix, extra.url_path, sorted(extra.mapping)


def _cursor(**tokens) -> str:
    return base64.b64encode(urlencode(tokens).encode()).decode()


# --- Ids and numbers ----------------------------------------------------------------------------


@pytest.mark.parametrize("prefix,action,methods", list(_detail_routes()))
def test_a_malformed_id_on_every_detail_route_of_the_api_is_a_json_404(org, api, prefix, action, methods):
    assert methods
    before = last_seq(org)
    for bad in (DASHES, DIGITS):
        path = f"/api/v1/orgs/{org.slug}/{prefix}/{bad}" + (f"/{action}" if action else "")
        for method in methods:
            assert_api_error(getattr(api, method)(path, {}, format="json"), 404, "not_found")
    assert last_seq(org) == before


def test_a_malformed_member_id_inside_a_team_route_is_a_json_404(org, api):
    team = TeamFactory(org=org)
    before = last_seq(org)
    path = f"/api/v1/orgs/{org.slug}/teams/{team.pk}/members/{DASHES}"
    assert_api_error(api.delete(path), 404, "not_found")
    assert_api_error(api.patch(path, {"role": "member"}, format="json"), 404, "not_found")
    assert last_seq(org) == before


def test_a_malformed_id_on_a_page_is_the_html_404(org, page):
    for path in (f"agents/{DASHES}/", f"agents/{DASHES}/rotate/", f"members/{DASHES}/", f"teams/{DASHES}/",
                 f"roles/{DASHES}/", f"runs/{DASHES}/terminate/"):
        response = page.get(f"/orgs/{org.slug}/{path}")
        assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


def test_a_5000_digit_audit_entry_id_is_a_json_404(org, api):
    for bad in (DIGITS, "9" * 4000, "9" * 30):
        assert_api_error(api.get(f"/api/v1/orgs/{org.slug}/audit/events/{bad}"), 404, "not_found")


def _ordered_by_text(viewset) -> bool:
    ordering = (viewset.list_ordering or viewset.pagination_class.ordering).lstrip("-")
    return viewset.model._meta.get_field(ordering).get_internal_type() in ("CharField", "TextField")


@pytest.mark.parametrize("position", ["garbage", DIGITS, DASHES, "a\x00b"])
def test_a_crafted_cursor_position_is_a_json_404_unless_the_list_is_ordered_by_text(org, api, position):
    for prefix, viewset, _ in router.registry:
        if not hasattr(viewset, "list"):
            continue
        response = api.get(f"/api/v1/orgs/{org.slug}/{prefix}", {"cursor": _cursor(p=position)})
        if _ordered_by_text(viewset) and "\x00" not in position:
            assert response.status_code == 200 and "results" in response.json()  # a name sorts anywhere
        else:
            body = assert_api_error(response, 404, "not_found")
            assert body["detail"] == "Invalid cursor"


@pytest.mark.parametrize("cursor", [DIGITS, _cursor(o=DIGITS), _cursor(o="9" * 4000, p="x")])
def test_a_cursor_that_is_no_cursor_is_a_json_404(org, api, cursor):
    response = api.get(f"/api/v1/orgs/{org.slug}/members?cursor={cursor}")
    assert_api_error(response, 404, "not_found")


def test_a_5000_digit_page_size_falls_back_to_the_default(org, api):
    response = api.get(f"/api/v1/orgs/{org.slug}/members", {"page_size": DIGITS})
    assert response.status_code == 200 and response.json()["results"]


def test_a_nul_in_a_search_is_a_validation_error(org, api):
    for prefix in ("members", "teams", "agents"):
        body = assert_api_error(api.get(f"/api/v1/orgs/{org.slug}/{prefix}", {"q": "a\x00b"}),
                                400, "validation_error")
        assert "q" in body["fields"]


def test_too_many_query_parameters_on_the_api_are_a_json_400(org, api):
    assert_api_error(api.get(f"/api/v1/orgs/{org.slug}/members?{MANY_FIELDS}"), 400, "parse_error")


# --- Secret rotation's overlap ------------------------------------------------------------------


def test_the_overlap_bound_is_the_longest_window_any_policy_allows():
    field = AgentPolicy._meta.get_field("secret_overlap_max_seconds")
    limits = [v.limit_value for v in field.validators if isinstance(v, MaxValueValidator)]
    assert limits == [OVERLAP_LIMIT_SECONDS]


def _agent_state(agent):
    return sorted(AgentSecret.objects.filter(agent=agent).values_list("pk", "expires_at", "revoked_at"))


@pytest.mark.parametrize("overlap", [10**30, -(10**30), 10**9])
def test_an_overlap_out_of_any_range_is_a_validation_error_and_rotates_nothing(org, owner, api, overlap):
    world = build_world(org)
    before = _agent_state(world.agent)
    response = api.post(f"/api/v1/orgs/{org.slug}/agents/{world.agent.pk}/rotate-secret",
                        {"overlap_seconds": overlap}, format="json")
    body = assert_api_error(response, 400, "validation_error")
    assert body["fields"]["overlap_seconds"][0].startswith(("Between 0 and", "Ensure this value"))
    assert _agent_state(world.agent) == before
    assert not audit_events(org, "agent.secret_rotated").exists()


@pytest.mark.parametrize("overlap", [str(10**30), str(-(10**30)), DIGITS])
def test_an_overlap_out_of_any_range_on_the_page_is_a_form_error(org, owner, page, overlap):
    world = build_world(org)
    before = _agent_state(world.agent)
    response = page.post(f"/orgs/{org.slug}/agents/{world.agent.pk}/rotate/", {"overlap_seconds": overlap})
    assert response.status_code == 400 and response["Content-Type"].startswith("text/html")
    assert response.context["rotate_form"].errors["overlap_seconds"]
    assert _agent_state(world.agent) == before
    assert not audit_events(org, "agent.secret_rotated").exists()


def test_an_overlap_within_the_bound_but_over_the_orgs_policy_is_the_policys_error(org, owner, api, page):
    world = build_world(org)
    before = _agent_state(world.agent)
    over_policy = 86400 + 1  # the default policy allows a day
    response = api.post(f"/api/v1/orgs/{org.slug}/agents/{world.agent.pk}/rotate-secret",
                        {"overlap_seconds": over_policy}, format="json")
    body = assert_api_error(response, 400, "validation_error")
    assert body["fields"]["overlap_seconds"] == ["Between 0 and 86400 seconds."]
    on_page = page.post(f"/orgs/{org.slug}/agents/{world.agent.pk}/rotate/", {"overlap_seconds": over_policy})
    assert on_page.status_code == 400
    assert on_page.context["rotate_form"].errors["overlap_seconds"] == ["Between 0 and 86400 seconds."]
    assert _agent_state(world.agent) == before
    assert not audit_events(org, "agent.secret_rotated").exists()


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


def test_a_page_form_over_the_upload_limit_is_the_html_413_and_creates_nothing(org, page):
    before = last_seq(org)
    body = urlencode({"name": "x" * TOO_BIG})
    response = page.post(f"/orgs/{org.slug}/teams/", body, content_type=FORM)
    assert response.status_code == 413 and response["Content-Type"].startswith("text/html")
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


# --- Unknown routes -----------------------------------------------------------------------------


def test_an_unknown_route_is_a_404_in_the_format_of_its_surface(db):
    client = Client()
    api = client.get("/api/v1/no-such-thing")
    assert api.status_code == 404 and api.json() == {"error": "not_found", "detail": "Not found."}
    oauth = client.get("/oauth/no-such-org/no-such-endpoint")
    assert oauth.status_code == 404 and oauth["Cache-Control"] == "no-store"
    assert oauth.json()["error"] == "invalid_request" and oauth.json()["error_description"]
    authzen = client.get("/authzen/no-such-org/access/v1/nothing")
    assert authzen.status_code == 404 and authzen.json()["error"] == "invalid_request"
    page = client.get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")


def test_a_suspension_while_the_revocation_store_is_down_is_a_json_503_that_changes_nothing(db):
    from django.test import override_settings

    from agents.models import Agent
    from audit.models import AuditEntry
    from tests.agents.conftest import build_world
    from tests.agents.test_token_security import UNREACHABLE_REDIS
    from tests.factories import sign_in

    world = build_world()
    client = sign_in(Client(raise_request_exception=False), world.owner.user, mfa=True)
    url = f"/api/v1/orgs/{world.slug}/agents/{world.agent.pk}/suspend"
    before = AuditEntry.objects.for_org(world.org).count()
    with override_settings(CACHES=UNREACHABLE_REDIS):
        response = client.post(url)
    assert response.status_code == 503 and response.json()["error"] == "unavailable"
    assert response["Retry-After"]
    assert Agent.objects.get(pk=world.agent.pk).status == "active"
    assert AuditEntry.objects.for_org(world.org).count() == before
