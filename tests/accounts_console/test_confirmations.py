"""Every destructive action on the person's own pages says what it ends first, and a POST without
the confirmation changes nothing: signing out a session or all the others, revoking delegations
the person granted (with the tokens they reach), and (tests/accounts_console/test_account_pages.py)
replacing recovery codes and removing a factor."""

import pytest
from django.test import Client
from django.urls import reverse

from accounts.login_flow import session_label
from accounts.models import UserSession
from agents.models import Delegation, RefreshToken
from audit.models import AuditEntry
from tests.accounts_console.test_account_pages import CHROME_MAC, FIREFOX_LINUX, _session
from tests.agents_console.conftest import delegation_of, tokens
from tests.factories import AgentFactory, MemberFactory, OrgFactory, UserFactory, sign_in

pytestmark = pytest.mark.django_db


def consequences(response) -> str:
    html = response.content.decode()
    return html[html.index('data-testid="consequences"'):].split("<form")[0]  # the list, up to the button


def revocations():
    return AuditEntry.objects.unscoped().filter(event_name="session.revoked")


def test_signing_out_one_session_asks_first_naming_the_device(db):
    user = UserFactory()
    client = sign_in(Client(HTTP_USER_AGENT=CHROME_MAC), user)
    lost = _session(user, FIREFOX_LINUX, ip="198.51.100.7")
    label = session_label(lost.session_key)
    ask = client.post(reverse("accounts:session-revoke"), {"session": label})
    html = ask.content.decode()
    assert ask.status_code == 200
    assert "Sign out Firefox 133 on Linux?" in html and "198.51.100.7" in html
    assert "That browser's next request is signed out" in consequences(ask)
    assert 'name="confirm" value="yes"' in html and f'name="session" value="{label}"' in html
    assert UserSession.objects.filter(session_key=lost.session_key).exists()
    assert not revocations().exists()
    done = client.post(reverse("accounts:session-revoke"), {"session": label, "confirm": "yes"})
    assert done.status_code == 302
    assert not UserSession.objects.filter(session_key=lost.session_key).exists()
    assert revocations().get().data["reason"] == "user_revoked"


def test_signing_out_this_session_says_so(db):
    user = UserFactory()
    client = sign_in(Client(), user)
    own = session_label(client.session.session_key)
    ask = client.post(reverse("accounts:session-revoke"), {"session": own})
    assert "(this session)?" in ask.content.decode()
    assert "you are signed out here" in consequences(ask)
    assert client.get(reverse("accounts:sessions")).status_code == 200  # still signed in


def test_an_unknown_session_is_not_asked_about(db):
    user = UserFactory()
    client = sign_in(Client(), user)
    other = _session(UserFactory(), FIREFOX_LINUX)
    ask = client.post(reverse("accounts:session-revoke"), {"session": session_label(other.session_key)})
    assert ask.status_code == 404 and 'name="confirm"' not in ask.content.decode()
    assert UserSession.objects.filter(session_key=other.session_key).exists()


def test_signing_out_all_others_lists_them_and_a_bare_post_ends_none(db):
    user = UserFactory()
    client = sign_in(Client(HTTP_USER_AGENT=CHROME_MAC), user)
    _session(user, FIREFOX_LINUX)
    _session(user, "curl/8.5.0")
    ask = client.post(reverse("accounts:sessions-revoke-others"))
    said = consequences(ask)
    assert ask.status_code == 200 and "Sign out 2 other sessions?" in ask.content.decode()
    assert "Firefox 133 on Linux" in said and "curl 8.5" in said and "This session stays signed in" in said
    assert user.sessions.count() == 3 and not revocations().exists()
    client.post(reverse("accounts:sessions-revoke-others"), {"confirm": "yes"})
    assert list(user.sessions.values_list("session_key", flat=True)) == [client.session.session_key]


