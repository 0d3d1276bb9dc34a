"""How the score is made, read over HTTP: its weighted components, the levels, attestations that
stop counting at their expiry with no worker running, a client secret past the org's maximum age,
and the attestations the org requires."""

import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from freezegun import freeze_time

from agents.models import Agent, AgentSecret
from agents.services import agent_contain
from audit.actors import Actor
from tests.agents.conftest import basic
from tests.trust.conftest import claims_for, start
from trust.models import Attestation, TrustSignal
from trust.scoring import POSITIVE_REVIEWS_CAP, SIGNALS_PER_KIND, trust_evaluate
from trust.services import trust_policy_for_org

pytestmark = pytest.mark.django_db

BASELINE = 70


def test_a_new_agent_scores_the_weighted_sum_of_its_components(tw):
    trust = tw.trust()
    assert {name: c["score"] for name, c in trust["components"].items()} == {
        "identity": 100, "behaviour": 50, "compliance": 100, "attestations": 50}
    assert trust["score"] == BASELINE and trust["level"] == "elevated"
    tw.policy(weights={"identity": 1, "behaviour": 3, "compliance": 0, "attestations": 0})
    assert tw.score() == round((100 * 1 + 50 * 3) / 4)


@pytest.mark.parametrize("weight,score,level", [
    (-50, 0, "untrusted"), (-31, 19, "untrusted"), (-30, 20, "provisional"), (-11, 39, "provisional"),
    (-10, 40, "standard"), (9, 59, "standard"), (10, 60, "elevated"), (29, 79, "elevated"),
    (30, 80, "trusted"), (50, 100, "trusted"),
])
def test_the_levels(tw, root, weight, score, level):
    tw.register(root)
    tw.policy(weights={"identity": 0, "behaviour": 0, "compliance": 0, "attestations": 10})
    assert tw.attest(root.sign(claims_for(tw.agent, weight=weight))).status_code == 201
    trust = tw.trust()
    assert (trust["score"], trust["level"]) == (score, level)


def test_attestations_add_up_and_the_component_stays_within_0_and_100(tw, root):
    tw.register(root)
    for i, weight in enumerate((30, 30)):
        assert tw.attest(root.sign(claims_for(tw.agent, weight=weight, jti=f"a{i}"))).status_code == 201
    assert tw.trust()["components"]["attestations"]["score"] == 100
    assert tw.score() == BASELINE + round(50 * 0.25)


def test_an_expired_attestation_stops_counting_with_no_worker(tw, root):
    tw.register(root)
    with freeze_time(start()) as frozen:
        compact = root.sign(claims_for(tw.agent, weight=40, ttl=3600, iat=int(time.time())))
        assert tw.attest(compact).status_code == 201
        assert tw.score() == BASELINE + 10
        frozen.tick(3599)
        assert tw.score() == BASELINE + 10
        frozen.tick(2)
        trust = tw.trust()
        assert trust["score"] == BASELINE
        assert not any("security_review" in r for r in trust["reasons"])
        listed = tw.api.get(tw.url(f"agents/{tw.agent.pk}/attestations")).json()["results"]
        assert [a["live"] for a in listed] == [False]
    assert Attestation.objects.filter(agent=tw.agent).count() == 1  # nothing removed it: its time did


def test_a_negative_attestation_lowers_the_score(tw, root):
    tw.register(root)
    assert tw.attest(root.sign(claims_for(tw.agent, type="red_team", weight=-40))).status_code == 201
    trust = tw.trust()
    assert trust["score"] == BASELINE - 10
    assert any("red_team" in r and "-40" in r for r in trust["reasons"])


def test_a_secret_older_than_the_org_allows_counts_against_identity(tw):
    tw.policy(secret_max_age_days=30)
    created = AgentSecret.objects.get(agent=tw.agent).created_at
    with freeze_time(created + timedelta(days=30, seconds=-60)):
        assert tw.trust()["components"]["identity"]["score"] == 100
    with freeze_time(created + timedelta(days=30, seconds=60)):  # older than allowed: to the second
        trust = tw.trust()
        assert trust["components"]["identity"]["score"] == 60
        assert "identity: client secret is over 30 days old (the organization allows 30)" in trust["reasons"]
    with freeze_time(start() + timedelta(days=31, hours=1)):
        trust = tw.trust()
        assert trust["components"]["identity"]["score"] == 60
        assert any("client secret is 31 days old" in r for r in trust["reasons"])
        assert trust["score"] == BASELINE - 10


def test_a_missing_required_attestation_counts_against_compliance(tw, root):
    tw.register(root)
    tw.policy(required_attestations=["security_review", "eval_passed"])
    trust = tw.trust()
    assert trust["components"]["compliance"]["score"] == 60
    assert "compliance: missing required attestation eval_passed, security_review" in trust["reasons"]
    assert tw.attest(root.sign(claims_for(tw.agent, type="eval_passed", weight=1))).status_code == 201
    assert tw.trust()["components"]["compliance"]["score"] == 80
    assert tw.attest(root.sign(claims_for(tw.agent, type="security_review", weight=1))).status_code == 201
    assert tw.trust()["components"]["compliance"]["score"] == 100


