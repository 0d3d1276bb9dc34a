"""A delegation never outlives or out-ranks the person behind it: suspending, removing or
deprovisioning them, ending their last session (as the org's policy says), and revoking the
delegation kill every token issued under it on the next verification, exchanged ones included."""

import pytest
from django.db import connection
from django.test import Client

from accounts.models import Membership, UserSession
from agents.models import AgentPolicy, Delegation, DeviceAuthorization, RefreshToken
from agents.policies import agent_delegates_set
from agents.tokens import TokenInvalid
from rbac.policies import member_remove, member_update
from tests.agents.conftest import AUDIENCE, build_world
from tests.agents.delegation_world import (
    approve,
    delegated_tokens,
    device_start,
    exchange,
    member_of,
    person_client,
    poll,
    refresh,
    second_agent,
    verified,
)
from tests.helpers import audit_events, in_parallel, latest_event


@pytest.fixture
def person(world):
    return member_of(world)


def _active(introspect, world, token) -> bool:
    return introspect(world, token)["active"]


def _exchanged(client, world, person):
    """The person's delegated token, handed by the world's agent to B and exchanged there."""
    b, b_secret = second_agent(world, "agent-b", allow_from=world.agent)
    tokens = delegated_tokens(client, world, person.user, may_act=None)
    # A delegated token names B only when asked at issuance: ask again through refresh.
    named = refresh(client, world, tokens["refresh_token"], may_act=b.client_id).json()
    body = exchange(client, world, b, b_secret, named["access_token"], resource=AUDIENCE)
    assert body.status_code == 200, body.content
    return named, body.json()["access_token"], (b, b_secret)


def test_a_delegated_token_exchanged_by_another_agent_keeps_the_person_as_subject(client, world, person):
    named, exchanged, (b, _) = _exchanged(client, world, person)
    claims = verified(client, world, exchanged)
    assert claims["sub"] == f"user:{person.user_id}"
    assert claims["act"] == {"sub": f"agent:{b.pk}", "act": {"sub": f"agent:{world.agent.pk}"}}
    assert claims["dlg"] == str(Delegation.objects.get().pk)
    issued = latest_event(world.org, "token.issued")
    assert issued.data["chain"] == [f"user:{person.user_id}", f"agent:{world.agent.pk}", f"agent:{b.pk}"]
    assert issued.data["subject"] == f"user:{person.user_id}"


@pytest.mark.parametrize("status", ["suspended"])
def test_suspending_the_person_kills_every_token_under_their_delegations(
    client, world, person, introspect, status
):
    named, exchanged, (b, b_secret) = _exchanged(client, world, person)
    member_update(access=world.access, membership=person, status=status)
    assert not _active(introspect, world, named["access_token"])
    assert not _active(introspect, world, exchanged)
    assert refresh(client, world, named["refresh_token"]).json()["error"] == "invalid_grant"
    delegation = Delegation.objects.get()
    assert delegation.status == "revoked" and delegation.revoked_reason == "person_suspended"
    assert latest_event(world.org, "delegation.revoked").data["reason"] == "person_suspended"


