"""The org overview at /orgs/{org}/: what needs attention (each app's own items), recent security
events and charts; shown by permission, scoped to the org, and at a fixed query cost."""

import re
import uuid
from datetime import timedelta

import pytest
from django.db import connection as db_connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Invitation, Membership, SecurityPolicy
from agents.models import AgentPolicy, AgentSecret, AgentStatus
from audit.actors import Actor
from audit.events import AuditEvent, Outcome
from audit.services import audit_record
from core.roles import BuiltinRole
from scim.models import ScimToken
from sso.models import Connection as SsoConnection
from tests.agents.conftest import build_world
from tests.factories import (
    PASSWORD,
    AgentFactory,
    MemberFactory,
    OrgFactory,
    UserFactory,
    sign_in,
)
from tests.scale import agents_bulk, audit_bulk, members_bulk
from tests.trust.conftest import TrustWorld, admin_client
from tests.trust_pages.conftest import escalate

pytestmark = pytest.mark.django_db


def _page(client, org):
    response = client.get(f"/orgs/{org.slug}/")
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def _keys(body: str) -> set[str]:
    return set(re.findall(r'data-key="([^"]+)"', body))


def _owner_client(org):
    owner = MemberFactory(org=org, role=BuiltinRole.OWNER)
    return sign_in(Client(), owner.user, mfa=True), owner


def _everything_wrong(org, owner):
    """One of each thing the overview flags."""
    now = timezone.now()
    SecurityPolicy.objects.update_or_create(org=org, defaults={"mfa_required": True})
    members_bulk(org, 3, prefix="nofactor")
    invited = MemberFactory(org=org, status="invited")
    Invitation.objects.create(
        org=org, membership=invited, token_hash=uuid.uuid4().hex * 2, expires_at=now - timedelta(days=1)
    )
    AgentPolicy.objects.update_or_create(org=org, defaults={"secret_max_age_days": 30})
    old = AgentFactory(org=org, name="old-secret", owners=[owner])
    AgentSecret.objects.create(
        agent=old,
        lookup_id=uuid.uuid4().hex,
        secret_hash="0" * 64,
        hash_kid="x",
        created_at=now - timedelta(days=45),
        last_used_at=now,
    )
    idle = AgentFactory(org=org, name="idle", owners=[owner])  # never used
    stale = AgentFactory(org=org, name="stale", owners=[owner])  # last used 100 days ago
    busy = AgentFactory(org=org, name="busy", owners=[owner])  # used today
    for agent, used in ((stale, now - timedelta(days=100)), (busy, now - timedelta(hours=1))):
        AgentSecret.objects.create(
            agent=agent, lookup_id=uuid.uuid4().hex, secret_hash="0" * 64, hash_kid="x", last_used_at=used
        )
    type(idle).objects.for_org(org).filter(pk__in=[idle.pk, stale.pk, busy.pk]).update(
        created_at=now - timedelta(days=120)
    )
    enrolled = MemberFactory(org=org)
    TOTPDevice.objects.create(user=enrolled.user, name="phone", confirmed=True)
    TOTPDevice.objects.create(user=MemberFactory(org=org).user, name="draft", confirmed=False)  # not enrolled
    AgentFactory(org=org, name="contained", owners=[owner], status=AgentStatus.SUSPENDED, contained_at=now)
    SsoConnection.objects.create(
        org=org,
        name="Okta",
        slug="okta",
        protocol="saml",
        idp_certificates_info=[
            {"not_after": (now + timedelta(days=5)).isoformat(), "fingerprint_sha256": "ab"}
        ],
    )
    ScimToken.objects.create(
        org=org,
        name="Okta",
        lookup_id=uuid.uuid4().hex,
        secret_hash="0" * 64,
        hash_kid="x",
        created_at=now - timedelta(days=3),
    )
    audit_record(
        org=org,
        actor=Actor.anonymous(),
        event=AuditEvent.SCIM_AUTH_FAILED,
        outcome=Outcome.DENIED,
        data={"reason": "revoked"},
    )


EXPECTED = {
    "members.mfa_missing",
    "members.invited",
    "agents.secret_too_old",
    "agents.unused",
    "trust.contained",
    "sso.certificate:okta",
    "scim.tokens_unused",
    "scim.requests_failing",
}


