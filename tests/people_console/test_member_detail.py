"""A member's page: roles and where each effective permission comes from (the guard's set), teams,
second factors, last sign-in, sessions, agents and delegations, the audit trail; panels by
permission, another org's member a 404, and a fixed number of queries whatever the member holds."""

import datetime
import re

import pytest
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import UserSession, WebAuthnCredential
from agents.models import Delegation
from audit.actors import Actor
from audit.events import AuditEvent
from audit.services import Target, audit_record
from rbac.explain import member_access_explain
from rbac.guard import membership_standing_permissions
from tests.factories import (
    AgentFactory,
    MemberFactory,
    OrgFactory,
    RoleFactory,
    TeamFactory,
    TeamMemberFactory,
    UserFactory,
)
from tests.people_console.helpers import body, client_of, owner_client, queries_of
from tests.scale import audit_bulk

pytestmark = pytest.mark.django_db


def _path(member) -> str:
    return f"/orgs/{member.org.slug}/members/{member.pk}/"


def _sources(html: str, perm: str) -> str:
    """The "comes from" cell of one permission's row, tags stripped."""
    row = re.search(rf"<tr>\s*<td><code>{re.escape(perm)}</code></td>.*?</tr>", html, re.S)
    assert row, f"{perm} is not listed"
    return " ".join(re.sub(r"<[^>]+>", " ", row.group(0)).split())


def _held(html: str) -> set[str]:
    table = html.split('data-testid="effective-permissions"')[1].split("</table>")[0]
    return set(re.findall(r"<td><code>([a-z_]+:[a-z_]+)</code></td>", table))


def _world(org):
    ada = MemberFactory(org=org, role="viewer", user=UserFactory(email="ada@example.com", display_name="Ada"))
    direct = RoleFactory(org=org, name="Agent ops", permissions=["agent:write", "agent:read"])
    ada.custom_roles.add(direct)
    team = TeamFactory(org=org, name="Platform")
    via_team = RoleFactory(org=org, name="Key keepers", permissions=["api_key:write", "agent:read"])
    team.roles.add(via_team)
    TeamMemberFactory(team=team, membership=ada, role="admin")
    return ada


def test_each_permission_names_where_it_comes_from_including_through_a_team():
    org = OrgFactory()
    client, _ = owner_client(org)
    ada = _world(org)
    html = body(client, _path(ada))
    assert _held(html) == {p.value for p in membership_standing_permissions(ada)}
    assert _sources(html, "member:read") == (
        "member:read List members and see their roles. Built-in role Viewer")
    assert _sources(html, "agent:write").endswith("Custom role Agent ops")
    assert _sources(html, "api_key:write").endswith("Custom role Key keepers via team Platform")
    both = _sources(html, "agent:read")
    assert "Custom role Agent ops" in both and "Custom role Key keepers via team Platform" in both
    assert "Platform</a> (admin): grants Key keepers" in html
    assert member_access_explain(ada).sources_agree


def test_another_orgs_role_or_team_grants_nothing_and_is_not_named():
    org, other = OrgFactory(), OrgFactory()
    client, _ = owner_client(org)
    ada = MemberFactory(org=org, role="viewer")
    foreign = RoleFactory(org=other, name="Foreign", permissions=["agent:write"])
    ada.custom_roles.add(foreign)  # a row no service would write: it must count for nothing
    html = body(client, _path(ada))
    assert "agent:write" not in _held(html) and "Foreign" not in html
    assert member_access_explain(ada).sources_agree


def test_a_suspended_member_holds_nothing_now_and_the_page_says_so():
    org = OrgFactory()
    client, _ = owner_client(org)
    ada = _world(org)
    ada.status = "suspended"
    ada.save()
    html = body(client, _path(ada))
    assert "While suspended, they hold no permission" in html
    assert "agent:write" in _held(html)


