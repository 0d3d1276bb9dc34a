from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.login_flow import session_label
from accounts.models import UserSession
from audit.models import AuditEntry
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

PAGE = "/account/sessions/"


def _signed_in(user, agent="Browser A") -> Client:
    client = Client(HTTP_USER_AGENT=agent)
    response = client.post("/login/", {"email": user.email, "password": PASSWORD})
    assert response.status_code == 302
    return client


def _key(client) -> str:
    return client.session.session_key


def _is_signed_in(client) -> bool:
    return client.get(PAGE).status_code == 200


def _last_revocation():
    return AuditEntry.objects.unscoped().filter(event_name="session.revoked").latest("ts")


def test_the_page_lists_own_unexpired_sessions_newest_first_and_marks_this_one():
    user, other = UserFactory(password=PASSWORD), UserFactory(password=PASSWORD)
    older, newer, stale = _signed_in(user, "Old Laptop"), _signed_in(user, "New Phone"), _signed_in(user)
    now = timezone.now()
    UserSession.objects.filter(session_key=_key(older)).update(created_at=now - timedelta(hours=1))
    UserSession.objects.filter(session_key=_key(stale)).update(expire_date=now - timedelta(seconds=1))
    _signed_in(other, "Someone Else")
    response = newer.get(PAGE)
    html = response.content.decode()
    assert response.status_code == 200 and response["Cache-Control"].startswith("max-age=0")
    assert html.index("New Phone") < html.index("Old Laptop")
    assert "Someone Else" not in html and session_label(_key(stale)) not in html
    assert html.count("This session") == 1
    assert [row.current for row in response.context["rows"]] == [True, False]
    for client in (older, newer, stale):  # labels only: a session key is a credential
        assert _key(client) not in html


def test_revoking_one_session_makes_its_next_request_anonymous():
    user = UserFactory(password=PASSWORD)
    mine, lost = _signed_in(user), _signed_in(user, "Lost Phone")
    label = session_label(_key(lost))
    response = mine.post("/account/sessions/revoke/", {"session": label, "confirm": "yes"})
    assert response.status_code == 302 and response["Location"] == PAGE
    assert not _is_signed_in(lost) and _is_signed_in(mine)
    entry = _last_revocation()
    assert (entry.outcome, entry.actor_id, entry.target_id) == ("success", str(user.pk), str(user.pk))
    assert entry.data == {"session": label, "reason": "user_revoked", "count": 1}


def test_revoking_this_session_signs_the_caller_out():
    user = UserFactory(password=PASSWORD)
    mine, other = _signed_in(user), _signed_in(user)
    own = session_label(_key(mine))
    response = mine.post("/account/sessions/revoke/", {"session": own, "confirm": "yes"})
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert not _is_signed_in(mine) and _is_signed_in(other)


def test_signing_out_all_other_sessions_keeps_this_one():
    user = UserFactory(password=PASSWORD)
    mine, second, third = _signed_in(user), _signed_in(user), _signed_in(user)
    response = mine.post("/account/sessions/revoke-others/", {"confirm": "yes"})
    assert response.status_code == 302
    assert _is_signed_in(mine) and not _is_signed_in(second) and not _is_signed_in(third)
    assert list(user.sessions.values_list("session_key", flat=True)) == [_key(mine)]
    assert _last_revocation().data == {"reason": "user_signed_out_others", "count": 2}


def test_another_users_session_cannot_be_revoked():
    attacker, victim = UserFactory(password=PASSWORD), UserFactory(password=PASSWORD)
    attacking, victims = _signed_in(attacker), _signed_in(victim)
    label = session_label(_key(victims))
    response = attacking.post("/account/sessions/revoke/", {"session": label, "confirm": "yes"})
    assert response.status_code == 404
    assert UserSession.objects.filter(session_key=_key(victims)).exists() and _is_signed_in(victims)
    entry = _last_revocation()
    assert (entry.outcome, entry.actor_id) == ("denied", str(attacker.pk))
    assert entry.data == {"session": label, "reason": "unknown_session"}


def test_a_raw_session_key_or_garbage_is_refused_without_any_lookup():
    user = UserFactory(password=PASSWORD)
    mine, other = _signed_in(user), _signed_in(user)
    response = mine.post("/account/sessions/revoke/", {"session": _key(other)})
    assert response.status_code == 400
    assert user.sessions.count() == 2 and _is_signed_in(other)
    entry = _last_revocation()
    assert (entry.outcome, entry.data) == ("denied", {"reason": "malformed"})


def test_anonymous_callers_are_sent_to_login_and_change_nothing():
    user = UserFactory(password=PASSWORD)
    victim = _signed_in(user)
    anonymous = Client()
    assert anonymous.get(PAGE)["Location"].startswith("/login/")
    response = anonymous.post("/account/sessions/revoke-others/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert _is_signed_in(victim)
    assert not AuditEntry.objects.unscoped().filter(event_name="session.revoked").exists()


def test_a_nul_in_the_user_agent_signs_in_and_is_kept_without_it():
    # PostgreSQL refuses NUL in text: stored as sent, the sign-in's session row would be a 500.
    client = _signed_in(UserFactory(password=PASSWORD), agent="Browser\x00 A")
    assert _is_signed_in(client)
    assert UserSession.objects.get(session_key=_key(client)).user_agent == "Browser A"