def test_the_overview_lists_each_thing_that_needs_attention_with_its_count_and_link():
    org = OrgFactory(name="Acme")
    client, owner = _owner_client(org)
    _everything_wrong(org, owner)
    body = _page(client, org)
    assert _keys(body) == EXPECTED
    # The 3, the one with an unconfirmed device and the owner; not the enrolled or the invited one.
    assert "5 members have no second factor" in body
    assert "1 invitation is waiting to be accepted" in body and "1 invitation has expired" in body
    assert "1 agent uses a secret older than 30 days" in body
    assert "2 agents were not used for 90 days" in body  # idle, stale; not busy, nor the young ones
    assert "1 agent was contained" in body
    assert "The IdP certificate of “Okta” expires on" in body
    assert "1 SCIM token is not being used" in body and "1 SCIM request was refused this week" in body
    assert f'href="/orgs/{org.slug}/sso/' in body and f'href="/orgs/{org.slug}/provisioning/log/"' in body


# The lists an item links to, and the rows each must show there (what the item counted).
LINKED_LISTS = {
    "members.mfa_missing": 5,
    "members.invited": 1,
    "agents.secret_too_old": 1,
    "agents.unused": 2,
    "trust.contained": 1,
    "scim.tokens_unused": 1,
}


def test_each_item_links_to_a_list_of_exactly_what_it_counted():
    org = OrgFactory(name="Acme")
    client, owner = _owner_client(org)
    _everything_wrong(org, owner)
    ScimToken.objects.create(org=org, name="Busy", lookup_id=uuid.uuid4().hex, secret_hash="0" * 64,
                             hash_kid="x", last_used_at=timezone.now())  # in use: not counted, not listed
    body = _page(client, org)
    for key, count in LINKED_LISTS.items():
        item = re.search(rf'data-key="{re.escape(key)}">.*?<a href="([^"]+)"', body, re.S)
        assert item, key
        listed = client.get(item.group(1).replace("&amp;", "&"))
        assert listed.status_code == 200, (key, listed.status_code)
        tbody = re.search(r"<tbody>(.*?)</tbody>", listed.content.decode(), re.S).group(1)
        rows = [row for row in re.findall(r"<tr.*?</tr>", tbody, re.S) if "colspan" not in row]  # not "none"
        assert len(rows) == count, (key, item.group(1))


def test_with_nothing_wrong_the_overview_says_so():
    org = OrgFactory()
    client, _ = _owner_client(org)
    body = _page(client, org)
    assert 'data-testid="all-clear"' in body and not _keys(body)
    assert '<a href="/api/docs/">API reference</a>' in body  # the API docs, from every org page


def test_a_pending_approval_is_flagged_until_it_is_decided():
    tw = TrustWorld(build_world(), None)
    tw.api = admin_client(tw.org)
    escalated = escalate(tw)
    client = sign_in(Client(), tw.world.owner.user, mfa=True)
    body = _page(client, tw.org)
    assert "trust.approvals_pending" in _keys(body) and "1 run is waiting for approval" in body
    from trust.models import Approval

    Approval.objects.for_org(tw.org).filter(pk=escalated.approval_id).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert "trust.approvals_pending" not in _keys(_page(client, tw.org))  # expired by its timestamp


def test_each_source_shows_only_to_a_reader_holding_its_permission():
    org = OrgFactory()
    _, owner = _owner_client(org)
    _everything_wrong(org, owner)
    viewer = MemberFactory(org=org, role=BuiltinRole.VIEWER)  # no scim:read, sso:read, audit:read
    TOTPDevice.objects.create(user=viewer.user, name="phone", confirmed=True)
    body = _page(sign_in(Client(), viewer.user, mfa=True), org)
    assert _keys(body) == EXPECTED - {"sso.certificate:okta", "scim.tokens_unused", "scim.requests_failing"}
    assert "Recent security events" not in body
    assert 'data-chart="tokens.daily"' in body and 'data-chart="signins.method"' not in body


def test_another_orgs_problems_never_show_and_a_stranger_gets_404():
    mine, theirs = OrgFactory(), OrgFactory()
    client, owner = _owner_client(mine)
    _everything_wrong(theirs, MemberFactory(org=theirs, role=BuiltinRole.OWNER))
    body = _page(client, mine)
    assert not _keys(body)
    assert client.get(f"/orgs/{theirs.slug}/").status_code == 404