def test_factors_last_sign_in_sessions_agents_delegations_and_trail():
    org = OrgFactory()
    client, owner = owner_client(org)
    ada = _world(org)
    ada.user.last_login = datetime.datetime(2026, 3, 4, 5, 6, tzinfo=datetime.UTC)
    ada.user.save()
    TOTPDevice.objects.create(user=ada.user, name="phone", confirmed=True)
    WebAuthnCredential.objects.create(user=ada.user, name="key", confirmed=True, credential_id="abc",
                                      public_key=b"x")
    UserSession.objects.create(session_key="k" * 40, session_data="", user=ada.user,
                               expire_date=timezone.now() + datetime.timedelta(hours=1),
                               ip="192.0.2.7", user_agent="Mozilla/5.0 (X11; Linux) Firefox/130.0")
    bot = AgentFactory(org=org, name="Ada's bot", owners=[ada])
    Delegation.objects.create(org=org, agent=bot, user=ada.user, membership=ada, person_email=ada.user.email,
                              audience="https://service.example/api", scopes=["t:read"],
                              expires_at=timezone.now() + datetime.timedelta(hours=1))
    audit_bulk(org, 3, actor=ada)
    audit_record(org=org, actor=Actor.for_user(ada.user), event=AuditEvent.TEAM_CREATED,
                 target=Target("team", "00000000-0000-0000-0000-000000000001"), data={"name": "Ada's"})
    audit_record(org=org, actor=Actor.for_user(owner.user), event=AuditEvent.TEAM_CREATED,
                 target=Target("team", "00000000-0000-0000-0000-000000000002"), data={"name": "not hers"})
    html = body(client, _path(ada))
    assert "2026-03-04 05:06 UTC" in html
    assert "Enrolled:" in html and "authenticator app" in html and "1 passkey;" in html
    assert "no recovery codes" in html
    assert "k" * 40 not in html
    # The browser as a person reads it, the header itself on hover.
    assert '<td title="Mozilla/5.0 (X11; Linux) Firefox/130.0">Firefox 130 on Linux</td>' in html
    # The session serves every org Ada acts in: where it was used is not this org's to see...
    assert "192.0.2.7" not in html and "shown only to the organization that manages their account" in html
    # ...unless this org manages her account (its directory created it).
    type(ada.user).objects.filter(pk=ada.user.pk).update(scim_managed_by=org)
    assert "192.0.2.7" in body(client, _path(ada))
    assert "Ada&#x27;s bot" in html.split('data-testid="owned-agents"')[1].split("</ul>")[0]
    assert "Live until" in html
    trail = html.split('data-testid="audit-trail"')[1].split("</table>")[0]
    assert trail.count("<tr>") == 5  # the header, the three entries about her and the one she made
    assert f'/audit/?actor=human:{ada.user_id}"' in html


def test_panels_need_their_permissions():
    org = OrgFactory()
    ada = _world(org)
    audit_bulk(org, 2, actor=ada)
    reader = MemberFactory(org=org, role="viewer")
    html = body(client_of(reader), _path(ada))
    assert "Roles and permissions" in html
    assert "Active sessions" not in html and "Change role or status" not in html
    assert ('data-testid="audit-trail"' in html) == ("audit:read" in {
        p.value for p in membership_standing_permissions(reader)})


def test_a_pending_invitation_shows_nothing_of_the_account():
    org = OrgFactory()
    client, _ = owner_client(org)
    asked = MemberFactory(org=org, status="invited", user=UserFactory(display_name="Secret Name"))
    asked.user.last_login = timezone.now()
    asked.user.save()
    html = body(client, _path(asked))
    assert "Secret Name" not in html and "Last sign-in" not in html and "Active sessions" not in html
    assert f"actor=human:{asked.user_id}" not in html


def test_another_orgs_member_is_a_404_and_a_stranger_too():
    org, other = OrgFactory(), OrgFactory()
    client, _ = owner_client(org)
    foreign = MemberFactory(org=other)
    assert client.get(f"/orgs/{org.slug}/members/{foreign.pk}/").status_code == 404
    stranger = client_of(MemberFactory(org=other, role="owner"))
    mine = MemberFactory(org=org)
    assert stranger.get(_path(mine)).status_code == 404


def _loaded(org, member, size):
    for n in range(size):
        role = RoleFactory(org=org, permissions=["agent:read", "run:read"])
        member.custom_roles.add(role)
        team = TeamFactory(org=org)
        team.roles.add(RoleFactory(org=org, permissions=["team:read"]))
        TeamMemberFactory(team=team, membership=member)
        agent = AgentFactory(org=org, owners=[member])
        Delegation.objects.create(org=org, agent=agent, user=member.user, membership=member,
                                  person_email=member.user.email, audience="https://service.example/api",
                                  scopes=["t:read"], expires_at=timezone.now() + datetime.timedelta(hours=1))
        UserSession.objects.create(session_key=f"{size}-{n:036d}", session_data="", user=member.user,
                                   expire_date=timezone.now() + datetime.timedelta(hours=1))
    TOTPDevice.objects.create(user=member.user, name="phone", confirmed=True)
    audit_bulk(org, size * 3, actor=member)


def test_the_page_costs_the_same_queries_whatever_the_member_holds():
    counts = []
    for size in (2, 60):
        org = OrgFactory()
        client, _ = owner_client(org)
        ada = MemberFactory(org=org)
        _loaded(org, ada, size)
        counts.append(queries_of(client, _path(ada)))
    assert counts[0] == counts[1], counts
