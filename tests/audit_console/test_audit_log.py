"""The org's audit log page: actors and targets by name with links (one batch per kind), an entry's
page with its before/after, filters that narrow (and a 400, never a 500, for input nobody can apply),
a seq cursor that pages both ways with the filters kept, and the chain's verification state."""

import datetime
import re
import uuid

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.events import AuditEvent, Outcome
from audit.models import AuditEntry
from tests.agents_console.conftest import as_user, entries, queries
from tests.audit_console.conftest import every_kind, human, log_url, seqs
from tests.factories import AgentFactory, MemberFactory, OrgFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db


def flat(response) -> str:
    """The page's HTML with every run of white space one space."""
    return re.sub(r"\s+", " ", response.content.decode())


def _detail(name, org, pk):
    return reverse(name, kwargs={"org": org.slug, "pk": pk})


def test_actors_and_targets_show_by_name_linked_to_their_pages(filled):
    w = filled
    html = w.client.get(log_url(w.org)).content.decode()
    links = {
        "ada@example.com": _detail("accounts:member-detail", w.org, w.member.pk),  # a membership target
        "owner@example.com": _detail("accounts:member-detail", w.org, w.owner.pk),  # a human actor
        "agent triage-bot": _detail("agents:agent-detail", w.org, w.agent.pk),
        "connection Tickets": _detail("agents:connection-detail", w.org, w.connection.pk),
        "run of triage-bot: nightly": _detail("agents:run-detail", w.org, w.run.pk),
        "team Red": _detail("rbac:team-detail", w.org, w.team.pk),
        "role Agent ops": _detail("rbac:role-edit", w.org, w.role.pk),
        "SSO connection Okta": _detail("sso:connection-detail", w.org, w.sso.pk),
    }
    for name, url in links.items():
        assert f'<a href="{url}">{name}</a>' in html, name
    for name in ("API key CI", "SCIM token Okta sync", "domain example.com"):
        assert f">{name}</a>" in html, name


def test_a_deleted_or_unknown_object_is_its_raw_id_without_a_link(world):
    gone, bogus = str(uuid.uuid4()), "not-a-uuid"
    entries(world.org, [
        {"event": AuditEvent.TEAM_DELETED, "actor": human(world.owner), "target": ("team", gone),
         "data": {"name": "Old"}},
        {"event": AuditEvent.TEAM_DELETED, "actor": ("human", str(uuid.uuid4()), "left@example.com"),
         "target": ("team", bogus), "data": {"name": "Older"}},
    ])
    html = world.client.get(log_url(world.org)).content.decode()
    assert f'<td><code class="small">{gone}</code> <span class="hint">(team)</span></td>' in html
    assert f'<code class="small">{bogus}</code>' in html
    # An actor nobody can name any more keeps the address it acted under, unlinked.
    assert "left@example.com <code" in html and f"/teams/{gone}/" not in html


def test_the_log_costs_the_same_queries_at_10_and_300_entries(world):
    def fill(n):
        rows = []
        for i in range(n):
            email = f"p{i}-{uuid.uuid4().hex[:6]}@x.io"
            member = MemberFactory(org=world.org, user=UserFactory(email=email))
            rows.append({"event": AuditEvent.MEMBER_UPDATED, "actor": human(member),
                         "target": ("membership", str(member.pk)), "data": {"role": "admin"}})
        entries(world.org, rows)
    fill(10)
    small = queries(world.client, log_url(world.org))
    entries(world.org, every_kind(world) * 10)
    fill(170)
    big = queries(world.client, log_url(world.org))
    assert AuditEntry.objects.for_org(world.org).count() >= 300
    assert big <= small + len(every_kind(world))  # the kinds every_kind adds: one batch each, never per row
    deeper = queries(world.client, log_url(world.org), {"before": 200})
    assert deeper == big


def test_the_page_asks_one_query_per_kind_whatever_the_entries(world):
    entries(world.org, every_kind(world))
    once = queries(world.client, log_url(world.org))
    teams = [TeamFactory(org=world.org, name=f"T{n}") for n in range(8)]
    agents = [AgentFactory(org=world.org, name=f"bot-{n}") for n in range(8)]
    entries(world.org, [{"event": AuditEvent.TEAM_CREATED, "actor": ("agent", str(a.pk), a.name),
                         "target": ("team", str(t.pk)), "data": {"name": t.name}}
                        for t, a in zip(teams, agents, strict=True)])
    html = world.client.get(log_url(world.org)).content.decode()
    assert "team T7</a>" in html and "agent bot-7</a>" in html
    assert queries(world.client, log_url(world.org)) == once


# --- An entry's page -----------------------------------------------------------------------------


def test_an_entry_page_shows_everything_and_the_before_after(filled):
    w = filled
    entry = AuditEntry.objects.for_org(w.org).get(event_name="member.updated")
    html = flat(w.client.get(log_url(w.org, "audit-entry", seq=entry.seq)))
    assert "<code>member.updated</code> (code 211)" in html
    assert '<tr><th scope="row">role</th> <td>member</td> <td>admin</td></tr>' in html
    assert f"correlation_id={entry.correlation_id}" in html and entry.hash in html
    assert _detail("accounts:member-detail", w.org, w.member.pk) in html
    log = w.client.get(log_url(w.org))
    assert f'href="{log_url(w.org, "audit-entry", seq=entry.seq)}"' in log.content.decode()