@pytest.mark.parametrize("weight", [-20, 0])
def test_an_attestation_that_does_not_vouch_does_not_hold_a_required_type(tw, root, weight):
    tw.register(root)
    tw.policy(required_attestations=["security_review"])
    compact = root.sign(claims_for(tw.agent, type="security_review", weight=weight))
    assert tw.attest(compact).status_code == 201
    trust = tw.trust()
    assert trust["components"]["compliance"]["score"] == 60
    assert "compliance: missing required attestation security_review" in trust["reasons"]


def _positive_flood(tw, count, at):
    TrustSignal.objects.bulk_create(
        TrustSignal(org=tw.org, agent=tw.agent, connection=tw.world.connection, type="positive_review",
                    severity="critical", at=at + timedelta(seconds=i))
        for i in range(count)
    )


def test_a_flood_of_positive_reviews_neither_hides_nor_outweighs_a_violation(client, tw):
    with freeze_time(start()) as frozen:
        report = {"agent": tw.agent.client_id, "type": "guardrail_violation", "severity": "critical"}
        response = client.post(f"/oauth/{tw.org.slug}/signals", json.dumps(report),
                               content_type="application/json",
                               HTTP_AUTHORIZATION=basic(tw.world.connection.client_id,
                                                        tw.world.connection_secret))
        assert response.status_code == 202, response.content
        frozen.tick(60)
        _positive_flood(tw, 600, timezone.now())
        frozen.tick(700)
        trust = tw.trust()
    behaviour = trust["components"]["behaviour"]
    assert behaviour["score"] == 50 - 50 + POSITIVE_REVIEWS_CAP  # the violation is read; reviews capped
    assert any("guardrail violation (critical)" in r for r in behaviour["reasons"])
    assert (trust["score"], trust["level"]) == (0, "untrusted")  # the collapse is not reviewed away
    assert len(trust["reasons"]) < 10  # one reason per kind of signal, not one per row


def test_positive_reviews_lift_behaviour_by_at_most_30(tw):
    _positive_flood(tw, 3, timezone.now())
    trust = tw.trust()
    assert trust["components"]["behaviour"]["score"] == 50 + POSITIVE_REVIEWS_CAP
    assert trust["score"] == round(BASELINE + POSITIVE_REVIEWS_CAP * 0.35)


def test_the_score_reads_the_signals_in_one_query_however_many_of_each_kind(tw, django_assert_num_queries):
    agent = Agent.objects.select_related("org").get(pk=tw.agent.pk)
    trust_policy_for_org(agent.org)
    with django_assert_num_queries(3):
        trust_evaluate(agent)
    now = timezone.now()
    TrustSignal.objects.bulk_create(
        TrustSignal(org=tw.org, agent=tw.agent, connection=None, type=kind, severity=severity,
                    at=now - timedelta(seconds=i))
        for kind in ("guardrail_violation", "positive_review", "authentication_failure", "scope_refused")
        for severity in ("low", "critical")
        for i in range(SIGNALS_PER_KIND + 5)
    )
    with django_assert_num_queries(3):
        evaluation = trust_evaluate(agent)
    assert evaluation.score == 0


def test_valid_until_ends_when_the_newest_secret_passes_the_maximum_age(tw):
    tw.policy(secret_max_age_days=30)
    agent = Agent.objects.select_related("org").get(pk=tw.agent.pk)
    created = AgentSecret.objects.get(agent=agent).created_at
    boundary = created + timedelta(days=30)
    before = trust_evaluate(agent, now=boundary - timedelta(seconds=60))
    assert before.valid_until == boundary
    assert before.components["identity"].score == 100
    after = trust_evaluate(agent, now=boundary + timedelta(seconds=1))
    assert after.components["identity"].score == 60  # what it held until changed then, not a day later
    far = trust_evaluate(agent, now=created + timedelta(days=10))
    assert far.valid_until == far.evaluated_at + timedelta(seconds=300)


@pytest.mark.parametrize("action,status", [("suspend", "suspended"), ("revoke", "revoked")])
def test_an_agent_that_is_not_active_scores_0_without_its_inputs_being_read(
        tw, root, action, status, django_assert_max_num_queries):
    tw.register(root)
    assert tw.attest(root.sign(claims_for(tw.agent, weight=50))).status_code == 201
    assert tw.api.post(tw.url(f"agents/{tw.agent.pk}/{action}")).status_code == 200
    trust = tw.trust()
    assert (trust["score"], trust["level"]) == (0, "untrusted")
    assert trust["reasons"] == [f"agent is {status}"]
    assert set(trust["components"]) == {"identity", "behaviour", "compliance", "attestations"}
    assert all(c["score"] == 0 for c in trust["components"].values())
    agent = Agent.objects.select_related("org").get(pk=tw.agent.pk)
    trust_policy_for_org(agent.org)
    with django_assert_max_num_queries(0):
        trust_evaluate(agent)


def test_a_contained_agent_scores_0_and_says_why(tw):
    agent_contain(agent=tw.agent, actor=Actor.system("test"), evidence={"score": 5, "level": "untrusted",
                                                                        "floor": 20, "reasons": []})
    trust = tw.trust()
    assert (trust["score"], trust["level"]) == (0, "untrusted")
    assert trust["reasons"] == ["agent is contained (its trust score fell below the organization's floor)"]
