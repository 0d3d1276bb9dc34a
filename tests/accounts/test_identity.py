import hashlib
import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import ApiKey, User
from agents.models import Agent, AgentSecret, Connection
from audit.models import AuditEntry
from core.permissions import Perm
from core.secrets import secret_hash
from tests.conftest import as_outside_requests
from tests.factories import UserFactory, api_key_for

pytestmark = pytest.mark.django_db


def test_email_is_unique_case_insensitively_after_unicode_normalisation():
    User.objects.create_user("Ａlice@Example.COM")  # fullwidth A normalises to A under NFKC
    assert User.objects.get().email == "alice@example.com"
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create_user("ALICE@example.com")


def test_the_database_refuses_an_unnormalised_email():
    user = UserFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.filter(pk=user.pk).update(email="Mixed@Example.com")


def _members(client, org):
    return client.get(f"/api/v1/orgs/{org.slug}/members")


def test_api_key_secret_is_stored_as_a_keyed_hash_only(org, key_client):
    response = key_client(*Perm).post(f"/api/v1/orgs/{org.slug}/api-keys",
                                      {"name": "ci", "permissions": ["member:read"]}, format="json")
    assert response.status_code == 201
    secret = response.json()["secret"]
    raw = secret.split("_", 2)[2]
    stored = ApiKey.objects.for_org(org).values().get(pk=response.json()["id"])
    assert raw not in json.dumps(stored, default=str)
    # An HMAC under the server key, not a bare digest anyone could recompute from a guess.
    assert stored["secret_hash"] == secret_hash(raw, stored["hash_kid"])[0]
    assert stored["secret_hash"] != hashlib.sha256(raw.encode()).hexdigest()


@pytest.mark.parametrize("reason", ["bad_secret", "revoked", "expired"])
def test_a_rejected_api_key_gets_401_and_an_audit_entry(org, api, reason):
    key, secret = api_key_for(org, [Perm.MEMBER_READ])
    if reason == "bad_secret":
        secret = secret[:-4] + "AAAA"
    elif reason == "revoked":
        ApiKey.objects.for_org(org).filter(pk=key.pk).update(revoked_at=timezone.now())
    else:  # expiry holds by timestamp alone: no job has to run
        ApiKey.objects.for_org(org).filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    response = _members(api, org)
    assert response.status_code == 401
    assert response.json() == {"error": "authentication_failed", "detail": "Invalid API key."}
    entry = AuditEntry.objects.for_org(org).latest("seq")
    assert (entry.event_name, entry.data) == ("api_key.rejected", {"reason": reason})


@pytest.mark.parametrize("header", ["Bearer garbage", "Bearer iamk_zz_x", "Bearer iamk_0123456789abcdef_x"])
def test_malformed_or_unknown_keys_get_401(org, api, header):
    api.credentials(HTTP_AUTHORIZATION=header)
    assert _members(api, org).status_code == 401


def test_last_used_is_recorded_at_most_once_a_minute(org, api, django_assert_num_queries):
    key, secret = api_key_for(org, [Perm.MEMBER_READ])
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert _members(api, org).status_code == 200
    first = ApiKey.objects.for_org(org).get(pk=key.pk).last_used_at
    assert first is not None
    assert _members(api, org).status_code == 200
    assert ApiKey.objects.for_org(org).get(pk=key.pk).last_used_at == first


def test_api_key_request_costs_a_constant_number_of_queries(org, api, django_assert_num_queries):
    from tests.factories import MemberFactory

    key, secret = api_key_for(org, [Perm.MEMBER_READ])
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    _members(api, org)  # records last_used
    for _ in range(3):
        MemberFactory(org=org)
    # key lookup (with its creator's standing: an owner's key costs nothing more), members, their
    # custom roles, their teams
    with django_assert_num_queries(4):
        assert len(_members(api, org).json()["results"]) == 4  # the key's creator and the three
    # A creator who is no owner: their custom and team roles are read too, in one query.
    member = MemberFactory(org=org, role="member")
    _, limited = api_key_for(org, [Perm.MEMBER_READ], created_by=member.user)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {limited}")
    _members(api, org)  # records last_used
    with django_assert_num_queries(5):
        assert _members(api, org).status_code == 200


def test_api_key_create_shows_the_secret_once(org, key_client):
    client = key_client(*Perm)
    created = client.post(f"/api/v1/orgs/{org.slug}/api-keys",
                          {"name": "deploy", "permissions": ["member:read"]}, format="json")
    assert created.status_code == 201 and created["Cache-Control"] == "no-store"
    secret = created.json()["secret"]
    listed = client.get(f"/api/v1/orgs/{org.slug}/api-keys/{created.json()['id']}").json()
    assert "secret" not in listed and secret not in json.dumps(listed)
    assert listed["display"] == f"iamk_{secret.split('_', 2)[1]}_…"
    assert not AuditEntry.objects.for_org(org).filter(data__icontains=secret.split("_", 2)[2]).exists()


def test_bootstrap_org_prints_json_with_a_working_owner_key(capsys, api):
    with as_outside_requests():
        call_command("bootstrap_org", "--slug", "acme", "--name", "Acme", "--owner-email", "Root@Acme.test",
                     "--api-key", "--json")
    result = json.loads(capsys.readouterr().out)
    assert result["org"] == "acme" and result["owner"] == "root@acme.test"
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {result['api_key']}")
    members = _members_by_slug(api, "acme")
    assert [m["role"] for m in members] == ["owner"]


def _members_by_slug(client, slug):
    response = client.get(f"/api/v1/orgs/{slug}/members")
    assert response.status_code == 200
    return response.json()["results"]


def test_seed_demo_is_idempotent(capsys, settings):
    settings.DEBUG = True
    with as_outside_requests():
        call_command("seed_demo")
    with as_outside_requests():
        call_command("seed_demo")
    out = capsys.readouterr().out
    assert "owner@demo.example" in out
    # Five people with accounts, and erin, invited: an account with no password until she accepts.
    assert User.objects.filter(email__endswith="@demo.example").count() == 6
    assert not User.objects.get(email="erin@demo.example").has_usable_password()
    agent = Agent.objects.unscoped().get(name="Triage bot")
    assert (agent.scopes, agent.owners.get().user.email) == (["tickets:read"], "alice@demo.example")
    connection = Connection.objects.unscoped().get(audience="https://tickets.demo.example/api")
    assert connection.scopes == ["tickets:read", "tickets:write"]
    # Neither secret is printed: only their lookup ids exist outside the hash, and not in the output.
    assert AgentSecret.objects.get(agent=agent).lookup_id not in out
    assert "ags_" not in out and "cns_" not in out and "rotate" in out
    settings.DEBUG = False
    with pytest.raises(CommandError):
        with as_outside_requests():
            call_command("seed_demo")


def test_openapi_schema_and_docs_are_served(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/orgs/{org}/members" in schema.content
    assert client.get("/api/docs/").status_code == 200


def test_signing_in_does_not_accept_an_invitation(client, org):
    from tests.factories import PASSWORD, MemberFactory

    invited = MemberFactory(org=org, status="invited", user=UserFactory(password=PASSWORD))
    seq = AuditEntry.objects.for_org(org).count()
    response = client.post("/login/", {"email": invited.user.email, "password": PASSWORD})
    assert response.status_code == 302
    invited.refresh_from_db()
    assert invited.status == "invited"  # only the person's own answer makes them a member
    assert AuditEntry.objects.for_org(org).count() == seq
    assert client.get(f"/api/v1/orgs/{org.slug}/members").status_code == 404
