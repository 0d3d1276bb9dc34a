"""How the score is made, read over HTTP: its weighted components, the levels, attestations that
stop counting at their expiry with no worker running, a client secret past the org's maximum age,
and the attestations the org requires."""

import time
from datetime import timedelta

import pytest
from freezegun import freeze_time

from tests.trust.conftest import claims_for, start
from trust.models import Attestation

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
    with freeze_time(start() + timedelta(days=30)):
        assert tw.trust()["components"]["identity"]["score"] == 100
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
    assert tw.attest(root.sign(claims_for(tw.agent, type="eval_passed", weight=0))).status_code == 201
    assert tw.trust()["components"]["compliance"]["score"] == 80
    assert tw.attest(root.sign(claims_for(tw.agent, type="security_review", weight=0))).status_code == 201
    assert tw.trust()["components"]["compliance"]["score"] == 100