def test_signing_out_others_with_none_asks_nothing(db):
    client = sign_in(Client(), UserFactory())
    response = client.post(reverse("accounts:sessions-revoke-others"))
    assert response.status_code == 302 and response["Location"] == reverse("accounts:sessions")


# --- delegations the person granted ------------------------------------------------------------


@pytest.fixture
def granted(db):
    """Pat's delegations to two agents in two orgs, with tokens issued under them."""
    user = UserFactory(email="pat@example.com")
    acme, beta = OrgFactory(name="Acme Robotics"), OrgFactory(name="Beta Labs")
    pat_acme, pat_beta = MemberFactory(org=acme, user=user), MemberFactory(org=beta, user=user)
    triage, deploy = AgentFactory(org=acme, name="Triage bot"), AgentFactory(org=beta, name="Deploy bot")
    first, second = delegation_of(triage, pat_acme), delegation_of(deploy, pat_beta)
    fields, _ = RefreshToken.mint()
    RefreshToken.objects.create(org=acme, delegation=first, agent=triage, **fields)
    tokens(acme, triage, issued=[0, 1], delegation=first)
    tokens(acme, triage, issued=[0])  # not under a delegation
    tokens(beta, deploy, issued=[0, 0, 0], delegation=second)
    someone = delegation_of(triage, MemberFactory(org=acme))  # another person's: never counted
    tokens(acme, triage, issued=[0] * 5, delegation=someone)
    fields, _ = RefreshToken.mint()
    RefreshToken.objects.create(org=acme, delegation=someone, agent=triage, **fields)
    return sign_in(Client(), user), first, second, someone


def _statuses(*delegations):
    return [Delegation.objects.unscoped().get(pk=d.pk).status for d in delegations]


def test_revoking_one_delegation_counts_what_stops_and_a_bare_post_revokes_nothing(granted):
    client, first, second, _ = granted
    ask = client.post(reverse("agents:account-delegations-revoke"), {"delegation": first.pk})
    said = consequences(ask)
    assert ask.status_code == 200
    assert "Stop Triage bot acting for you in Acme Robotics?" in ask.content.decode()
    assert "Every token issued under this delegation (2 so far) stops working" in said
    assert "1 usable refresh token ends." in said
    assert _statuses(first, second) == ["active", "active"]
    done = client.post(reverse("agents:account-delegations-revoke"),
                       {"delegation": first.pk, "confirm": "yes"})
    assert done.status_code == 302
    assert _statuses(first, second) == ["revoked", "active"]


def test_revoking_all_counts_every_org_and_only_the_persons_own(granted):
    client, first, second, someone = granted
    ask = client.post(reverse("agents:account-delegations-revoke"), {"all": "on"})
    said = consequences(ask)
    assert "Stop all 2 agents acting for you?" in ask.content.decode()
    assert "Every token issued under these delegations (5 so far)" in said
    assert "1 usable refresh token ends." in said
    assert "Deploy bot" in ask.content.decode() and "Beta Labs" in ask.content.decode()
    assert _statuses(first, second, someone) == ["active"] * 3
    client.post(reverse("agents:account-delegations-revoke"), {"all": "on", "confirm": "yes"})
    assert _statuses(first, second, someone) == ["revoked", "revoked", "active"]


def test_another_persons_delegation_is_not_asked_about(granted):
    client, _, _, someone = granted
    response = client.post(reverse("agents:account-delegations-revoke"), {"delegation": someone.pk})
    assert response.status_code == 302 and _statuses(someone) == ["active"]


def test_the_confirmation_costs_the_same_queries_at_2_and_12_delegations(granted):
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    client, first, *_ = granted

    def cost() -> int:
        with CaptureQueriesContext(db) as captured:
            assert client.post(reverse("agents:account-delegations-revoke"), {"all": "on"}).status_code == 200
        return len(captured)

    small = cost()
    person = first.membership
    for _ in range(10):
        delegation_of(AgentFactory(org=first.org), person)
    assert cost() == small
