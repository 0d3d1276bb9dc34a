"""The trust panel on an agent's page (score, components, attestations, signals, an inline SVG of
its history) and a run's page (state, the dispatch decision, its approval, stop and terminate)."""

import dataclasses
import json
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from agents.models import Run
from tests.agents.conftest import basic
from tests.factories import MemberFactory, OrgFactory
from tests.helpers import latest_event
from tests.trust.conftest import SigningRoot, claims_for
from tests.trust_pages.conftest import as_user
from trust.models import ScoreSample
from trust.pages import agent_trust_panel, score_chart

pytestmark = pytest.mark.django_db


def agent_page(tw):
    return reverse("agents:agent-detail", kwargs={"org": tw.org.slug, "pk": tw.agent.pk})


def run_page(org, run_id):
    return reverse("agents:run-detail", kwargs={"org": org.slug, "pk": run_id})


def test_the_agent_page_shows_the_trust_panel_with_reasons_attestations_and_signals(tw):
    signer = SigningRoot("board-1")
    tw.register(signer, name="Review board")
    assert tw.attest(signer.sign(claims_for(tw.agent, weight=20))).status_code == 201
    Client().post(
        f"/oauth/{tw.org.slug}/signals",
        json.dumps({"agent": tw.agent.client_id, "type": "output_flagged", "severity": "medium"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=basic(tw.world.connection.client_id, tw.world.connection_secret),
    )
    page = as_user(tw.world.owner.user).get(agent_page(tw))
    assert page.status_code == 200
    html = page.content.decode()
    score = tw.score()
    assert f"Score <strong>{score}</strong>" in html
    assert "behaviour: output flagged (medium)" in html
    assert "<code>security_review</code> from Review board: +20" in html
    assert "Output flagged (medium) from Tickets" in html
    assert re.search(r'<polyline points="[0-9., ]+" fill="none"', html)
    # The chart is drawn on the server: the page's only script is the console's shared one.
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/js/console.js" defer>']


def test_the_chart_draws_the_history_oldest_first_within_its_box(tw):
    now = timezone.now()
    for minutes, score in ((30, 80), (20, 40), (10, 60)):
        ScoreSample.objects.create(
            org=tw.org, agent=tw.agent, at=now - timedelta(minutes=minutes), score=score, level="x"
        )
    samples = list(ScoreSample.objects.filter(agent=tw.agent).order_by("-at"))
    chart = score_chart(samples, floor=20)
    assert chart["points"] == "0.0,24.0 300.0,72.0 600.0,48.0"
    assert chart["floor_y"] == 96.0 and (chart["low"], chart["high"], chart["count"]) == (40, 80, 3)
    assert score_chart([], floor=20) is None
    assert score_chart(samples[:1], floor=20)["points"] == "0,48.0 600,48.0"


def test_the_panel_records_at_most_one_sample_a_minute_and_needs_trust_read(tw):
    client = as_user(tw.world.owner.user)
    client.get(agent_page(tw))
    client.get(agent_page(tw))
    assert ScoreSample.objects.filter(agent=tw.agent).count() == 1
    access = dataclasses.replace(tw.world.access, perms=tw.world.access.perms - {"trust:read"})
    assert agent_trust_panel(access=access, agent=tw.agent) is None
    assert agent_trust_panel(access=tw.world.access, agent=tw.agent)["evaluation"].score == tw.score()


def test_the_run_page_shows_its_decision_and_approval_and_links_from_the_list(tw, escalated):
    client = as_user(tw.world.owner.user)
    run_id = escalated.run["id"]
    runs = client.get(reverse("agents:runs", kwargs={"org": tw.org.slug})).content.decode()
    assert run_page(tw.org, run_id) in runs
    page = client.get(run_page(tw.org, run_id))
    assert page.status_code == 200
    html = page.content.decode()
    run = Run.objects.get(pk=run_id)
    assert "Waiting for approval" in html and "escalate" in html and "<code>deploy</code>" in html
    assert f"{run.trust_score} ({run.trust_level})" in html
    assert f"/orgs/{tw.org.slug}/approvals/{escalated.approval_id}/" in html
    assert "Terminate…" in html and "Stop gracefully" not in html


def test_stop_is_graceful_and_terminate_links_to_its_confirmation(tw):
    response = tw.api.post(
        tw.url("runs"), {"agent": str(tw.agent.pk), "description": "triage"}, format="json"
    )
    run_id = response.json()["id"]
    client = as_user(tw.world.owner.user)
    html = client.get(run_page(tw.org, run_id)).content.decode()
    assert "Stop gracefully" in html and f"/orgs/{tw.org.slug}/runs/{run_id}/terminate/" in html
    stopped = client.post(reverse("agents:run-stop", kwargs={"org": tw.org.slug, "pk": run_id}))
    assert stopped.status_code == 302 and stopped["Location"] == run_page(tw.org, run_id)
    run = Run.objects.get(pk=run_id)
    assert run.status == "stopping" and run.stop_by > timezone.now()
    assert latest_event(tw.org, "run.stopping").data["stop_by"] == run.stop_by.isoformat()
    assert "Stopping" in client.get(run_page(tw.org, run_id)).content.decode()


def test_the_run_page_permissions(tw):
    run_id = tw.api.post(tw.url("runs"), {"agent": str(tw.agent.pk)}, format="json").json()["id"]
    anonymous = Client().get(run_page(tw.org, run_id))
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")
    outsider = MemberFactory(org=OrgFactory(), role="owner")
    assert as_user(outsider.user).get(run_page(outsider.org, run_id)).status_code == 404
    stop_theirs = reverse("agents:run-stop", kwargs={"org": outsider.org.slug, "pk": run_id})
    assert as_user(outsider.user).post(stop_theirs).status_code == 404
    viewer = as_user(MemberFactory(org=tw.org, role="viewer").user)
    assert viewer.get(run_page(tw.org, run_id)).status_code == 200
    stop = reverse("agents:run-stop", kwargs={"org": tw.org.slug, "pk": run_id})
    assert viewer.post(stop).status_code == 403
    assert Run.objects.get(pk=run_id).status == "running"
