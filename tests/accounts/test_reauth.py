"""Sessions and re-authentication (SECURITY_CASES D25-D30)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from accounts.models import ApiKey, UserSession
from audit.models import AuditEntry
from rbac.models import Role
from scim.models import ScimToken
from tests.factories import PASSWORD, MemberFactory, UserFactory, sign_in

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def _login(client, user):
    response = client.post("/login/", {"email": user.email, "password": PASSWORD})
    assert response.status_code == 302
    return client


def test_a_planted_session_key_is_replaced_at_login(owner):
    client = Client()
    session = client.session
    session["planted"] = True
    session.save()
    planted = session.session_key
    _login(client, owner.user)
    assert client.cookies["sessionid"].value != planted
    assert not UserSession.objects.filter(session_key=planted).exists()
    assert UserSession.objects.get(session_key=client.cookies["sessionid"].value).user == owner.user


def test_production_cookies_are_host_prefixed_secure_httponly_and_lax():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "IAM_"))}
    env.update(DJANGO_DEBUG="0", DJANGO_SECRET_KEY="s" * 20 + "x8Yq!" * 8, DJANGO_ALLOWED_HOSTS="iam.example",
               IAM_HMAC_KEYS="k:" + "a" * 43, IAM_ENCRYPTION_KEYS="e:" + "b" * 43)
    code = ("from django.conf import settings as s; import json; print(json.dumps([s.SESSION_COOKIE_NAME, "
            "s.SESSION_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, s.SESSION_COOKIE_SAMESITE, "
            "s.CSRF_COOKIE_NAME, s.CSRF_COOKIE_SECURE]))")
    result = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values == ["__Host-sessionid", True, True, "Lax", "__Host-csrftoken", True]


def test_a_password_change_ends_other_sessions_but_keeps_this_one(org, owner):
    here, elsewhere = _login(Client(), owner.user), _login(Client(), owner.user)
    response = here.post("/account/password/", {"current_password": PASSWORD,
                                                  "new_password": "a fresh and long passphrase 7"})
    assert response.status_code == 302
    assert here.get(f"/api/v1/orgs/{org.slug}/members").status_code == 200
    assert elsewhere.get(f"/api/v1/orgs/{org.slug}/members").status_code == 401
    entry = AuditEntry.objects.unscoped().filter(event_name="password.changed").latest("seq")
    assert entry.data == {"sessions_revoked": 1, "reason": "changed"}


def test_a_wrong_current_password_changes_nothing(owner):
    client = _login(Client(), owner.user)
    before = owner.user.password
    response = client.post("/account/password/", {"current_password": "nope",
                                                   "new_password": "a fresh and long passphrase 7"})
    assert response.status_code == 400
    owner.user.refresh_from_db()
    assert owner.user.password == before


def test_deactivating_a_user_ends_their_sessions_on_the_next_request(org, owner):
    client = _login(Client(), owner.user)
    assert client.get(f"/api/v1/orgs/{org.slug}/members").status_code == 200
    owner.user.is_active = False
    owner.user.save()
    assert client.get(f"/api/v1/orgs/{org.slug}/members").status_code == 401


def test_an_admin_revokes_a_members_sessions(org, owner):
    member = MemberFactory(org=org, user=UserFactory(password=PASSWORD))
    victim = _login(Client(), member.user)
    admin = sign_in(Client(), owner.user)
    response = admin.post(f"/api/v1/orgs/{org.slug}/members/{member.pk}/revoke-sessions")
    assert response.status_code == 200 and response.json() == {"revoked": 1}
    assert victim.get(f"/api/v1/orgs/{org.slug}/members").status_code == 401
    # The account is not this org's: its sessions lose this org, and live on elsewhere.
    entry = AuditEntry.objects.for_org(org).filter(event_name="member.sessions_ended").latest("seq")
    assert (entry.actor_id, entry.data) == (str(owner.user.pk), {"scope": "org", "sessions_revoked": 1})


def test_a_member_admin_cannot_revoke_an_owners_sessions(org, owner):
    from rbac.models import RoleAssignment
    from tests.factories import RoleFactory

    admin = MemberFactory(org=org, role="viewer")
    RoleAssignment.objects.create(membership=admin, role=RoleFactory(org=org, permissions=["member:write"]))
    owner_client = _login(Client(), owner.user)
    response = sign_in(Client(), admin.user).post(
        f"/api/v1/orgs/{org.slug}/members/{owner.pk}/revoke-sessions")
    assert response.status_code == 403
    assert owner_client.get(f"/api/v1/orgs/{org.slug}/members").status_code == 200


SENSITIVE = [
    ("post", "api-keys", {"name": "deploy", "permissions": ["member:read"]}, ApiKey),
    ("post", "roles", {"name": "Ops", "permissions": ["agent:read"]}, Role),
    ("post", "scim-tokens", {"name": "Okta"}, ScimToken),
    ("get", "exports/access-review.csv", None, None),
]


@pytest.mark.parametrize("method,path,body,model", SENSITIVE, ids=[p for _, p, _, _ in SENSITIVE])
def test_sensitive_actions_with_a_stale_session_need_reauth_then_succeed(org, owner, method, path, body,
                                                                        model):
    client = sign_in(Client(), owner.user, auth_age=11 * 60)
    url = f"/api/v1/orgs/{org.slug}/{path}"
    call = (lambda: client.post(url, body, content_type="application/json")) if method == "post" \
        else (lambda: client.get(url))
    refused = call()
    assert refused.status_code == 403 and refused.json()["error"] == "reauth_required"
    if model:
        assert not model.objects.for_org(org).exists()
    assert AuditEntry.objects.for_org(org).latest("seq").event_name == "reauth.required"
    old_key = client.cookies["sessionid"].value
    confirmed = client.post("/reauth/", {"password": PASSWORD})
    assert confirmed.status_code == 302
    assert client.cookies["sessionid"].value != old_key  # a new session key after re-auth
    assert call().status_code in (200, 201)
    assert AuditEntry.objects.unscoped().filter(event_name="reauth.success").exists()


def test_a_wrong_reauth_password_is_refused_and_counts_towards_lockout(org, owner):
    client = sign_in(Client(), owner.user, auth_age=3600)
    for _ in range(5):
        assert client.post("/reauth/", {"password": "wrong"}).status_code == 401
    assert client.post("/reauth/", {"password": PASSWORD}).status_code == 401  # now locked
    failures = AuditEntry.objects.unscoped().filter(event_name="reauth.failure")
    assert failures.filter(org__isnull=True).count() == 6  # the platform chain
    assert failures.filter(org=org).count() == 6  # and the log of the org the person acts in


def test_api_keys_are_not_subject_to_the_session_gate(org, key_client):
    from core.permissions import Perm

    response = key_client(*Perm).post(f"/api/v1/orgs/{org.slug}/api-keys",
                                      {"name": "ci", "permissions": ["member:read"]}, format="json")
    assert response.status_code == 201


def test_a_form_sent_to_re_authenticate_is_offered_again_without_its_secrets(org, owner):
    client = sign_in(Client(), owner.user, auth_age=3600)
    url = f"/orgs/{org.slug}/teams/"
    sent = client.post(url, {"name": "Platform", "description": "Runs the fleet", "password": "not kept"})
    assert sent.status_code == 302 and sent["Location"].startswith("/reauth/")
    from rbac.models import Team
    assert not Team.objects.for_org(org).exists()  # nothing happened yet
    page = client.post(sent["Location"], {"password": PASSWORD, "next": url})
    assert page.status_code == 200
    body = page.content.decode()
    assert f'action="{url}"' in body and 'value="Platform"' in body and "not kept" not in body
    # Submitting it (with the page's fresh CSRF token) does what the first attempt asked.
    resumed = client.post(url, {"name": "Platform", "description": "Runs the fleet"})
    assert resumed.status_code == 302 and Team.objects.for_org(org).get().name == "Platform"
    # The kept form is gone: another re-authentication lands on the page as usual.
    again = client.post("/reauth/", {"password": PASSWORD, "next": url})
    assert again.status_code == 302
