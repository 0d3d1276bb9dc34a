"""Per-org security policy: changed by owners (re-auth, audited), enforced on every org request."""

import pytest
from django.test import Client
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import SecurityPolicy
from accounts.policy import user_policy
from accounts.services import password_set
from agents.models import AgentPolicy
from agents.policy import agent_policy_for_org
from audit.models import AuditEntry
from core.errors import Invalid
from tests.factories import PASSWORD, MemberFactory, OrgFactory, UserFactory, sign_in

pytestmark = pytest.mark.django_db


def _policy(org, **fields):
    SecurityPolicy.objects.update_or_create(org=org, defaults=fields)


def _members(client, org):
    return client.get(f"/api/v1/orgs/{org.slug}/members")


def test_owner_changes_the_policy_through_the_api_with_a_fresh_session(org, owner):
    client = sign_in(Client(), owner.user)
    url = f"/api/v1/orgs/{org.slug}/security-policy"
    assert client.get(url).json()["lockout_threshold"] == 5
    response = client.patch(url, {"mfa_required": True, "lockout_threshold": 3},
                            content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["mfa_required"] is True
    entry = AuditEntry.objects.for_org(org).latest("seq")
    assert entry.event_name == "policy.changed"
    assert entry.data == {"fields": ["lockout_threshold", "mfa_required"],
                          "previous": {"lockout_threshold": 5, "mfa_required": False}}


def test_policy_change_with_a_stale_session_needs_reauth_and_changes_nothing(org, owner):
    client = sign_in(Client(), owner.user, auth_age=3600)
    response = client.patch(f"/api/v1/orgs/{org.slug}/security-policy", {"lockout_threshold": 3},
                            content_type="application/json")
    assert response.status_code == 403
    assert response.json()["error"] == "reauth_required"
    assert not SecurityPolicy.objects.for_org(org).exists()
    assert AuditEntry.objects.for_org(org).latest("seq").event_name == "reauth.required"


@pytest.mark.parametrize("change", [{"lockout_threshold": 0}, {"password_min_length": 4},
                                    {"session_idle_minutes": 1}, {"password_history": 99}])
def test_out_of_range_policy_values_are_refused(org, owner, change):
    client = sign_in(Client(), owner.user)
    response = client.patch(f"/api/v1/orgs/{org.slug}/security-policy", change,
                            content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error" and set(response.json()["fields"]) == set(change)
    assert not SecurityPolicy.objects.for_org(org).exists()


def test_a_viewer_cannot_change_the_policy(org):
    viewer = MemberFactory(org=org, role="viewer")
    response = sign_in(Client(), viewer.user).patch(
        f"/api/v1/orgs/{org.slug}/security-policy", {"mfa_required": False},
        content_type="application/json")
    assert response.status_code == 403


def test_the_policy_page_saves_with_reauth(org, owner):
    client = sign_in(Client(), owner.user)
    page = f"/orgs/{org.slug}/security/"
    assert client.get(page).status_code == 200
    form = {"session_absolute_minutes": 600, "session_idle_minutes": 30, "password_min_length": 14,
            "password_history": 3, "password_max_age_days": 0, "lockout_threshold": 4,
            "lockout_minutes": 20, "agent_token_ttl_seconds": 300, "secret_overlap_max_seconds": 3600,
            "secret_max_age_days": 0,
            "token_alg": "ES256", "deprovision_agents": "reassign", "deprovision_fallback_owner": owner.pk,
            "max_delegation_depth": 3, "delegation_max_lifetime_seconds": 604800,
            "delegation_refresh_tokens": "on", "sso_break_glass": "owners"}
    assert client.post(page, form).status_code == 302
    saved = SecurityPolicy.objects.for_org(org).get()
    agent_settings = AgentPolicy.objects.for_org(org).get()
    assert saved.password_min_length == 14 and agent_settings.deprovision_fallback_owner == owner
    stale = sign_in(Client(), owner.user, auth_age=3600)
    assert stale.post(page, {**form, "password_min_length": 20})["Location"].startswith("/reauth/")
    assert SecurityPolicy.objects.for_org(org).get().password_min_length == 14


def test_a_session_older_than_the_orgs_lifetime_must_sign_in_again_for_that_org(org, owner):
    _policy(org, session_absolute_minutes=30)
    other = OrgFactory()
    MemberFactory(org=other, user=owner.user, role="owner")
    client = sign_in(Client(), owner.user, auth_age=31 * 60)
    response = _members(client, org)
    assert response.status_code == 401 and response.json()["error"] == "session_expired"
    assert _members(client, other).status_code == 200  # the other org allows 12 hours
    page = client.get(f"/orgs/{org.slug}/members/")
    assert page.status_code == 302 and page["Location"].startswith("/reauth/")


def test_an_idle_session_is_refused_by_the_org(org, owner):
    _policy(org, session_idle_minutes=10)
    client = sign_in(Client(), owner.user)
    session = client.session
    session["iam_last_seen"] = timezone.now().timestamp() - 11 * 60
    session.save()
    response = _members(client, org)
    assert response.status_code == 401 and response.json()["error"] == "session_idle"


def test_mfa_mandate_routes_members_without_a_factor_to_enrollment(org, owner):
    _policy(org, mfa_required=True)
    client = sign_in(Client(), owner.user)
    response = _members(client, org)
    assert response.status_code == 403 and response.json()["error"] == "mfa_enrollment_required"
    page = client.get(f"/orgs/{org.slug}/members/")
    assert page.status_code == 302 and page["Location"].startswith("/account/security/")


def test_mfa_mandate_requires_the_factor_in_this_session(org, owner):
    _policy(org, mfa_required=True)
    TOTPDevice.objects.create(user=owner.user, name="phone", confirmed=True)
    assert _members(sign_in(Client(), owner.user), org).json()["error"] == "mfa_required"
    assert _members(sign_in(Client(), owner.user, mfa=True), org).status_code == 200


def test_an_expired_password_must_be_changed_before_using_the_org(org, owner):
    _policy(org, password_max_age_days=30)
    owner.user.password_changed_at = timezone.now() - timezone.timedelta(days=31)
    owner.user.save()
    client = sign_in(Client(), owner.user)
    assert _members(client, org).json()["error"] == "password_change_required"
    page = client.get(f"/orgs/{org.slug}/members/")
    assert page["Location"].startswith("/account/password/")


def test_password_rules_take_the_strictest_of_the_users_orgs():
    user = UserFactory(password=PASSWORD)
    lenient, strict = OrgFactory(), OrgFactory(name="Initech Systems")
    MemberFactory(org=lenient, user=user)
    MemberFactory(org=strict, user=user)
    _policy(lenient, password_min_length=8, lockout_threshold=10, password_history=1)
    _policy(strict, password_min_length=16, lockout_threshold=3, password_require_digit=True,
            password_history=5)
    policy = user_policy(user)
    assert (policy.min_length, policy.lockout_threshold, policy.history) == (16, 3, 5)
    with pytest.raises(Invalid) as refused:
        password_set(user=user, new_password="only letters here ok", reason="changed")
    assert refused.value.fields["new_password"] == ["Include a digit."]


@pytest.mark.parametrize("password,code", [
    ("password123456", "password_too_common"),
    ("initech-systems-2026!", "password_contains_org_name"),
])
def test_common_passwords_and_the_org_name_are_refused_with_a_reason(password, code):
    user = UserFactory(password=PASSWORD)
    MemberFactory(org=OrgFactory(name="Initech Systems"), user=user)
    before = user.password
    with pytest.raises(Invalid) as refused:
        password_set(user=user, new_password=password, reason="changed")
    assert refused.value.code == code
    user.refresh_from_db()
    assert user.password == before
    entry = AuditEntry.objects.unscoped().filter(event_name="password.rejected").latest("seq")
    assert entry.data == {"reasons": [code]}


def test_password_history_forbids_reuse(org):
    user = UserFactory(password=PASSWORD)
    MemberFactory(org=org, user=user)
    _policy(org, password_history=3)
    password_set(user=user, new_password="a brand new passphrase 1", reason="changed")
    password_set(user=user, new_password="a brand new passphrase 2", reason="changed")
    with pytest.raises(Invalid) as refused:
        password_set(user=user, new_password=PASSWORD, reason="changed")
    assert refused.value.code == "password_reused"
    assert user.password_history.count() == 2


def test_the_fallback_owner_must_be_an_active_member_of_this_org(org, owner):
    other_org_member = MemberFactory()
    client = sign_in(Client(), owner.user)
    nobody = "7d0b1a52-51a4-4f0a-9a51-3e1f0d7a1c11"
    url = f"/api/v1/orgs/{org.slug}/security-policy"
    refused = client.patch(url, {"deprovision_agents": "reassign",
                                 "deprovision_fallback_owner": str(other_org_member.pk)},
                           content_type="application/json")
    missing = client.patch(url, {"deprovision_fallback_owner": nobody},
                           content_type="application/json")
    assert refused.status_code == missing.status_code == 400
    same = str(refused.json()["fields"]).replace(str(other_org_member.pk), nobody)
    assert same == str(missing.json()["fields"]) and "deprovision_fallback_owner" in same
    policy = agent_policy_for_org(org)
    assert policy.deprovision_fallback_owner is None and policy.deprovision_agents == "suspend"
    page = client.get(f"/orgs/{org.slug}/security/").content.decode()
    assert owner.user.email in page and other_org_member.user.email not in page


def test_a_patch_answers_with_what_was_saved_when_the_rows_already_exist(org, owner):
    _policy(org, lockout_threshold=5)
    AgentPolicy.objects.create(org=org, agent_token_ttl_seconds=300)
    client = sign_in(Client(), owner.user)
    url = f"/api/v1/orgs/{org.slug}/security-policy"
    response = client.patch(url, {"lockout_threshold": 3, "agent_token_ttl_seconds": 600},
                            content_type="application/json")
    assert response.status_code == 200
    assert (response.json()["lockout_threshold"], response.json()["agent_token_ttl_seconds"]) == (3, 600)
    assert client.get(url).json()["lockout_threshold"] == 3