def test_a_previous_map_and_nested_data_read_as_rows(world):
    entries(world.org, [{"event": AuditEvent.TRUST_GATE_CHANGED, "actor": human(world.owner),
                         "target": ("trust_gate", str(uuid.uuid4())),
                         "data": {"name": "deploys", "min_score": 70, "previous": {"min_score": 50}}},
                        {"event": AuditEvent.AGENT_CONTAINED, "actor": ("system", "", "system"),
                         "data": {"score": 12, "reasons": [{"signal": "leak", "weight": -40}],
                                  "runs_ended": 2}}])
    gate = flat(world.client.get(log_url(world.org, "audit-entry", seq=1)))
    assert '<tr><th scope="row">min_score</th> <td>50</td> <td>70</td></tr>' in gate
    contained = world.client.get(log_url(world.org, "audit-entry", seq=2)).content.decode()
    assert "<dt>signal</dt><dd>leak</dd><dt>weight</dt><dd>-40</dd>" in contained
    assert "What changed" not in contained


def test_another_orgs_entry_is_a_404(world):
    other = OrgFactory()
    entries(other, [{"event": AuditEvent.TEAM_CREATED, "data": {"name": "theirs"}}] * 3)
    entries(world.org, [{"event": AuditEvent.TEAM_CREATED, "data": {"name": "mine"}}])
    assert world.client.get(log_url(world.org, "audit-entry", seq=1)).status_code == 200
    assert world.client.get(log_url(world.org, "audit-entry", seq=3)).status_code == 404
    assert world.client.get(log_url(other, "audit-entry", seq=1)).status_code in (403, 404)


# --- Filters ---------------------------------------------------------------------------------------


def _seqs_of(w, params):
    response = w.client.get(log_url(w.org), params)
    assert response.status_code == 200, response.content[:300]
    return {e.event_name for e in response.context["entries"]}


def test_the_actor_filter_takes_an_email_a_typed_id_or_an_id(filled):
    w = filled
    by_member = {"access.denied", "login.failure"}
    assert _seqs_of(w, {"actor": "ADA@example.com"}) == by_member
    assert _seqs_of(w, {"actor": f"human:{w.member.user_id}"}) == by_member
    assert _seqs_of(w, {"actor": str(w.key.pk)}) == {"agent.suspended"}
    assert _seqs_of(w, {"actor": f"agent:{w.agent.pk}"}) == {"run.terminated"}
    html = w.client.get(log_url(w.org)).content.decode()
    assert f'data-picker="/api/v1/orgs/{w.org.slug}/members' in html and '<select name="actor"' not in html


def test_an_email_that_is_no_member_any_more_finds_what_they_did(world):
    gone = ("human", str(uuid.uuid4()), "gone@example.com")
    entries(world.org, [{"event": AuditEvent.LOGOUT, "actor": gone},
                        {"event": AuditEvent.LOGOUT, "actor": human(world.owner)}])
    assert [e.actor_display for e in world.client.get(log_url(world.org), {"actor": "gone@example.com"})
            .context["entries"]] == ["gone@example.com"]


def test_the_target_family_and_outcome_filters_narrow(filled):
    w = filled
    assert _seqs_of(w, {"target_type": "connection"}) == {"connection.updated", "sso.connection_updated"}
    sso = {"target_type": "connection", "target_id": str(w.sso.pk)}
    assert _seqs_of(w, sso) == {"sso.connection_updated"}
    assert _seqs_of(w, {"target_id": str(w.team.pk)}) == {"team.created"}
    assert _seqs_of(w, {"family": "sso"}) == {"sso.connection_updated", "sso.domain_added"}
    assert _seqs_of(w, {"family": "agent"}) == {"agent.suspended"}
    assert _seqs_of(w, {"outcome": "denied"}) == {"access.denied"}  # the overview's link
    assert _seqs_of(w, {"outcome": "failure"}) == {"login.failure"}
    assert _seqs_of(w, {"outcome": "refused"}) == {"access.denied", "login.failure"}
    html = w.client.get(log_url(w.org), {"outcome": "denied"}).content.decode()
    assert '<option value="denied" selected>' in html and '<option value="sso">sso</option>' in html


def test_the_time_and_correlation_filters_narrow(world):
    start = timezone.now().replace(microsecond=0) - datetime.timedelta(days=3)
    entries(world.org, [{"event": AuditEvent.LOGOUT, "ts": start + datetime.timedelta(days=d)}
                        for d in range(3)])
    day = (start + datetime.timedelta(days=1)).astimezone(datetime.UTC)
    until = day + datetime.timedelta(hours=1)
    got = world.client.get(log_url(world.org), {"since": day.strftime("%Y-%m-%dT%H:%M"),
                                                "until": until.strftime("%Y-%m-%dT%H:%M")})
    assert seqs(got) == [2]
    assert seqs(world.client.get(log_url(world.org), {"since": day.strftime("%Y-%m-%dT%H:%M")})) == [3, 2]
    second = AuditEntry.objects.for_org(world.org).get(seq=2)
    assert seqs(world.client.get(log_url(world.org), {"correlation_id": second.correlation_id})) == [2]


