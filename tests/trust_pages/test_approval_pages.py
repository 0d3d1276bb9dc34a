"""The approvals queue and an approval's page: who may see and decide, the re-authentication an
approval needs, separation of duties and expiry as messages, CSRF; each refusal changes nothing."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from agents.models import Run
from tests.agents.conftest import post_form
from tests.factories import MemberFactory, OrgFactory
from tests.helpers import audit_events, latest_event
from tests.trust.conftest import trust_world
from tests.trust_pages.conftest import as_user, escalate, url
from trust.models import Approval

pytestmark = pytest.mark.django_db


def detail(escalated):
    return url("approval-detail", escalated.tw.org, pk=escalated.approval_id)


def state(escalated):
    approval = Approval.objects.get(pk=escalated.approval_id)
    return approval.status, approval.decided_by_id, Run.objects.get(pk=approval.run_id).status


def token(tw, run_id):
    return post_form(
        Client(),
        tw.world.url("token"),
        {"grant_type": "client_credentials", "run": run_id},
        auth=(tw.agent.client_id, tw.world.agent_secret),
    )


def test_the_queue_lists_a_pending_approval_with_its_score_dispatcher_and_expiry(tw, escalated, approver):
    page = as_user(approver.user).get(url("approvals", tw.org))
    assert page.status_code == 200
    pending = page.context["approvals"]  # the queue: the waiting ones, unless another state is asked
    assert page.context["state"] == "pending" and page.context["waiting"] == 1
    assert [str(a.pk) for a in pending] == [escalated.approval_id]
    html = page.content.decode()
    assert tw.agent.name in html and "deploy" in html and detail(escalated) in html
    assert f"{pending[0].score} ({pending[0].level})" in html
    assert "Nothing is waiting" not in html


def test_the_detail_page_shows_what_the_gates_saw(tw, escalated, approver):
    page = as_user(approver.user).get(detail(escalated))
    assert page.status_code == 200
    approval = Approval.objects.get(pk=escalated.approval_id)
    html = page.content.decode()
    assert approval.reasons and all(r.replace("'", "&#x27;") in html for r in approval.reasons)
    assert "Gate <strong>deploys</strong>" in html and "needs 99" in html
    assert approval.requested_by_display in html and 'value="approve"' in html
    assert f'href="/orgs/{tw.org.slug}/runs/{approval.run_id}/"' in html


def test_anonymous_outsiders_and_another_orgs_approval(tw, escalated):
    anonymous = Client().get(detail(escalated))
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")
    outsider = MemberFactory(org=OrgFactory(), role="owner")
    assert as_user(outsider.user).get(detail(escalated)).status_code == 404
    assert as_user(outsider.user).get(url("approvals", tw.org)).status_code == 404
    # The other org's owner asks for this org's approval under their own org: not found either.
    theirs = url("approval-detail", outsider.org, pk=escalated.approval_id)
    refused = as_user(outsider.user).post(theirs, {"decision": "approve"})
    assert refused.status_code == 404 and state(escalated)[0] == "pending"


def test_a_viewer_sees_but_may_not_decide(tw, escalated):
    viewer = MemberFactory(org=tw.org, role="viewer")
    client = as_user(viewer.user)
    page = client.get(detail(escalated))
    assert page.status_code == 200 and 'value="approve"' not in page.content.decode()
    refused = client.post(detail(escalated), {"decision": "approve"})
    assert refused.status_code == 403
    assert state(escalated) == ("pending", None, "pending_approval")
    assert latest_event(tw.org, "access.denied").data["required"] == "trust:approve"


def test_an_approver_approves_and_the_run_then_mints_a_token(tw, escalated, approver):
    run_id = escalated.run["id"]
    assert token(tw, run_id).json()["error"] == "authorization_pending"
    response = as_user(approver.user).post(detail(escalated), {"decision": "approve", "comment": "ok"})
    assert response.status_code == 302 and response["Location"] == url("approvals", tw.org)
    assert state(escalated) == ("approved", approver.user.pk, "running")
    assert latest_event(tw.org, "approval.approved").data["run"] == run_id
    assert token(tw, run_id).status_code == 200
    queue = as_user(approver.user).get(url("approvals", tw.org))
    assert not queue.context["approvals"] and "Nothing is waiting for approval." in queue.content.decode()
    approved = as_user(approver.user).get(url("approvals", tw.org), {"state": "approved"})
    assert [a.status_now for a in approved.context["approvals"]] == ["approved"]


def test_deny_ends_the_run(tw, escalated, approver):
    response = as_user(approver.user).post(detail(escalated), {"decision": "deny"})
    assert response.status_code == 302
    assert state(escalated)[0::2] == ("denied", "terminated")
    assert token(tw, escalated.run["id"]).status_code != 200


def test_approving_needs_a_recent_sign_in_and_the_form_survives_it(tw, escalated, approver):
    client = as_user(approver.user, auth_age=3600)
    response = client.post(detail(escalated), {"decision": "approve"})
    assert response.status_code == 302 and response["Location"].startswith("/reauth/?next=")
    assert state(escalated) == ("pending", None, "pending_approval")
    assert not audit_events(tw.org, "approval.approved").exists()


def test_the_dispatcher_is_refused_with_a_clear_message(tw, escalated):
    client = as_user(escalated.dispatcher.user)
    page = client.get(detail(escalated))
    assert "You dispatched this run: someone else must approve it." in page.content.decode()
    refused = client.post(detail(escalated), {"decision": "approve"})
    assert refused.status_code == 403
    alert = 'class="message error" role="alert">You dispatched this run: someone else must approve it.'
    assert alert in refused.content.decode() and alert not in page.content.decode()
    assert state(escalated) == ("pending", None, "pending_approval")
    assert latest_event(tw.org, "approval.refused").data["reason"] == "dispatcher"


def test_an_owner_of_the_agent_is_refused_under_separation_of_duties(tw, escalated):
    refused = as_user(tw.world.owner.user).post(detail(escalated), {"decision": "approve"})
    assert refused.status_code == 403 and "You own this agent" in refused.content.decode()
    assert state(escalated) == ("pending", None, "pending_approval")
    assert latest_event(tw.org, "approval.refused").data["reason"] == "agent_owner"


def test_an_expired_approval_says_so_and_cannot_be_approved(tw, escalated, approver):
    Approval.objects.filter(pk=escalated.approval_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    client = as_user(approver.user)
    queue = client.get(url("approvals", tw.org))
    expired = client.get(url("approvals", tw.org), {"state": "expired"})
    assert not queue.context["approvals"] and expired.context["approvals"][0].status_now == "expired"
    refused = client.post(detail(escalated), {"decision": "approve"})
    assert refused.status_code == 409
    assert "This approval has expired" in refused.content.decode()
    assert state(escalated)[0::2] == ("expired", "terminated")
    assert latest_event(tw.org, "approval.refused").data["reason"] == "expired"
    assert token(tw, escalated.run["id"]).status_code != 200


def test_an_unknown_decision_or_a_long_comment_changes_nothing(tw, escalated, approver):
    client = as_user(approver.user)
    assert client.post(detail(escalated), {"decision": "maybe"}).status_code == 400
    assert client.post(detail(escalated), {"decision": "approve", "comment": "x" * 501}).status_code == 400
    assert client.post(detail(escalated), {"decision": "approve", "comment": "a\x00b"}).status_code == 400
    assert state(escalated) == ("pending", None, "pending_approval")


def test_a_post_without_the_csrf_token_is_refused(tw, escalated, approver):
    client = as_user(approver.user)
    client.handler.enforce_csrf_checks = True
    assert client.post(detail(escalated), {"decision": "approve"}).status_code == 403
    assert state(escalated) == ("pending", None, "pending_approval")


def test_another_orgs_approvals_are_not_listed(tw, escalated, approver):
    other = escalate(trust_world())
    queue = as_user(approver.user).get(url("approvals", tw.org))
    everything = as_user(approver.user).get(url("approvals", tw.org), {"state": "all"})
    listed = {str(a.pk) for a in [*queue.context["approvals"], *everything.context["approvals"]]}
    assert listed == {escalated.approval_id} and other.approval_id not in listed
