"""What both protocols share after the IdP's answer verified (sso.signin, sso.people): the flow's
state, linking on (org, issuer, subject), just-in-time provisioning, the MFA mandate and the
session. The protocol tests drive the same code through real IdPs; these pin each rule."""

import time
from datetime import timedelta

import pytest
from django.contrib.auth import SESSION_KEY
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Membership, MembershipSource, MembershipStatus, SecurityPolicy, User
from accounts.policy import MFA_TIME_KEY
from sso import signin
from sso.models import Connection, Domain, Flow, Identity, IdpSession
from sso.outcomes import Assertion, SsoRefused
from tests.factories import MemberFactory, OrgFactory, UserFactory
from tests.helpers import audit_events, latest_event
from tests.sso.support import browser_request, keep_session, sso_sign_in

pytestmark = pytest.mark.django_db

ISSUER = "https://idp.example.com"


@pytest.fixture
def org():
    return OrgFactory()


@pytest.fixture
def connection(org):
    return Connection.objects.create(org=org, name="Okta", slug="okta", protocol="oidc", issuer=ISSUER,
                                     client_id="rp", jit=True, accepted_mfa=["mfa", "otp"])


def _verified(org, domain="example.com"):
    return Domain.objects.create(org=org, domain=domain, verified_at=timezone.now())


def _assertion(**fields):
    values = {"issuer": ISSUER, "subject": "sub-1", "email": "ada@example.com", "email_verified": True,
              "display_name": "Ada"}
    values.update(fields)
    return Assertion(**values)


# --- the flow ---------------------------------------------------------------------------------


def test_a_state_is_spent_once(client, connection):
    request = browser_request(client)
    _, state = signin.flow_start(request, connection)
    signin.flow_take(request, connection, state)
    with pytest.raises(SsoRefused) as refused:
        signin.flow_take(request, connection, state)
    assert refused.value.reason == "state_used"


def test_a_state_from_another_browser_is_refused(client, connection):
    from django.test import Client

    _, state = signin.flow_start(browser_request(client), connection)
    with pytest.raises(SsoRefused) as refused:
        signin.flow_take(browser_request(Client()), connection, state)
    assert refused.value.reason == "state_invalid"
    assert Flow.objects.get().consumed_at is None


def test_a_state_for_another_connection_is_refused(client, connection, org):
    other = Connection.objects.create(org=org, name="Entra", slug="entra", protocol="oidc", issuer=ISSUER)
    request = browser_request(client)
    _, state = signin.flow_start(request, connection)
    with pytest.raises(SsoRefused) as refused:
        signin.flow_take(request, other, state)
    assert refused.value.reason == "state_invalid"


@pytest.mark.parametrize("state", ["", "x", "a.b.c", "0" * 32 + ".k.mac", "zz" * 16 + ".k.m"])
def test_malformed_states_are_refused(client, connection, state):
    with pytest.raises(SsoRefused) as refused:
        signin.flow_take(browser_request(client), connection, state)
    assert refused.value.reason in {"state_missing", "state_invalid"}