def test_an_event_of_digits_no_int_reads_matches_nothing_on_the_page_the_export_and_the_api(filled):
    # "²" is a digit to str.isdigit but not to int(): an event name nobody has, not a server error.
    page = filled.client.get(log_url(filled.org), {"event": "²"})
    assert page.status_code == 200 and page.context["entries"] == []
    export = filled.client.get(log_url(filled.org, "audit-export", fmt="csv"), {"event": "²"})
    assert export.status_code == 200 and len(b"".join(export.streaming_content).splitlines()) == 1
    api = filled.client.get(f"/api/v1/orgs/{filled.org.slug}/audit/events", {"event": "²"})
    assert api.status_code == 200 and api.json()["results"] == []


@pytest.mark.parametrize("params", [
    {"actor": "robot:123"}, {"actor": "human:"}, {"actor": "x" * 300}, {"outcome": "maybe"},
    {"family": "nonsense"}, {"since": "yesterday"}, {"since": "2024-02-02", "until": "2024-02-01"},
    {"before": "-3"}, {"before": "abc"}, {"before": "5", "after": "2"}, {"target_id": "x" * 100},
    {"actor": "a\x00b@example.com"},
])
def test_invalid_filters_are_a_400_with_the_forms_error(filled, params):
    response = filled.client.get(log_url(filled.org), params)
    assert response.status_code == 400
    assert 'class="errorlist' in response.content.decode() or "error" in response.content.decode()
    assert response.context["entries"] == []


def test_the_pager_pages_both_ways_and_keeps_the_filters(world):
    entries(world.org, [{"event": AuditEvent.LOGOUT if n % 2 else AuditEvent.LOGIN_SUCCEEDED,
                         "data": {} if n % 2 else {"method": "password"}} for n in range(130)])
    first = world.client.get(log_url(world.org), {"family": "logout"})
    assert len(seqs(first)) == 50 and first.context["newer_url"] is None
    older = first.context["older_url"]
    assert "family=logout" in older and f"before={seqs(first)[-1]}" in older
    second = world.client.get(older)
    assert seqs(second)[0] == seqs(first)[-1] - 2 and len(seqs(second)) == 15
    assert second.context["older_url"] is None
    back = world.client.get(second.context["newer_url"])
    assert seqs(back) == seqs(first) and "family=logout" in second.context["newer_url"]


def test_the_pager_also_works_at_the_old_before_cursor(world):
    entries(world.org, [{"event": AuditEvent.LOGOUT}] * 60)
    page = world.client.get(log_url(world.org), {"before": 11})
    assert seqs(page) == list(range(10, 0, -1)) and page.context["newer_url"]


# --- The chain's state ---------------------------------------------------------------------------


def test_the_page_says_when_the_chain_was_last_verified_and_by_whom(world):
    entries(world.org, [{"event": AuditEvent.LOGOUT}])
    before = flat(world.client.get(log_url(world.org)))
    assert "Never: nobody has verified this chain yet." in before and "None has been taken yet." in before
    other = MemberFactory(org=world.org, role="owner", user=UserFactory(email="checker@example.com"))
    as_user(other.user).post(log_url(world.org))
    after = flat(world.client.get(log_url(world.org)))
    assert "by checker@example.com:" in after and "intact (1 entry checked)" in after
    assert "Verified through</dt> <dd>seq 1," in after
    assert f"/api/v1/orgs/{world.org.slug}/audit/checkpoint" in after


def test_the_page_names_the_last_checkpoint_handed_out(world):
    entries(world.org, [{"event": AuditEvent.LOGOUT}] * 2)
    checkpoint = world.client.get(f"/api/v1/orgs/{world.org.slug}/audit/checkpoint").json()
    world.client.get(f"/api/v1/orgs/{world.org.slug}/audit/checkpoint")  # a second: the newest shows
    page = world.client.get(log_url(world.org))
    shown = page.context["last_checkpoint"]
    assert shown["data"]["seq"] == checkpoint["seq"] + 1  # the second attests the first's record
    text = flat(page)
    assert f"seq {checkpoint['seq'] + 1} (head" in text
    assert f"signed with key <code>{checkpoint['kid']}</code>" in text
    assert checkpoint["signature"] not in text


def test_a_broken_verdict_is_shown_as_broken(world):
    entries(world.org, [{"event": AuditEvent.AUDIT_VERIFIED, "actor": human(world.owner),
                         "data": {"ok": False, "checked": 4, "first_bad_seq": 5},
                         "outcome": Outcome.SUCCESS}])
    html = world.client.get(log_url(world.org)).content.decode()
    assert "<strong>broken at seq 5</strong>" in html
