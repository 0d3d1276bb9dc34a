"""Delegations on the pages: an agent's page lists the people it acts for, with a Revoke button (after
a confirmation) for those who may revoke, and the agents it may delegate to; the security page
holds the org's delegation policy; every page links to "Agents acting for me"."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from agents import policies
from agents.models import Agent, AgentPolicy, Delegation
from tests.agents.conftest import build_world, post_form
from tests.agents.delegation_world import delegated_tokens, member_of, person_client, second_agent
from tests.factories import MemberFactory, OrgFactory
from tests.helpers import audit_events, latest_event

pytestmark = pytest.mark.django_db

ADMIN_AUDIENCE = "https://admin.example.com"


@pytest.fixture
def world(db):
    return build_world()


@pytest.fixture
def person(world):
    return member_of(world).user


@pytest.fixture
def delegated(client, world, person):
    """The person approved the world's agent: (their tokens, the delegation)."""
    tokens = delegated_tokens(client, world, person)
    return tokens, Delegation.objects.get()


def url(name, world, **kwargs):
    return reverse(f"agents:{name}", kwargs={"org": world.slug, **kwargs})


def is_active(client, world, token) -> bool:
    """What the world's connection hears about `token` at introspection."""
    response = post_form(client, world.url("introspect"), {"token": token},
                         auth=(world.connection.client_id, world.connection_secret))
    assert response.status_code == 200
    return response.json()["active"]


def delegation_state():
    return sorted(Delegation.objects.values_list("pk", "status", "revoked_at"))


def delegates_of(agent) -> list[str]:
    return sorted(Agent.objects.get(pk=agent.pk).may_delegate_to.values_list("client_id", flat=True))


def keeper_of(world):
    """An ordinary member (no member:write) who owns the world's agent beside the org's owner."""
    keeper = member_of(world)
    policies.agent_grant_update(access=world.access, agent=world.agent, owners=[world.owner, keeper])
    return keeper


# --- The agent's page ----------------------------------------------------------------------------


def test_the_agent_page_lists_its_live_delegations(client, world, person, delegated):
    _, live = delegated
    ended_person = member_of(world).user
    delegated_tokens(client, world, ended_person)
    policies.delegation_revoke(access=world.access, delegation=Delegation.objects.get(user=ended_person))
    expired_person = member_of(world).user
    delegated_tokens(client, world, expired_person)
    Delegation.objects.filter(user=expired_person).update(expires_at=timezone.now() - timedelta(seconds=1))

    body = person_client(world.owner.user).get(url("agent-detail", world, pk=world.agent.pk)).content.decode()
    section = body[body.index('id="delegations-title"'):body.index('id="secrets-title"')]
    assert person.email in section and "<code>tickets:read</code>" in section
    assert world.connection.audience in section and live.expires_at.strftime("%Y-%m-%d %H:%M") in section
    assert ended_person.email not in section and expired_person.email not in section
    # Revoking is asked for on its confirmation page, which the row links to.
    assert f'href="{url("delegation-revoke", world, pk=live.pk)}"' in section


def test_only_those_who_may_revoke_are_offered_the_button(client, world, person, delegated):
    _, mine = delegated
    other_person = member_of(world).user
    delegated_tokens(client, world, other_person)
    theirs = Delegation.objects.get(user=other_person)
    page = url("agent-detail", world, pk=world.agent.pk)

    def buttons(user):
        body = person_client(user).get(page).content.decode()
        return {d.pk for d in (mine, theirs) if url("delegation-revoke", world, pk=d.pk) in body}

    assert buttons(person) == {mine.pk}  # their own only
    assert buttons(keeper_of(world).user) == {mine.pk, theirs.pk}  # an owner of the agent
    assert buttons(MemberFactory(org=world.org, role="owner").user) == {mine.pk, theirs.pk}  # an admin
    viewer = MemberFactory(org=world.org, role="viewer").user
    viewed = person_client(viewer).get(page).content.decode()
    assert person.email in viewed and buttons(viewer) == set()


def test_revoking_asks_first_and_a_post_without_the_answer_changes_nothing(client, world, delegated):
    tokens, delegation = delegated
    browser = person_client(world.owner.user)
    before = delegation_state()
    for response in (browser.get(url("delegation-revoke", world, pk=delegation.pk)),
                     browser.post(url("delegation-revoke", world, pk=delegation.pk))):
        assert response.status_code == 200
        body = response.content.decode()
        assert "stops working on its next use" in body and 'name="confirm" value="yes"' in body
    assert delegation_state() == before
    assert not audit_events(world.org, "delegation.revoked").exists()
    assert is_active(client, world, tokens["access_token"])


