"""The device authorization grant (RFC 8628) end to end over HTTP: the agent asks, a person approves
on /device/, the agent polls, and the delegated token reads `sub: user:<id>`, `act: {sub: agent}`."""

import time
from urllib.parse import urlencode

import pytest
from django.conf import settings

from agents.models import Delegation, DeviceAuthorization
from tests.agents.conftest import AUDIENCE
from tests.agents.delegation_world import (
    approve,
    delegated_tokens,
    device_start,
    member_of,
    person_client,
    poll,
    refresh,
    verified,
)
from tests.helpers import audit_events, latest_event


@pytest.fixture
def person(world):
    return member_of(world).user


def test_the_device_authorization_answer_has_every_rfc8628_field(client, world):
    response = device_start(client, world)
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    origin = settings.IAM_CANONICAL_ORIGIN.rstrip("/")
    assert body["verification_uri"] == f"{origin}/device/"
    assert body["verification_uri_complete"] == f"{origin}/device/?user_code={body['user_code']}"
    assert body["expires_in"] == 600 and body["interval"] == 5
    assert body["device_code"].startswith("dvc_") and len(body["user_code"]) == 9
    row = DeviceAuthorization.objects.get()
    assert body["device_code"] not in (row.secret_hash, row.user_code_hash)  # only keyed hashes kept
    requested = latest_event(world.org, "delegation.device_requested")
    assert requested.data["scopes"] == ["tickets:read"] and requested.data["audience"] == AUDIENCE


def test_metadata_lists_the_device_endpoint_and_the_new_grants(client, world):
    metadata = client.get(f"/.well-known/oauth-authorization-server/oauth/{world.slug}").json()
    assert metadata["device_authorization_endpoint"] == metadata["issuer"] + "/device_authorization"
    assert {
        "urn:ietf:params:oauth:grant-type:device_code",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    } <= set(metadata["grant_types_supported"])