def test_removing_the_person_revokes_their_delegations(client, world, person, introspect):
    tokens = delegated_tokens(client, world, person.user)
    member_remove(access=world.access, membership=person)
    assert not _active(introspect, world, tokens["access_token"])
    assert refresh(client, world, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert Delegation.objects.get().revoked_reason == "person_departed"
    assert not RefreshToken.objects.filter(revoked_at__isnull=True).exists()


def test_scim_deprovisioning_revokes_their_delegations_and_counts_them(client, world, person, introspect):
    from scim.deprovisioning import deprovision
    from scim.models import ScimUser
    from tests.scim.test_provisioning import SCIM

    tokens = delegated_tokens(client, world, person.user)
    scim_user = ScimUser.objects.create(org=world.org, membership=person, user_name=person.user.email)
    deprovision(scim_user=scim_user, actor=SCIM, how="deactivated")
    assert not _active(introspect, world, tokens["access_token"])
    assert latest_event(world.org, "member.deprovisioned").data["delegations_revoked"] == 1


def test_losing_a_permission_refuses_the_exchange_of_a_token_issued_before(client, world, person):
    named, _exchanged_token, (b, b_secret) = _exchanged(client, world, person)
    Membership.objects.filter(pk=person.pk).update(role="viewer")  # no connection:use any more
    response = exchange(client, world, b, b_secret, named["access_token"], resource=AUDIENCE)
    assert response.status_code == 400 and response.json()["error"] == "invalid_scope"


def test_revoking_the_delegation_kills_the_exchanged_tokens(client, world, person, introspect):
    from agents.policies import delegation_revoke

    named, exchanged, (b, b_secret) = _exchanged(client, world, person)
    assert delegation_revoke(access=world.access, delegation=Delegation.objects.get()) is True
    assert not _active(introspect, world, exchanged)
    response = exchange(client, world, b, b_secret, named["access_token"], resource=AUDIENCE)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def _bind_to_sessions(world):
    AgentPolicy.objects.update_or_create(org=world.org, defaults={"delegations_end_with_session": True})


def test_signing_out_of_the_last_session_ends_delegations_when_the_policy_says_so(
    client, world, person, introspect, django_capture_on_commit_callbacks
):
    _bind_to_sessions(world)
    started = device_start(client, world).json()
    browser = person_client(person.user)
    assert approve(browser, started["user_code"]).status_code == 200
    tokens = poll(client, world, started["device_code"]).json()
    with django_capture_on_commit_callbacks(execute=True):
        browser.post("/logout/")
    assert not UserSession.objects.filter(user=person.user).exists()
    assert Delegation.objects.get().revoked_reason == "person_signed_out"
    assert not _active(introspect, world, tokens["access_token"])


def test_a_session_that_expired_by_its_timestamp_refuses_refresh_under_that_policy(client, world, person):
    _bind_to_sessions(world)
    tokens = delegated_tokens(client, world, person.user)
    from django.utils import timezone

    UserSession.objects.filter(user=person.user).update(expire_date=timezone.now())
    response = refresh(client, world, tokens["refresh_token"])
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert latest_event(world.org, "token.denied").data["reason"] == "person_signed_out"


def test_without_that_policy_signing_out_changes_nothing(
    client, world, person, introspect, django_capture_on_commit_callbacks
):
    tokens = delegated_tokens(client, world, person.user)
    with django_capture_on_commit_callbacks(execute=True):
        Client().logout()
        UserSession.objects.filter(user=person.user).delete()
    assert Delegation.objects.get().status == "active"
    assert _active(introspect, world, tokens["access_token"])


def test_may_delegate_to_is_bounded_by_the_callers_power(world):
    from core.errors import Forbidden
    from rbac.guard import access_for_user

    b, _ = second_agent(world, "agent-b")
    member = member_of(world, role="member")
    # The member owns nothing here and cannot manage the owner: refused.
    access = access_for_user(user=member.user, org_slug=world.slug)
    with pytest.raises(Forbidden):
        agent_delegates_set(access=access, agent=world.agent, targets=[b])
    assert not world.agent.may_delegate_to.exists()


@pytest.mark.django_db(transaction=True)
def test_parallel_polls_of_one_approved_code_issue_tokens_once():
    if connection.vendor != "postgresql":
        pytest.skip("race cases run on PostgreSQL (SQLite serialises every writer)")
    world = build_world()
    person = member_of(world)
    client = Client()
    started = device_start(client, world).json()
    assert approve(person_client(person.user), started["user_code"]).status_code == 200
    DeviceAuthorization.objects.update(last_polled_at=None)
    results = in_parallel(6, lambda i: poll(Client(), world, started["device_code"]).status_code)
    assert sorted(results) == [200] + [400] * 5


@pytest.mark.django_db(transaction=True)
def test_parallel_uses_of_one_refresh_token_have_one_winner_and_end_the_family():
    if connection.vendor != "postgresql":
        pytest.skip("race cases run on PostgreSQL (SQLite serialises every writer)")
    world = build_world()
    person = member_of(world)
    tokens = delegated_tokens(Client(), world, person.user)
    responses = in_parallel(4, lambda i: refresh(Client(), world, tokens["refresh_token"]))
    winners = [r.json() for r in responses if r.status_code == 200]
    assert len(winners) == 1 and sorted(r.status_code for r in responses) == [200, 400, 400, 400]
    assert Delegation.objects.get().status == "revoked"  # the losers were reuse: the family ends
    from agents.tokens import token_verify

    with pytest.raises(TokenInvalid):  # and the winner's token with it, whenever it was signed
        token_verify(winners[0]["access_token"], org_slug=world.slug)


@pytest.mark.django_db(transaction=True)
def test_a_use_waiting_on_the_winners_lock_sees_the_token_spent_once_the_winner_commits():
    """The same race, made certain: the second UPDATE waits on the first one's row lock, and what
    it re-checks after the commit must be the token's own row (PostgreSQL re-evaluates only the
    target table's conditions, not a subquery's snapshot)."""
    if connection.vendor != "postgresql":
        pytest.skip("race cases run on PostgreSQL (SQLite serialises every writer)")
    import threading
    import time

    from django.db import transaction

    from agents.delegation import refresh_take

    world = build_world()
    tokens = delegated_tokens(Client(), world, member_of(world).user)
    assert tokens["refresh_token"]
    row = RefreshToken.objects.get()  # the one refresh token the approval gave
    spent, second_started = threading.Event(), threading.Event()
    outcome = {}

    def winner():
        try:
            with transaction.atomic():
                outcome["first"] = refresh_take(row)
                spent.set()
                second_started.wait(10)
                time.sleep(0.5)  # the second UPDATE is now waiting on this row's lock
        finally:
            connection.close()

    def second():
        try:
            spent.wait(10)
            second_started.set()
            outcome["second"] = refresh_take(row)
        finally:
            connection.close()

    threads = [threading.Thread(target=winner), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcome == {"first": True, "second": False}


def test_spent_and_expired_records_are_pruned_and_delegations_kept(client, world, person):
    from datetime import timedelta

    from django.utils import timezone

    from agents.tasks import delegation_rows_prune

    tokens = delegated_tokens(client, world, person.user)
    refresh(client, world, tokens["refresh_token"])  # spends the first, mints a second
    assert delegation_rows_prune.delay().get() == 0  # nothing is old enough yet
    later = timezone.now() + timedelta(days=2)
    from freezegun import freeze_time

    with freeze_time(later):
        pruned = delegation_rows_prune.delay().get()
    assert pruned == 2  # the device request (expired) and the spent refresh token
    assert RefreshToken.objects.count() == 1 and Delegation.objects.count() == 1


def test_a_refresh_racing_a_revocation_gets_nothing_that_outlives_it(
    client, world, person, monkeypatch, introspect
):
    """The request read the delegation live, the revocation committed, then it came to spend."""
    from agents import delegated
    from agents.delegation import delegation_revoke
    from audit.actors import Actor

    tokens = delegated_tokens(client, world, person.user)
    original = delegated.refresh_take

    def revoked_meanwhile(row):
        delegation_revoke(delegation=Delegation.objects.get(), actor=Actor.system(), reason="revoked")
        return original(row)

    monkeypatch.setattr(delegated, "refresh_take", revoked_meanwhile)
    response = refresh(client, world, tokens["refresh_token"])
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert RefreshToken.objects.count() == 1  # no new refresh token was minted
    assert latest_event(world.org, "token.denied").data["reason"] == "refresh_token_revoked"


def test_a_token_signed_after_its_delegation_was_revoked_is_dead(world, person, client):
    """Whatever second it was signed in: a delegation never comes back."""
    from agents.delegation import delegation_revoke
    from agents.models import AgentPolicy as Policy
    from agents.tokens import token_sign, token_verify
    from audit.actors import Actor

    delegated_tokens(client, world, person.user)
    delegation = Delegation.objects.get()
    delegation_revoke(delegation=delegation, actor=Actor.system(), reason="revoked")
    from datetime import timedelta

    from django.utils import timezone
    from freezegun import freeze_time

    with freeze_time(timezone.now() + timedelta(seconds=5)):
        late = token_sign(
            org=world.org,
            alg=Policy().token_alg,
            agent=world.agent,
            audience=AUDIENCE,
            scope="tickets:read",
            ttl=60,
            subject=f"user:{person.user_id}",
            act={"sub": world.agent.subject},
            delegation_id=delegation.pk,
        )
        with pytest.raises(TokenInvalid) as dead:
            token_verify(late.token, org_slug=world.slug)
    assert dead.value.reason == "dlg_revoked"


def test_the_exchange_keeps_a_persons_approval_to_the_service_they_approved(client, world, person):
    from agents.policies import connection_create

    payroll = "https://payroll.example.com"
    connection_create(access=world.access, name="Payroll", audience=payroll, scopes=["tickets:read"])
    b, b_secret = second_agent(world, "agent-b", allow_from=world.agent)
    from agents.policies import agent_grant_update

    agent_grant_update(access=world.access, agent=b, audiences=[AUDIENCE, payroll])
    tokens = delegated_tokens(client, world, person.user)
    named = refresh(client, world, tokens["refresh_token"], may_act=b.client_id).json()
    response = exchange(client, world, b, b_secret, named["access_token"], resource=payroll)
    assert response.status_code == 400 and response.json()["error"] == "invalid_target"
    assert latest_event(world.org, "token_exchange.error").data["reason"] == "delegation_audience"
    same = exchange(client, world, b, b_secret, named["access_token"], resource=AUDIENCE)
    assert same.status_code == 200


def test_a_refused_poll_keeps_the_code_for_a_good_one(client, world, person):
    started = device_start(client, world).json()
    assert approve(person_client(person.user), started["user_code"]).status_code == 200
    DeviceAuthorization.objects.update(last_polled_at=None)
    bad = poll(client, world, started["device_code"], may_act="agt_not_allowed")
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_request"
    wider = poll(client, world, started["device_code"], scope="tickets:read tickets:write")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
    assert poll(client, world, started["device_code"]).status_code == 200


def test_an_approved_code_nobody_claimed_ends_its_delegation(client, world, person):
    from datetime import timedelta

    from django.utils import timezone
    from freezegun import freeze_time

    from agents.tasks import delegation_rows_prune

    first = device_start(client, world).json()
    second = device_start(client, world).json()
    for started in (first, second):
        assert approve(person_client(person.user), started["user_code"]).status_code == 200
    with freeze_time(timezone.now() + timedelta(minutes=11)):
        expired = poll(client, world, first["device_code"])
        assert expired.json()["error"] == "expired_token"
        assert Delegation.objects.filter(status="revoked").count() == 1  # the one polled for
        delegation_rows_prune.delay().get()
    assert Delegation.objects.filter(status="revoked").count() == 2  # and the one nobody came for
    assert {e.data["reason"] for e in audit_events(world.org, "delegation.revoked")} == {
        "device_code_expired"
    }


def test_a_person_outside_the_org_typing_its_code_is_on_record(client, world):
    from tests.factories import MemberFactory

    outsider = MemberFactory(role="owner").user
    started = device_start(client, world).json()
    assert person_client(outsider).post("/device/", {"user_code": started["user_code"]}).status_code == 400
    assert latest_event(None, "delegation.user_code_rejected").data["reason"] == "not_member"


def test_past_the_limit_code_attempts_are_on_record_once(client, world, person, settings):
    settings.IAM_DEVICE_CODE_ATTEMPTS = 2
    browser = person_client(person.user)
    for _ in range(6):
        browser.post("/device/", {"user_code": "BBBB-BBBB"})
    reasons = [
        e.data["reason"]
        for e in audit_events(None, "delegation.user_code_rejected").filter(actor_id=str(person.user_id))
    ]
    assert reasons.count("throttled") == 1 and reasons.count("unknown_code") == 2


def test_when_the_revocation_store_fails_a_reused_refresh_token_is_503_and_nothing_changes(
    client, world, person, monkeypatch
):
    from django.core.cache import cache

    tokens = delegated_tokens(client, world, person.user)
    assert refresh(client, world, tokens["refresh_token"]).status_code == 200

    def broken(*args, **kwargs):
        raise ConnectionError("store down")

    monkeypatch.setattr(cache, "set", broken)
    response = refresh(client, world, tokens["refresh_token"])
    assert response.status_code == 503 and response.json()["error"] == "temporarily_unavailable"
    assert Delegation.objects.get().status == "active"


@pytest.mark.parametrize(
    "endpoint,field",
    [
        ("device_authorization", "resource"),
        ("device_authorization", "scope"),
        ("token", "may_act"),
        ("token", "resource"),
        ("token", "scope"),
        ("token", "subject_token"),
        ("token", "device_code"),
        ("token", "refresh_token"),
    ],
)
def test_a_nul_character_in_any_parameter_is_invalid_request(client, world, endpoint, field):
    from tests.agents.conftest import post_form
    from tests.agents.delegation_world import DEVICE_GRANT, EXCHANGE

    grant = {"subject_token": EXCHANGE, "device_code": DEVICE_GRANT, "refresh_token": "refresh_token"}
    data = {"grant_type": grant.get(field, "client_credentials"), field: "a\x00b"}
    response = post_form(client, world.url(endpoint), data, auth=(world.agent.client_id, world.agent_secret))
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    nul_id = post_form(
        client,
        world.url(endpoint),
        {"grant_type": "client_credentials"},
        auth=("agt\x00x", world.agent_secret),
    )
    assert nul_id.status_code == 401 and nul_id.json()["error"] == "invalid_client"


@pytest.mark.django_db(transaction=True)
def test_parallel_device_requests_cannot_pass_the_agents_limit(settings):
    if connection.vendor != "postgresql":
        pytest.skip("race cases run on PostgreSQL (SQLite serialises every writer)")
    settings.IAM_DEVICE_PENDING_LIMIT = 5
    world = build_world()
    responses = in_parallel(12, lambda i: device_start(Client(), world))
    assert sorted(r.status_code for r in responses) == [200] * 5 + [429] * 7
    assert DeviceAuthorization.objects.count() == 5
