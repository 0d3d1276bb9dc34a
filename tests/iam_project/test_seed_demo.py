"""`seed_demo` runs on every `make run`: a second run changes nobody's password and ends no session."""

import io

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client

from accounts.models import User, UserSession
from accounts.services import password_set
from audit.models import AuditEntry
from iam_project.management.commands.seed_demo import DEMO_OWNER, DEMO_PASSWORD, PEOPLE

pytestmark = pytest.mark.django_db
CHOSEN = "a passphrase alice chose herself 42"


@pytest.fixture(autouse=True)
def development(settings):
    settings.DEBUG = True  # the command refuses production mode; tests run with DEBUG off


def seed() -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def signed_in(email, password) -> Client:
    client = Client()
    response = client.post("/login/", {"email": email, "password": password})
    assert response.status_code == 302 and "_auth_user_id" in client.session
    return client


def hashes() -> dict:
    return dict(User.objects.order_by("email").values_list("email", "password"))


def sessions() -> set:
    return set(UserSession.objects.values_list("session_key", "user_id"))


def test_a_second_run_leaves_every_password_hash_and_session_unchanged():
    first = seed()
    owner = signed_in(DEMO_OWNER, DEMO_PASSWORD)
    alice = signed_in(PEOPLE[0][0], DEMO_PASSWORD)
    before_hashes, before_sessions = hashes(), sessions()
    before_audit = AuditEntry.objects.unscoped().count()
    second = seed()
    assert hashes() == before_hashes and sessions() == before_sessions and len(before_sessions) == 2
    assert AuditEntry.objects.unscoped().count() == before_audit  # nothing done, nothing recorded
    for printed in (first, second):
        assert f"email:    {DEMO_OWNER}" in printed and f"password: {DEMO_PASSWORD}" in printed
    assert "changed since" not in second
    assert owner.get("/orgs/demo/members/").status_code == 200
    overview = owner.get("/orgs/demo/").content.decode()
    assert "1 invitation is waiting to be accepted" in overview  # erin, invited once, not twice

    assert alice.get("/account/sessions/").status_code == 200


def test_a_password_someone_chose_survives_a_rerun_with_their_sessions():
    seed()
    alice_user = User.objects.get(email=PEOPLE[0][0])
    password_set(user=alice_user, new_password=CHOSEN, reason="changed")
    password_set(user=User.objects.get(email=DEMO_OWNER), new_password=CHOSEN + " too", reason="changed")
    alice = signed_in(alice_user.email, CHOSEN)
    before_hashes, before_sessions = hashes(), sessions()
    before_audit = AuditEntry.objects.unscoped().count()
    printed = seed()
    assert hashes() == before_hashes and sessions() == before_sessions
    assert AuditEntry.objects.unscoped().count() == before_audit  # no password.changed, no session.revoked
    assert alice.get("/account/sessions/").status_code == 200
    signed_in(alice_user.email, CHOSEN)
    # The login is still printed, with a word that the owner has moved on from it.
    assert f"password: {DEMO_PASSWORD}" in printed and "changed since the demo was seeded" in printed


def test_passkeys_on_an_ip_address_origin_are_flagged(settings):
    settings.IAM_WEBAUTHN_RP_ID = "127.0.0.1"
    assert "Passkeys need a host name" in seed()
    settings.IAM_WEBAUTHN_RP_ID = "localhost"
    assert "Passkeys need a host name" not in seed()


@pytest.mark.django_db(transaction=True)  # the invitation mail is queued when the seed commits
def test_the_demo_invitation_is_never_mailed():
    seed()
    assert User.objects.filter(email="erin@demo.example").exists()
    assert not [m for m in mail.outbox if m.to == ["erin@demo.example"]]