@pytest.mark.parametrize("who", ["the person", "an owner of the agent", "an admin"])
def test_revoking_from_the_page_stops_the_tokens(client, world, person, delegated, who):
    tokens, delegation = delegated
    user = {"the person": lambda: person, "an owner of the agent": lambda: keeper_of(world).user,
            "an admin": lambda: MemberFactory(org=world.org, role="owner").user}[who]()
    browser = person_client(user)
    response = browser.post(url("delegation-revoke", world, pk=delegation.pk), {"confirm": "yes"})
    assert response.status_code == 302 and response["Location"] == url("agent-detail", world,
                                                                        pk=world.agent.pk)
    saved = Delegation.objects.get(pk=delegation.pk)
    assert (saved.status, saved.revoked_reason) == ("revoked", "revoked")
    event = latest_event(world.org, "delegation.revoked")
    assert event.actor_id == str(user.pk) and event.target_id == str(delegation.pk)
    assert not is_active(client, world, tokens["access_token"])
    after = browser.get(response["Location"]).content.decode()
    assert "stop working on their next use" in after
    section = after[after.index('id="delegations-title"'):after.index('id="secrets-title"')]
    assert person.email not in section


def test_an_unrelated_member_is_refused_and_the_delegation_stays(client, world, delegated):
    tokens, delegation = delegated
    bystander = member_of(world).user
    before = delegation_state()
    response = person_client(bystander).post(url("delegation-revoke", world, pk=delegation.pk),
                                             {"confirm": "yes"})
    assert response.status_code == 403
    assert "Only the person who granted it" in response.content.decode()
    assert delegation_state() == before
    assert not audit_events(world.org, "delegation.revoked").exists()
    denial = latest_event(world.org, "access.denied")
    assert denial.actor_id == str(bystander.pk)
    assert denial.data == {"reason": "delegation_revoke", "action": "delegation.revoke"}
    assert is_active(client, world, tokens["access_token"])


def test_another_orgs_delegation_is_404(client, world, delegated):
    other = build_world(OrgFactory())
    tokens = delegated_tokens(client, other, member_of(other).user)
    theirs = Delegation.objects.get(org=other.org)
    browser = person_client(world.owner.user)
    before = delegation_state()
    assert browser.get(url("delegation-revoke", world, pk=theirs.pk)).status_code == 404
    assert browser.post(url("delegation-revoke", world, pk=theirs.pk), {"confirm": "yes"}).status_code == 404
    assert delegation_state() == before
    assert not audit_events(other.org, "delegation.revoked").exists()
    assert is_active(client, other, tokens["access_token"])


def test_an_ended_delegation_says_so(world, delegated):
    _, delegation = delegated
    policies.delegation_revoke(access=world.access, delegation=delegation)
    browser = person_client(world.owner.user)
    page = browser.get(url("delegation-revoke", world, pk=delegation.pk))
    assert page.status_code == 200 and "This delegation has ended" in page.content.decode()
    again = browser.post(url("delegation-revoke", world, pk=delegation.pk), {"confirm": "yes"}, follow=True)
    assert "That delegation had already ended." in again.content.decode()
    assert audit_events(world.org, "delegation.revoked").count() == 1


# --- May delegate to -----------------------------------------------------------------------------


def test_an_owner_chooses_the_agents_it_may_delegate_to(world):
    keeper = keeper_of(world)
    writer, _ = second_agent(world, name="writer-bot")
    browser = person_client(keeper.user)
    page = browser.get(url("agent-detail", world, pk=world.agent.pk)).content.decode()
    action = f'action="{url("agent-delegates", world, pk=world.agent.pk)}"'
    form = page[page.index(action):].split("</form>")[0]
    # No box for every agent of the org: a picker that searches the agents API offers the others.
    assert f'value="{writer.pk}"' not in form and f'value="{world.agent.pk}"' not in form
    assert f'data-picker="/api/v1/orgs/{world.org.slug}/agents"' in form and 'name="add_delegate"' in form
    response = browser.post(url("agent-delegates", world, pk=world.agent.pk), {"add_delegate": "writer-bot"})
    assert response.status_code == 302
    assert delegates_of(world.agent) == [writer.client_id]
    # Once chosen it has its box, ticked: unticking it removes it.
    page = browser.get(url("agent-delegates", world, pk=world.agent.pk).replace("delegates/", ""))
    form = page.content.decode().split('id="delegates-title"')[1].split("</form>")[0]
    assert f'value="{writer.pk}"' in form and "checked" in form
    event = latest_event(world.org, "agent.delegates_changed")
    assert event.actor_id == str(keeper.user.pk) and event.data == {
        "may_delegate_to": [writer.client_id], "previous": []}
    viewer = MemberFactory(org=world.org, role="viewer").user
    shown = person_client(viewer).get(url("agent-detail", world, pk=world.agent.pk)).content.decode()
    section = shown[shown.index('id="delegates-title"'):shown.index('id="delegations-title"')]
    assert f"writer-bot (<code>{writer.client_id}</code>)" in section and "<form" not in section