def test_a_person_approves_and_the_agent_gets_a_delegated_token(client, world, person):
    started = device_start(client, world).json()
    pending = poll(client, world, started["device_code"])
    assert pending.status_code == 400 and pending.json()["error"] == "authorization_pending"
    answer = approve(person_client(person), started["user_code"], lifetime=3600)
    assert answer.status_code == 200 and "can now act for you" in answer.content.decode()
    DeviceAuthorization.objects.filter().update(last_polled_at=None)  # the agent waited its interval
    response = poll(client, world, started["device_code"])
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token_type"] == "Bearer" and body["scope"] == "tickets:read"
    assert body["refresh_token"].startswith("rft_")
    claims = verified(client, world, body["access_token"])
    delegation = Delegation.objects.get()
    assert claims["sub"] == f"user:{person.pk}"
    assert claims["act"] == {"sub": f"agent:{world.agent.pk}"}
    assert claims["client_id"] == world.agent.client_id and claims["aud"] == AUDIENCE
    assert claims["dlg"] == str(delegation.pk)
    assert delegation.user == person and delegation.scopes == ["tickets:read"]
    assert 3590 <= (delegation.expires_at - delegation.created_at).total_seconds() <= 3600
    issued = latest_event(world.org, "token.issued")
    assert issued.data["grant"] == "device_code" and issued.data["subject"] == f"user:{person.pk}"
    assert issued.data["chain"] == [f"user:{person.pk}", f"agent:{world.agent.pk}"]
    assert issued.data["delegation"] == str(delegation.pk)
    granted = latest_event(world.org, "delegation.granted")
    assert granted.actor_id == str(person.pk) and granted.data["scopes"] == ["tickets:read"]
    # The code is single use.
    again = poll(client, world, started["device_code"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_introspection_returns_the_chain_and_the_delegation(client, world, person, introspect):
    tokens = delegated_tokens(client, world, person)
    body = introspect(world, tokens["access_token"])
    assert body["active"] is True
    assert body["sub"] == f"user:{person.pk}" and body["act"] == {"sub": f"agent:{world.agent.pk}"}
    assert body["delegation"] == str(Delegation.objects.get().pk)


def test_denying_answers_access_denied(client, world, person):
    started = device_start(client, world).json()
    answer = approve(person_client(person), started["user_code"], decision="deny")
    assert answer.status_code == 200 and "Denied" in answer.content.decode()
    response = poll(client, world, started["device_code"])
    assert response.status_code == 400 and response.json()["error"] == "access_denied"
    assert not Delegation.objects.exists()
    assert audit_events(world.org, "delegation.denied").count() == 1


def test_polling_faster_than_the_interval_is_slow_down_and_the_interval_grows(client, world):
    started = device_start(client, world).json()
    assert poll(client, world, started["device_code"]).json()["error"] == "authorization_pending"
    fast = poll(client, world, started["device_code"])
    assert fast.status_code == 400 and fast.json()["error"] == "slow_down"
    assert DeviceAuthorization.objects.get().interval == 10


def test_an_expired_device_code_is_expired_token_by_its_timestamp(client, world, person):
    started = device_start(client, world).json()
    DeviceAuthorization.objects.update(expires_at=DeviceAuthorization.objects.get().created_at)
    response = poll(client, world, started["device_code"])
    assert response.status_code == 400 and response.json()["error"] == "expired_token"
    page = person_client(person).post("/device/", {"user_code": started["user_code"]})
    assert page.status_code == 400 and not Delegation.objects.exists()
    assert latest_event(None, "delegation.user_code_rejected").data["reason"] == "expired_code"


def test_another_agents_device_code_is_invalid_grant(client, world):
    from tests.agents.delegation_world import second_agent

    other, other_secret = second_agent(world, name="other-bot")
    started = device_start(client, world).json()
    response = poll(client, world, started["device_code"], agent=other, secret=other_secret)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_the_delegated_scope_is_what_the_person_holds_now(client, world):
    viewer = member_of(world, role="viewer").user  # holds no connection:use: can give nothing
    started = device_start(client, world).json()
    page = person_client(viewer).post("/device/", {"user_code": started["user_code"]})
    assert page.status_code == 200 and "Approve</button>" not in page.content.decode()
    answer = approve(person_client(viewer), started["user_code"])
    assert answer.status_code == 403 and not Delegation.objects.exists()


def test_someone_outside_the_org_cannot_use_the_code(client, world):
    from tests.factories import MemberFactory

    outsider = MemberFactory(role="owner").user  # an owner elsewhere
    started = device_start(client, world).json()
    page = person_client(outsider).post("/device/", {"user_code": started["user_code"]})
    assert page.status_code == 400 and "not valid" in page.content.decode()
    assert DeviceAuthorization.objects.get().status == "pending"


def test_the_page_sends_a_visitor_to_log_in_and_prefills_the_code(client, world):
    started = device_start(client, world).json()
    anonymous = client.get(f"/device/?user_code={started['user_code']}")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")
    person = member_of(world).user
    page = person_client(person).get(f"/device/?user_code={started['user_code']}")
    assert page.status_code == 200 and f'value="{started["user_code"]}"' in page.content.decode()
    assert DeviceAuthorization.objects.get().status == "pending"  # following the link approves nothing


def test_user_codes_are_rate_limited_per_person(client, world, person, settings):
    settings.IAM_DEVICE_CODE_ATTEMPTS = 3
    browser = person_client(person)
    for _ in range(3):
        assert browser.post("/device/", {"user_code": "BBBB-BBBB"}).status_code == 400
    started = device_start(client, world).json()
    assert browser.post("/device/", {"user_code": started["user_code"]}).status_code == 429
    assert latest_event(None, "delegation.user_code_rejected").data["reason"] == "throttled"


def test_device_requests_are_rate_limited_per_agent(client, world, settings):
    settings.IAM_DEVICE_PENDING_LIMIT = 2
    assert device_start(client, world).status_code == 200
    assert device_start(client, world).status_code == 200
    third = device_start(client, world)
    assert third.status_code == 429 and third.json()["error"] == "slow_down"
    assert DeviceAuthorization.objects.count() == 2


def test_approving_needs_a_recent_sign_in(client, world, person):
    started = device_start(client, world).json()
    answer = approve(person_client(person, fresh=False), started["user_code"])
    assert answer.status_code == 302 and "/reauth/" in answer["Location"]
    assert not Delegation.objects.exists()


def test_a_lifetime_beyond_the_policy_is_refused(client, world, person):
    started = device_start(client, world).json()
    answer = approve(person_client(person), started["user_code"], lifetime=365 * 24 * 3600)
    assert answer.status_code == 400 and not Delegation.objects.exists()


# Refresh tokens -----------------------------------------------------------------------------------


def test_refresh_rotates_and_a_reused_token_revokes_the_family(client, world, person, introspect):
    first = delegated_tokens(client, world, person)
    second = refresh(client, world, first["refresh_token"])
    assert second.status_code == 200, second.content
    second = second.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert verified(client, world, second["access_token"])["sub"] == f"user:{person.pk}"
    reused = refresh(client, world, first["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert Delegation.objects.get().status == "revoked"
    assert latest_event(world.org, "delegation.refresh_reused").data["agent"] == str(world.agent.pk)
    # The whole family is dead: the newest refresh token and every access token.
    assert refresh(client, world, second["refresh_token"]).json()["error"] == "invalid_grant"
    assert introspect(world, second["access_token"]) == {"active": False}
    assert introspect(world, first["access_token"]) == {"active": False}


def test_refresh_narrows_when_the_person_loses_a_permission(client, world, person):
    from accounts.models import Membership

    tokens = delegated_tokens(client, world, person)
    Membership.objects.filter(user=person, org=world.org).update(role="viewer")
    response = refresh(client, world, tokens["refresh_token"])
    assert response.status_code == 400 and response.json()["error"] == "invalid_scope"


def test_a_refused_refresh_does_not_spend_the_token(client, world, person):
    tokens = delegated_tokens(client, world, person)
    wider = refresh(client, world, tokens["refresh_token"], scope="tickets:read tickets:write")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
    assert refresh(client, world, tokens["refresh_token"]).status_code == 200


def test_no_refresh_token_when_the_policy_forbids_them(client, world, person):
    from agents.models import AgentPolicy

    AgentPolicy.objects.update_or_create(org=world.org, defaults={"delegation_refresh_tokens": False})
    tokens = delegated_tokens(client, world, person)
    assert "refresh_token" not in tokens


def test_a_delegated_token_lives_no_longer_than_its_delegation(client, world, person):
    tokens = delegated_tokens(client, world, person)
    Delegation.objects.update(expires_at=Delegation.objects.get().created_at)
    response = refresh(client, world, tokens["refresh_token"])
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert int(time.time()) < verified(client, world, tokens["access_token"])["exp"]


def test_an_answer_for_a_code_this_session_never_entered_is_refused(client, world, person):
    started = device_start(client, world).json()
    authorization = DeviceAuthorization.objects.get()
    answer = person_client(person).post(
        "/device/", {"decision": "approve", "authorization": str(authorization.pk)}
    )
    assert answer.status_code == 400 and "Enter the code" in answer.content.decode()
    assert DeviceAuthorization.objects.get().status == "pending" and not Delegation.objects.exists()
    assert poll(client, world, started["device_code"]).json()["error"] == "authorization_pending"


def test_a_lifetime_the_form_cannot_take_is_said_on_the_consent_page(client, world, person):
    started = device_start(client, world).json()
    answer = approve(person_client(person), started["user_code"], lifetime="soon")
    assert answer.status_code == 400 and "act for you?" in answer.content.decode()
    assert "whole number" in answer.content.decode() and not Delegation.objects.exists()


def test_an_agent_revoking_its_refresh_token_gives_up_the_delegation(client, world, person, introspect):
    from tests.agents.conftest import post_form

    tokens = delegated_tokens(client, world, person)
    other = member_of(world).user
    others = delegated_tokens(client, world, other)
    response = post_form(
        client,
        world.url("revoke"),
        {"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
        auth=(world.agent.client_id, world.agent_secret),
    )
    assert response.status_code == 200 and response.json() == {}
    assert introspect(world, tokens["access_token"]) == {"active": False}
    assert refresh(client, world, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert latest_event(world.org, "delegation.revoked").data["reason"] == "refresh_token_revoked"
    assert introspect(world, others["access_token"])["active"] is True  # the other person's stands


def test_another_agent_cannot_revoke_a_refresh_token_it_does_not_hold(client, world, person, introspect):
    from tests.agents.conftest import post_form
    from tests.agents.delegation_world import second_agent

    tokens = delegated_tokens(client, world, person)
    other, other_secret = second_agent(world, name="other-bot")
    response = post_form(
        client, world.url("revoke"), {"token": tokens["refresh_token"]}, auth=(other.client_id, other_secret)
    )
    assert response.status_code == 200
    assert Delegation.objects.get().status == "active"
    assert introspect(world, tokens["access_token"])["active"] is True


def test_a_password_reset_ends_every_delegation_of_the_person(client, world, person, introspect):
    from accounts.reset import _token_store, reset_complete
    from core.secrets import link_secret

    tokens = delegated_tokens(client, world, person)
    _raw, digest = link_secret()
    _token_store(person, digest)
    reset_complete(digest=digest, new_password="an entirely new passphrase 93")
    assert introspect(world, tokens["access_token"]) == {"active": False}
    assert Delegation.objects.get().revoked_reason == "password_reset"


def test_the_orgs_mfa_mandate_applies_before_the_consent_page(client, world, person):
    from accounts.models import SecurityPolicy

    SecurityPolicy.objects.update_or_create(org=world.org, defaults={"mfa_required": True})
    started = device_start(client, world).json()
    page = person_client(person).post("/device/", {"user_code": started["user_code"]})
    # Without a second factor the person is sent to set one up, and then back to the filled-in form.
    next_url = f"/device/?user_code={started['user_code']}"
    assert page.status_code == 302
    assert page["Location"] == "/account/security/?" + urlencode({"next": next_url})
    assert DeviceAuthorization.objects.get().status == "pending" and not Delegation.objects.exists()