def test_an_expired_state_is_refused(client, connection):
    request = browser_request(client)
    flow, state = signin.flow_start(request, connection)
    Flow.objects.filter(pk=flow.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(SsoRefused) as refused:
        signin.flow_take(request, connection, state)
    assert refused.value.reason == "state_expired"


@pytest.mark.parametrize("target", ["//evil.com/x", "https://evil.com/", "/\\evil.com",
                                    "javascript:alert(1)"])
def test_next_never_leaves_the_site(client, connection, target):
    flow, _ = signin.flow_start(browser_request(client), connection, next_url=target)
    assert flow.next_url == ""


def test_a_local_next_is_kept(client, connection):
    flow, _ = signin.flow_start(browser_request(client), connection, next_url="/orgs/acme/members/")
    assert flow.next_url == "/orgs/acme/members/"


# --- who signs in -----------------------------------------------------------------------------


def test_jit_creates_the_account_and_an_sso_membership(client, connection, org):
    _verified(org)
    request, response = sso_sign_in(client, connection, _assertion())
    user = User.objects.get(email="ada@example.com")
    membership = Membership.objects.get(org=org, user=user)
    assert (membership.source, membership.status, membership.role) == (
        MembershipSource.SSO, MembershipStatus.ACTIVE, "member")
    assert not user.has_usable_password()
    assert request.session[SESSION_KEY] == str(user.pk)
    assert response.status_code == 302
    assert Identity.objects.get().user == user
    assert IdpSession.objects.filter(identity__user=user).count() == 1
    assert latest_event(org, "sso.jit_provisioned").data["email"] == "ada@example.com"
    assert latest_event(org, "sso.login_accepted").data["linked"] == "jit"


def test_jit_never_hands_out_owner(client, connection, org):
    _verified(org)
    Connection.objects.filter(pk=connection.pk).update(default_role="owner")
    connection.refresh_from_db()
    sso_sign_in(client, connection, _assertion())
    assert Membership.objects.get(org=org, user__email="ada@example.com").role == "member"


def test_jit_needs_a_verified_domain(client, connection, org):
    Domain.objects.create(org=org, domain="example.com")  # claimed, not verified
    with pytest.raises(SsoRefused) as refused:
        sso_sign_in(client, connection, _assertion())
    assert refused.value.reason == "domain_not_verified"
    assert not User.objects.filter(email="ada@example.com").exists()
    assert not Identity.objects.exists()


def test_without_jit_a_stranger_is_refused(client, connection, org):
    _verified(org)
    Connection.objects.filter(pk=connection.pk).update(jit=False)
    connection.refresh_from_db()
    with pytest.raises(SsoRefused) as refused:
        sso_sign_in(client, connection, _assertion())
    assert refused.value.reason == "not_a_member"
    assert not User.objects.filter(email="ada@example.com").exists()


def test_a_linked_identity_signs_in_whatever_email_it_now_asserts(client, connection, org):
    member = MemberFactory(org=org)
    Identity.objects.create(org=org, connection=connection, issuer=ISSUER, subject="sub-1", user=member.user)
    request, _ = sso_sign_in(client, connection, _assertion(email="someone-else@elsewhere.test",
                                                         email_verified=False))
    assert request.session[SESSION_KEY] == str(member.user.pk)
    assert latest_event(org, "sso.login_accepted").data["linked"] == "identity"


def test_email_links_an_existing_account_only_when_verified_at_a_verified_domain(client, connection, org):
    _verified(org)
    ada = UserFactory(email="ada@example.com")
    MemberFactory(org=org, user=ada)
    request, _ = sso_sign_in(client, connection, _assertion())
    assert request.session[SESSION_KEY] == str(ada.pk)
    assert Identity.objects.get().user == ada
    assert latest_event(org, "sso.login_accepted").data["linked"] == "email"


def test_an_unverified_email_links_nothing(client, connection, org):
    _verified(org)
    ada = UserFactory(email="ada@example.com")
    MemberFactory(org=org, user=ada)
    with pytest.raises(SsoRefused) as refused:
        sso_sign_in(client, connection, _assertion(email_verified=False))
    assert refused.value.reason == "email_not_verified"
    assert not Identity.objects.exists()


def test_an_idp_cannot_claim_an_account_outside_its_verified_domains(client, connection, org):
    """Security case 41: the IdP asserts the email of a person in another org."""
    other_org = OrgFactory()
    bob = UserFactory(email="bob@other.test")
    MemberFactory(org=other_org, user=bob)
    _verified(org)
    with pytest.raises(SsoRefused) as refused:
        sso_sign_in(client, connection, _assertion(email="bob@other.test"))
    assert refused.value.reason == "account_not_linked"
    assert not Identity.objects.exists()
    assert not Membership.objects.filter(org=org, user=bob).exists()


def test_a_member_the_directory_switched_off_is_refused(client, connection, org):
    member = MemberFactory(org=org, deactivated_by_directory=True, status=MembershipStatus.SUSPENDED)
    Identity.objects.create(org=org, connection=connection, issuer=ISSUER, subject="sub-1", user=member.user)
    with pytest.raises(SsoRefused) as refused:
        sso_sign_in(client, connection, _assertion())
    assert refused.value.reason == "membership_inactive"


def test_a_deactivated_account_is_refused(client, connection, org):
    member = MemberFactory(org=org, user=UserFactory(is_active=False))
    Identity.objects.create(org=org, connection=connection, issuer=ISSUER, subject="sub-1", user=member.user)
    with pytest.raises(SsoRefused) as refused:
        sso_sign_in(client, connection, _assertion())
    assert refused.value.reason == "account_inactive"


# --- the MFA mandate --------------------------------------------------------------------------


def _mfa_required(org):
    SecurityPolicy.objects.update_or_create(org=org, defaults={"mfa_required": True})


def test_an_idp_that_proves_mfa_satisfies_the_mandate(client, connection, org):
    _mfa_required(org)
    _verified(org)
    request, _ = sso_sign_in(client, connection, _assertion(mfa_values=("pwd", "mfa")))
    assert request.session[SESSION_KEY]
    assert request.session[MFA_TIME_KEY]
    assert latest_event(org, "sso.login_accepted").data["mfa"] is True
    assert client.get(f"/orgs/{org.slug}/members/").status_code == 200


def test_without_proof_our_own_second_factor_is_asked_after_the_callback(client, connection, org):
    """Security case 23."""
    _mfa_required(org)
    member = MemberFactory(org=org)
    TOTPDevice.objects.create(user=member.user, name="phone", confirmed=True)
    Identity.objects.create(org=org, connection=connection, issuer=ISSUER, subject="sub-1", user=member.user)
    request, response = sso_sign_in(client, connection, _assertion(mfa_values=("pwd",)))
    assert SESSION_KEY not in request.session  # still anonymous
    assert response["Location"].startswith("/login/mfa/")
    assert latest_event(org, "sso.mfa_step_up").data["reason"] == "not_proven_by_idp"
    assert client.get(f"/orgs/{org.slug}/members/").status_code == 302


def test_without_proof_or_a_factor_the_person_must_enrol_first(client, connection, org):
    _mfa_required(org)
    _verified(org)
    request, _ = sso_sign_in(client, connection, _assertion(mfa_values=()))
    assert request.session[SESSION_KEY]
    assert not request.session[MFA_TIME_KEY]
    assert latest_event(org, "sso.mfa_step_up").data["reason"] == "enrolment"
    page = client.get(f"/orgs/{org.slug}/members/")
    assert page.status_code == 302 and page["Location"].startswith("/account/security/")


def test_amr_values_the_connection_does_not_accept_prove_nothing(client, connection, org):
    _mfa_required(org)
    _verified(org)
    request, _ = sso_sign_in(client, connection, _assertion(mfa_values=("hwk-of-my-own",)))
    assert not request.session[MFA_TIME_KEY]


# --- back-channel logout ----------------------------------------------------------------------


def test_backchannel_logout_ends_the_sessions_that_idp_session_created(client, connection, org):
    _verified(org)
    sso_sign_in(client, connection, _assertion(idp_session="sid-1"))
    user = User.objects.get(email="ada@example.com")
    assert user.sessions.count() == 1
    assert signin.idp_sessions_end(connection, idp_session="sid-other") == 0
    assert user.sessions.count() == 1
    assert signin.idp_sessions_end(connection, idp_session="sid-1") == 1
    assert user.sessions.count() == 0
    assert audit_events(org, "sso.backchannel_logout").count() == 2


@pytest.mark.django_db(transaction=True)
def test_of_parallel_callbacks_carrying_one_state_exactly_one_is_accepted(client):
    from django.db import connection as db

    from core.tenancy import org_scope
    from tests.helpers import in_parallel

    if db.vendor != "postgresql":
        pytest.skip("race cases run on PostgreSQL (SQLite serialises every writer)")
    org = OrgFactory()
    connection = Connection.objects.create(org=org, name="Okta", slug="okta", protocol="oidc", issuer=ISSUER)
    request = browser_request(client)
    _, state = signin.flow_start(request, connection)
    request.session.save()

    def take(_):
        with org_scope(org):
            try:
                return signin.flow_take(request, connection, state).pk
            except SsoRefused as exc:
                return exc.reason

    outcomes = in_parallel(8, take)
    assert len([o for o in outcomes if not isinstance(o, str)]) == 1
    assert sorted(o for o in outcomes if isinstance(o, str)) == ["state_used"] * 7


def test_a_state_spent_between_the_check_and_the_spend_is_refused(client, connection, monkeypatch):
    """The spend is conditional: a callback that passed the checks just as another spent the same
    state (the race above, made deterministic) loses."""
    request = browser_request(client)
    _, state = signin.flow_start(request, connection)
    peek = signin.flow_peek

    def peek_then_lose_the_race(*args):
        flow = peek(*args)
        Flow.objects.filter(pk=flow.pk).update(consumed_at=timezone.now())
        return flow

    monkeypatch.setattr(signin, "flow_peek", peek_then_lose_the_race)
    with pytest.raises(SsoRefused) as refused:
        signin.flow_take(request, connection, state)
    assert refused.value.reason == "state_used"


# --- group mappings -----------------------------------------------------------------------------


def _map(connection, *mappings):
    Connection.objects.filter(pk=connection.pk).update(group_mappings=list(mappings))
    connection.refresh_from_db()


def test_groups_map_to_roles_custom_roles_and_teams_and_follow_the_idp(client, connection, org):
    from rbac.models import RoleAssignment, TeamMembership
    from tests.factories import RoleFactory, TeamFactory

    _verified(org)
    auditors = RoleFactory(org=org, permissions=["audit:read"])
    platform = TeamFactory(org=org)
    _map(connection, {"group": "finance", "role": "billing_admin"}, {"group": "everyone", "role": "viewer"},
         {"group": "audit", "custom_role": str(auditors.pk)},
         {"group": "platform", "team": str(platform.pk), "team_role": "admin"})
    sso_sign_in(client, connection, _assertion(groups=("everyone", "audit", "platform", "unmapped")))
    membership = Membership.objects.get(org=org, user__email="ada@example.com")
    assert membership.role == "viewer"
    assert RoleAssignment.objects.get(membership=membership).role == auditors
    standing = TeamMembership.objects.get(membership=membership)
    assert (standing.team, standing.role) == (platform, "admin")
    _map(connection, *connection.group_mappings[:3], {"group": "platform", "team": str(platform.pk),
                                                      "team_role": "member"})
    sso_sign_in(client, connection, _assertion(groups=("everyone", "audit", "platform")))
    assert TeamMembership.objects.get(membership=membership).role == "member"
    # Next sign-in: the IdP moved them to finance and out of audit and platform.
    sso_sign_in(client, connection, _assertion(groups=("finance", "everyone")))
    membership.refresh_from_db()
    assert membership.role == "billing_admin"
    assert not RoleAssignment.objects.filter(membership=membership).exists()
    assert not TeamMembership.objects.filter(membership=membership).exists()
    # No mapped group at all: the connection's default role.
    sso_sign_in(client, connection, _assertion(groups=()))
    membership.refresh_from_db()
    assert membership.role == "member"


def test_mappings_never_take_what_a_person_gave(client, connection, org):
    from rbac.models import RoleAssignment, TeamMembership
    from tests.factories import RoleFactory, TeamFactory

    member = MemberFactory(org=org, role="billing_admin")  # added by a person, not the IdP
    Identity.objects.create(org=org, connection=connection, issuer=ISSUER, subject="sub-1", user=member.user)
    auditors = RoleFactory(org=org, permissions=["audit:read"])
    platform = TeamFactory(org=org)
    RoleAssignment.objects.create(membership=member, role=auditors, source="")
    TeamMembership.objects.create(team=platform, membership=member, role="member", source="")
    _map(connection, {"group": "audit", "custom_role": str(auditors.pk)},
         {"group": "platform", "team": str(platform.pk), "team_role": "admin"},
         {"group": "everyone", "role": "viewer"})
    sso_sign_in(client, connection, _assertion(groups=("everyone",)))
    member.refresh_from_db()
    assert member.role == "billing_admin"
    assert RoleAssignment.objects.filter(membership=member, role=auditors).exists()
    assert TeamMembership.objects.get(membership=member).role == "member"


def test_a_privileged_group_claim_gives_nothing_unmapped(client, connection, org):
    """Security case 42: `role=owner`, `is_superuser` and the like in the IdP's answer are ignored."""
    _verified(org)
    _map(connection, {"group": "everyone", "role": "viewer"})
    sso_sign_in(client, connection, _assertion(groups=("owner", "admin", "is_superuser"),
                                               claims={"role": "owner", "is_superuser": True}))
    membership = Membership.objects.get(org=org, user__email="ada@example.com")
    assert membership.role == "member"
    assert not membership.custom_roles.exists()
    assert not Identity.objects.get().user.memberships.exclude(pk=membership.pk).exists()


def test_starts_are_limited_per_ip_and_the_first_refusal_is_recorded(client, connection, org, settings):
    settings.IAM_SSO_START_IP_LIMIT = 3
    for _ in range(3):
        signin.flow_start(browser_request(client), connection)
    for _ in range(2):
        with pytest.raises(SsoRefused) as refused:
            signin.flow_start(browser_request(client), connection)
        assert (refused.value.reason, refused.value.status) == ("rate_limited", 429)
    assert Flow.objects.count() == 3
    assert audit_events(org, "sso.login_refused").count() == 1
    response = signin.refuse(browser_request(client), connection, refused.value)
    assert response.status_code == 429 and response["Retry-After"] == "60"
    assert audit_events(org, "sso.login_refused").count() == 1


def test_when_scim_provisions_the_org_jit_adds_nobody(client, connection, org):
    """SCIM stays the source of truth: a person it never provisioned, or removed, is not added back
    by signing in."""
    from tests.factories import ScimTokenFactory

    _verified(org)
    token = ScimTokenFactory(org=org)
    with pytest.raises(SsoRefused) as refused:
        sso_sign_in(client, connection, _assertion())
    assert refused.value.reason == "not_provisioned"
    assert not User.objects.filter(email="ada@example.com").exists()
    token.revoked_at = timezone.now()
    token.save()
    sso_sign_in(client, connection, _assertion())
    assert Membership.objects.filter(org=org, user__email="ada@example.com").exists()


# --- re-authentication through the IdP ----------------------------------------------------------


def _reauth(client, connection, user, assertion):
    from accounts.policy import AUTH_TIME_KEY

    request = browser_request(client)
    request.user = user
    flow, state = signin.flow_start(request, connection, reauth=True, next_url="/orgs/x/sso/")
    flow = signin.flow_take(request, connection, state)
    before = request.session.get(AUTH_TIME_KEY)
    response = signin.sign_in(request, connection, flow, assertion)
    keep_session(client, request)
    return before, request, response


def test_a_person_signed_in_by_sso_re_authenticates_at_their_idp(client, connection, org):
    from accounts.policy import AUTH_TIME_KEY
    from tests.factories import sign_in

    member = MemberFactory(org=org)
    Identity.objects.create(org=org, connection=connection, issuer=ISSUER, subject="sub-1", user=member.user)
    sign_in(client, member.user, auth_age=3600)
    old_key = client.session.session_key
    before, request, response = _reauth(client, connection, member.user,
                                        _assertion(mfa_values=("mfa",), authenticated_at=time.time()))
    assert request.session[AUTH_TIME_KEY] > before + 3000
    assert request.session[MFA_TIME_KEY]
    assert request.session.session_key != old_key
    assert response.status_code == 302 and response["Location"] == "/orgs/x/sso/"
    assert latest_event(org, "reauth.success").data == {"method": "sso"}


def test_re_authenticating_as_someone_else_at_the_idp_is_refused(client, connection, org):
    from accounts.policy import AUTH_TIME_KEY
    from tests.factories import sign_in

    member = MemberFactory(org=org)
    other = MemberFactory(org=org)
    Identity.objects.create(org=org, connection=connection, issuer=ISSUER, subject="sub-2", user=other.user)
    sign_in(client, member.user, auth_age=3600)
    with pytest.raises(SsoRefused) as refused:
        _reauth(client, connection, member.user, _assertion(subject="sub-2", authenticated_at=time.time()))
    assert refused.value.reason == "reauth_other_person"
    assert client.session[AUTH_TIME_KEY] < time.time() - 3000
    with pytest.raises(SsoRefused):
        _reauth(client, connection, member.user, _assertion(subject="nobody-linked"))
    assert not Identity.objects.filter(subject="nobody-linked").exists()


def test_an_idp_that_ignored_the_request_to_authenticate_afresh_does_not_re_authenticate(client, connection,
                                                                                         org):
    from accounts.policy import AUTH_TIME_KEY
    from tests.factories import sign_in

    member = MemberFactory(org=org)
    Identity.objects.create(org=org, connection=connection, issuer=ISSUER, subject="sub-1", user=member.user)
    sign_in(client, member.user, auth_age=3600)
    for stale in (None, time.time() - 600):
        with pytest.raises(SsoRefused) as refused:
            _reauth(client, connection, member.user, _assertion(authenticated_at=stale))
        assert refused.value.reason == "reauth_not_fresh"
    assert client.session[AUTH_TIME_KEY] < time.time() - 3000