def test_a_stronger_target_is_refused_on_the_form(world):
    keeper = keeper_of(world)  # holds no member:write
    policies.connection_create(access=world.access, name="Admin", audience=ADMIN_AUDIENCE,
                               scopes=["member:write"])
    admin_bot = policies.agent_create(access=world.access, name="admin-bot", scopes=["member:write"],
                                      audiences=[ADMIN_AUDIENCE])[0]
    response = person_client(keeper.user).post(url("agent-delegates", world, pk=world.agent.pk),
                                               {"may_delegate_to": [admin_bot.pk]})
    assert response.status_code == 403
    assert "admin-bot holds more than you do" in response.content.decode()
    assert delegates_of(world.agent) == []
    assert not audit_events(world.org, "agent.delegates_changed").exists()
    denial = latest_event(world.org, "access.escalation_denied")
    assert denial.actor_id == str(keeper.user.pk)
    assert denial.data == {"reason": "may_delegate_to", "missing": ["member:write"]}


@pytest.mark.parametrize("whose", ["another org's", "its own"])
def test_an_agent_not_offered_is_an_invalid_choice(world, whose):
    target = build_world(OrgFactory()).agent if whose == "another org's" else world.agent
    response = person_client(world.owner.user).post(url("agent-delegates", world, pk=world.agent.pk),
                                                    {"may_delegate_to": [target.pk]})
    assert response.status_code == 400 and "Select a valid choice" in response.content.decode()
    by_name = person_client(world.owner.user).post(url("agent-delegates", world, pk=world.agent.pk),
                                                   {"add_delegate": target.client_id})
    assert by_name.status_code == 400
    assert "No other agent of this organization is named" in by_name.content.decode()
    assert delegates_of(world.agent) == []
    assert not audit_events(world.org, "agent.delegates_changed").exists()


def test_a_viewer_cannot_post_the_delegates_form(world):
    writer, _ = second_agent(world, name="writer-bot")
    viewer = MemberFactory(org=world.org, role="viewer").user
    response = person_client(viewer).post(url("agent-delegates", world, pk=world.agent.pk),
                                          {"may_delegate_to": [writer.pk]})
    assert response.status_code == 403
    assert delegates_of(world.agent) == []
    assert latest_event(world.org, "access.denied").data["required"] == "agent:write"


# --- The security page and the account link ------------------------------------------------------

SECURITY_FORM = {
    "session_absolute_minutes": 720, "session_idle_minutes": 60, "password_min_length": 12,
    "password_history": 0, "password_max_age_days": 0, "lockout_threshold": 5, "lockout_minutes": 15,
    "agent_token_ttl_seconds": 300, "secret_overlap_max_seconds": 86400, "secret_max_age_days": 0,
    "token_alg": "ES256",
    "deprovision_agents": "suspend", "deprovision_fallback_owner": "", "sso_break_glass": "owners",
}


def test_the_security_page_holds_the_delegation_policy(world):
    browser = person_client(world.owner.user)
    page = f"/orgs/{world.slug}/security/"
    body = browser.get(page).content.decode()
    assert "<legend>Delegation</legend>" in body and 'name="max_delegation_depth" value="3"' in body
    form = {**SECURITY_FORM, "max_delegation_depth": 2, "delegation_max_lifetime_seconds": 3600,
            "delegations_end_with_session": "on"}  # refresh tokens unticked
    assert browser.post(page, form).status_code == 302
    saved = AgentPolicy.objects.for_org(world.org).get()
    assert (saved.max_delegation_depth, saved.delegation_max_lifetime_seconds,
            saved.delegation_refresh_tokens, saved.delegations_end_with_session) == (2, 3600, False, True)
    assert set(latest_event(world.org, "policy.changed").data["fields"]) == {
        "max_delegation_depth", "delegation_max_lifetime_seconds", "delegation_refresh_tokens",
        "delegations_end_with_session"}


@pytest.mark.parametrize("change", [{"max_delegation_depth": 9}, {"delegation_max_lifetime_seconds": 60}])
def test_the_security_page_refuses_out_of_range_delegation_settings(world, change):
    browser = person_client(world.owner.user)
    form = {**SECURITY_FORM, "max_delegation_depth": 3, "delegation_max_lifetime_seconds": 3600,
            "delegation_refresh_tokens": "on", "lockout_threshold": 4, **change}
    response = browser.post(f"/orgs/{world.slug}/security/", form)
    assert response.status_code == 400 and 'class="field-error"' in response.content.decode()
    assert not AgentPolicy.objects.for_org(world.org).exists()
    assert not audit_events(world.org, "policy.changed").exists()


def test_every_page_links_to_agents_acting_for_me(world):
    body = person_client(world.owner.user).get(url("agents", world)).content.decode()
    assert f'href="{reverse("agents:account-delegations")}">Agents acting for me</a>' in body
