"""Failed SCIM authentications are counted per client address *and* presented token id (a malformed
credential counts in one bucket per address), and a valid token is never refused for anyone else's
failures: IdPs send every customer's traffic from a few shared addresses, and a token's lookup id is
no secret (lists show it), so one tenant must not be able to stall another's provisioning."""

import secrets

import pytest
from django.core.cache import cache
from django.test import Client

from core.secrets import LOOKUP_ID_BYTES
from scim.models import ScimUser
from tests.helpers import audit_events
from tests.scim.conftest import BASE, user_body

pytestmark = pytest.mark.django_db

IDP = "198.51.100.7"  # an IdP's egress address, shared by its customers
OTHER = "203.0.113.9"


@pytest.fixture(autouse=True)
def _fresh_counters():
    cache.clear()  # the counters live in the cache (Redis when REDIS_URL is set), across tests
    yield
    cache.clear()


def _get(token: str | None, ip: str = IDP, header: str | None = None):
    auth = header if header is not None else f"Bearer {token}"
    return Client(REMOTE_ADDR=ip).get(f"{BASE}/Users", HTTP_AUTHORIZATION=auth)


def _post(token: str, ip: str = IDP, name: str = "late@example.com"):
    return Client(REMOTE_ADDR=ip).post(f"{BASE}/Users", user_body(name), content_type="application/scim+json",
                                       HTTP_AUTHORIZATION=f"Bearer {token}")


def _error(response, status: int) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/scim+json")
    body = response.json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert body["status"] == str(status)


def _random_token() -> str:
    return f"scim_{secrets.token_hex(LOOKUP_ID_BYTES)}_{secrets.token_urlsafe(32)}"


def _wrong_secret(token: str) -> str:
    return f"scim_{token.split('_')[1]}_{secrets.token_urlsafe(32)}"


def test_thirty_and_more_bad_tokens_from_an_address_leave_a_valid_token_from_it_working(scim, settings):
    assert settings.IAM_SCIM_AUTH_FAILURE_LIMIT == 30
    bad = [_random_token() for _ in range(20)] + ["nonsense"] * 40 + [_wrong_secret(scim.token)] * 35
    statuses = [_get(token).status_code for token in bad]
    assert set(statuses) <= {401, 429} and statuses.count(429) == 10 + 5  # the malformed and the guessed id
    response = _get(scim.token)
    assert response.status_code == 200, response.content
    created = _post(scim.token)
    assert created.status_code == 201, created.content
    assert ScimUser.objects.for_org(scim.org).count() == 1


def test_a_guessed_token_id_is_refused_with_429_and_retry_after_but_its_holder_is_not(scim):
    guess = _wrong_secret(scim.token)
    for _ in range(30):
        _error(_get(guess), 401)
    for _ in range(3):
        response = _get(guess)
        _error(response, 429)
        assert response["Retry-After"] == "60"
    _error(_post(guess), 429)
    assert not ScimUser.objects.for_org(scim.org).exists()
    # Only the thirty that were answered 401 are on record: once refused, a guess writes nothing.
    failed = audit_events(scim.org, "scim.auth_failed")
    assert failed.count() == 30 and {e.data["reason"] for e in failed} == {"bad_secret"}
    assert {e.ip for e in failed} == {IDP}
    # The token's holder, from the same shared address and with the same id: served.
    assert _get(scim.token).status_code == 200
    assert _post(scim.token).status_code == 201
    # Another id from the address has its own count; the guessed id from another address too.
    _error(_get(_random_token()), 401)
    _error(_get(guess, ip=OTHER), 401)


def test_malformed_credentials_share_one_bucket_per_address(scim):
    for header in ["Bearer nonsense", "Basic Zm9vOmJhcg==", "Bearer", ""] * 8:
        _get(None, header=header)
    for header in ["Bearer nonsense", "Bearer scim_short_x"]:
        response = _get(None, header=header)
        _error(response, 429)
        assert response["Retry-After"] == "60"
    _error(_get(None, header="Bearer nonsense", ip=OTHER), 401)  # another address: its own bucket
    _error(_get(_random_token()), 401)  # a token-shaped credential: its id's bucket
    assert _get(scim.token).status_code == 200


def test_another_orgs_failures_never_refuse_this_orgs_token(scim):
    from tests.scim.conftest import scim_for

    other = scim_for()
    for _ in range(40):
        _get(_wrong_secret(other.token))
    _error(_get(_wrong_secret(other.token)), 429)
    assert _get(scim.token).status_code == 200
    assert _get(other.token).status_code == 200
    assert not audit_events(scim.org, "scim.auth_failed").exists()
    assert audit_events(other.org, "scim.auth_failed").count() == 30
