"""Signing-key rotation: publish before signing, keep publishing until the old tokens expire."""

from datetime import timedelta

import jwt
import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from agents.keys import caches_clear, published_keys, signer_for, signing_key_rotate
from agents.models import AgentSecret, SigningKey
from agents.policies import agent_create, agent_secret_rotate, connection_create
from agents.tasks import rotation_windows_close, signing_keys_maintain
from agents.tokens import TokenInvalid, token_verify
from audit.models import AuditEntry
from rbac.guard import access_for_user
from tests.conftest import as_outside_requests
from tests.factories import OrgFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_key_caches():
    caches_clear()
    yield
    caches_clear()


def test_a_new_key_is_published_before_it_signs_and_the_old_one_stays_until_its_tokens_expire():
    org = OrgFactory()
    first = signer_for(org, "ES256")
    new = signing_key_rotate(org=org, alg="ES256", lead=timedelta(hours=1))
    caches_clear()
    assert {k["kid"] for k in published_keys(org)} == {first.kid, new.kid}
    assert signer_for(org, "ES256").kid == first.kid  # the new key is not signing yet
    SigningKey.objects.for_org(org).filter(kid=new.kid).update(activates_at=timezone.now())
    SigningKey.objects.for_org(org).filter(kid=first.kid).update(retired_at=timezone.now())
    caches_clear()
    assert signer_for(org, "ES256").kid == new.kid
    assert first.kid in {k["kid"] for k in published_keys(org)}
    old = SigningKey.objects.for_org(org).get(kid=first.kid)
    assert old.unpublish_at >= old.retired_at + timedelta(hours=1)
    SigningKey.objects.for_org(org).filter(kid=first.kid).update(unpublish_at=timezone.now())
    assert {k["kid"] for k in published_keys(org)} == {new.kid}


def test_the_jwks_holds_public_keys_only_and_the_private_key_is_sealed():
    org = OrgFactory()
    signer = signer_for(org, "ES256")
    body = Client().get(f"/oauth/{org.slug}/jwks.json").json()
    (key,) = body["keys"]
    assert key["kid"] == signer.kid and key["alg"] == "ES256" and "d" not in key
    stored = SigningKey.objects.for_org(org).get(kid=signer.kid).private_key
    assert "PRIVATE KEY" not in stored and stored.count(".") == 2  # kid.nonce.ciphertext


def test_the_command_and_the_task_rotate(capsys):
    org = OrgFactory()
    signer_for(org, "ES256")
    with as_outside_requests():
        call_command("signing_keys_rotate", "--org", org.slug)
    assert f"{org.slug}: new key" in capsys.readouterr().out
    assert SigningKey.objects.for_org(org).count() == 2
    SigningKey.objects.for_org(org).update(activates_at=timezone.now() - timedelta(days=400))
    assert signing_keys_maintain.apply().get() == 1
    assert AuditEntry.objects.for_org(org).filter(event_name="signing_key.created").count() == 3


def test_a_token_signed_by_an_unpublished_key_no_longer_verifies():
    org = OrgFactory()
    signer = signer_for(org, "ES256")
    now = int(timezone.now().timestamp())
    claims = {"iss": f"http://127.0.0.1:8000/oauth/{org.slug}", "sub": "agent:x", "aud": "https://a.example",
              "exp": now + 60, "iat": now, "jti": "j1", "client_id": "agt_x", "scope": "s", "org": org.slug}
    token = jwt.encode(claims, signer.key, algorithm="ES256", headers={"kid": signer.kid, "typ": "at+jwt"})
    assert token_verify(token)["jti"] == "j1"
    SigningKey.objects.for_org(org).update(unpublish_at=timezone.now())
    caches_clear()
    with pytest.raises(TokenInvalid) as refused:
        token_verify(token)
    assert refused.value.reason == "unknown_key"


def test_the_window_task_only_records_what_the_timestamp_already_ended(org, owner):
    access = access_for_user(user=owner.user, org_slug=org.slug)
    connection, _ = connection_create(access=access, name="t", audience="https://t.example", scopes=["t:r"])
    agent, _ = agent_create(access=access, name="bot", scopes=["t:r"], audiences=[connection.audience])
    agent_secret_rotate(access=access, agent=agent, overlap_seconds=60)
    assert rotation_windows_close.apply().get() == 0
    AgentSecret.objects.filter(agent=agent, expires_at__isnull=False).update(
        expires_at=timezone.now() - timedelta(seconds=1))
    assert rotation_windows_close.apply().get() == 1
    assert rotation_windows_close.apply().get() == 0
    entry = AuditEntry.objects.for_org(org).latest("seq")
    assert (entry.event_name, entry.data["how"]) == ("agent.secret_window_ended", "expired")