def test_recent_security_events_and_the_charts_show_what_the_log_holds():
    org = OrgFactory()
    client, owner = _owner_client(org)
    actor = Actor.for_user(owner.user)
    for _ in range(3):
        audit_record(org=org, actor=actor, event=AuditEvent.TOKEN_ISSUED, data={"jti": "x"})
    audit_record(
        org=org,
        actor=actor,
        event=AuditEvent.TOKEN_DENIED,
        outcome=Outcome.DENIED,
        data={"reason": "low_trust", "client_id": "agt_x"},
    )
    audit_record(org=org, actor=actor, event=AuditEvent.LOGIN_SUCCEEDED, data={"method": "sso"})
    audit_record(org=org, actor=actor, event=AuditEvent.LOGIN_SUCCEEDED, data={"method": "password+webauthn"})
    audit_record(org=org, actor=actor, event=AuditEvent.LOGIN_SUCCEEDED, data={"method": "sso"})
    body = _page(client, org)
    assert "3 tokens granted and 1 refused in 14 days." in body
    assert "3 sign-ins in 14 days: 2 single sign-on, 1 password + passkey." in body
    assert body.count("<rect") >= 3  # token bars (granted and denied today), sign-in bars, levels
    events = body.split('id="events-title"')[1]
    assert "token.denied" in events and "low_trust" in events and "token.issued" not in events
    # "All refused actions" is the log filtered to refusals of either kind: denied and failed.
    audit_record(org=org, actor=Actor.anonymous(), event=AuditEvent.LOGIN_FAILED, outcome=Outcome.FAILURE,
                 data={"reason": "bad_password", "method": "password"})
    link = re.search(r'<a href="([^"]+)">All refused actions', body).group(1)
    refused = re.search(r"<tbody>(.*?)</tbody>", client.get(link).content.decode(), re.S).group(1)
    assert "token.denied" in refused and "login.failure" in refused and "token.issued" not in refused


def test_agents_by_trust_level_counts_each_live_agent_once_by_its_latest_score():
    from trust.models import ScoreSample

    org = OrgFactory()
    client, owner = _owner_client(org)
    a, b = AgentFactory(org=org, owners=[owner]), AgentFactory(org=org, owners=[owner])
    AgentFactory(org=org, owners=[owner], status=AgentStatus.REVOKED)
    now = timezone.now()
    ScoreSample.objects.create(org=org, agent=a, score=10, level="untrusted", at=now - timedelta(hours=1))
    ScoreSample.objects.create(org=org, agent=a, score=85, level="trusted", at=now)
    ScoreSample.objects.create(org=org, agent=b, score=30, level="provisional", at=now)
    body = _page(client, org)
    assert "1 of 2 live agents stand below the standard level." in body
    figures = body.split('data-chart="trust.levels"')[1].split("</figure>")[0]
    assert '<th scope="row">Trusted</th><td>1</td>' in figures
    assert '<th scope="row">Provisional</th><td>1</td>' in figures
    assert '<th scope="row">Untrusted</th><td>0</td>' in figures


def _overview_queries(client, org) -> int:
    with CaptureQueriesContext(db_connection) as queries:
        _page(client, org)
    return len(queries)


def test_the_overview_costs_the_same_queries_at_any_size():
    small, big = OrgFactory(), OrgFactory()
    counts = []
    for org, size in ((small, 5), (big, 200)):
        client, owner = _owner_client(org)
        _everything_wrong(org, owner)
        members_bulk(org, size)
        agents_bulk(org, size // 4, owner=owner)
        audit_bulk(org, size * 5, actor=owner)
        _page(client, org)  # warm the per-process caches (session, policy)
        counts.append(_overview_queries(client, org))
    assert counts[0] == counts[1] and counts[0] > 5, counts


def test_signing_in_lands_on_the_overview():
    org = OrgFactory()
    user = UserFactory(password=PASSWORD)
    MemberFactory(org=org, user=user, role=BuiltinRole.OWNER)
    response = Client().post("/login/", {"email": user.email, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == f"/orgs/{org.slug}/"
    assert Membership.objects.for_org(org).count() == 1
