"""The signals endpoint over HTTP: a downstream service, authenticated as its connection, reports what
it saw an agent do; the score falls (or rises, for a positive review) and recovers over the org's
half-life. Everything else is refused in RFC 6749's format, records nothing and is on record."""

import json

import pytest
from freezegun import freeze_time

from agents.policies import connection_create
from audit.actors import Actor
from core.errors import Invalid, NotFound
from tests.agents.conftest import basic
from tests.helpers import audit_events, latest_event
from tests.trust.conftest import start, trust_world
from trust.models import TrustSignal
from trust.services import PRODUCT_SIGNAL_KINDS, product_signal_record, signal_record

pytestmark = pytest.mark.django_db

BASELINE = 70
HOUR = 3600


def _signal(client, tw, body, *, auth=None, content_type="application/json", slug=None, **headers):
    connection = tw.world.connection
    auth = auth or (connection.client_id, tw.world.connection_secret)
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(f"/oauth/{slug or tw.org.slug}/signals", data, content_type=content_type,
                       HTTP_AUTHORIZATION=basic(*auth), **headers)


def _body(tw, type="guardrail_violation", severity="high", **extra):
    return {"agent": tw.agent.client_id, "type": type, "severity": severity, **extra}


def test_a_signal_lowers_the_score_and_fades_over_the_half_life(client, tw):
    tw.policy(signal_half_life_seconds=HOUR)
    with freeze_time(start()) as frozen:
        response = _signal(client, tw, _body(tw, severity="high"))
        assert response.status_code == 202, response.content
        assert response["Cache-Control"] == "no-store"
        signal = TrustSignal.objects.get(pk=response.json()["id"])
        assert (signal.agent_id, signal.connection_id) == (tw.agent.pk, tw.world.connection.pk)
        trust = tw.trust()
        assert trust["components"]["behaviour"]["score"] == 20  # 50 - 30
        assert trust["score"] == round(BASELINE - 30 * 0.35)
        assert any("guardrail violation (high)" in r for r in trust["reasons"])
        frozen.tick(HOUR)
        assert tw.trust()["components"]["behaviour"]["score"] == 35  # half of it is left
        frozen.tick(9 * HOUR)
        assert tw.score() == BASELINE
    entry = latest_event(tw.org, "trust.signal")
    assert entry.actor_type == "connection" and entry.actor_id == str(tw.world.connection.pk)
    assert entry.data == {"agent": str(tw.agent.pk), "type": "guardrail_violation", "severity": "high",
                          "connection": str(tw.world.connection.pk)}


@pytest.mark.parametrize("severity,moves", [("low", 5), ("medium", 15), ("critical", 50)])
def test_each_severity_weighs_its_own(client, tw, severity, moves):
    assert _signal(client, tw, _body(tw, type="policy_violation", severity=severity)).status_code == 202
    assert tw.trust()["components"]["behaviour"]["score"] == 50 - moves


def test_a_positive_review_raises_the_score(client, tw):
    response = _signal(client, tw, _body(tw, type="positive_review", severity="medium"))
    assert response.status_code == 202
    trust = tw.trust()
    assert trust["components"]["behaviour"]["score"] == 65
    assert trust["score"] > BASELINE


def test_a_score_in_the_body_is_ignored(client, tw):
    response = _signal(client, tw, _body(tw, type="output_flagged", severity="low", score=100, weight=50),
                       HTTP_X_TRUST_SCORE="100")
    assert response.status_code == 202
    assert tw.trust()["components"]["behaviour"]["score"] == 45
    assert set(latest_event(tw.org, "trust.signal").data) == {"agent", "type", "severity", "connection"}


def _refused_with(response, status, error):
    assert response.status_code == status, response.content
    assert response.json()["error"] == error and response.json()["error_description"]
    assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize("auth", [
    ("{connection}", "cnc_wrong_secret"),
    ("{agent}", "{agent_secret}"),
    ("nobody", "{connection_secret}"),
], ids=["wrong secret", "an agent's credentials", "unknown client"])
def test_a_caller_that_is_not_the_connection_gets_invalid_client(client, tw, auth):
    values = {"connection": tw.world.connection.client_id, "agent": tw.agent.client_id,
              "agent_secret": tw.world.agent_secret, "connection_secret": tw.world.connection_secret}
    response = _signal(client, tw, _body(tw), auth=tuple(a.format(**values) for a in auth))
    _refused_with(response, 401, "invalid_client")
    assert not TrustSignal.objects.exists()
    assert not audit_events(tw.org, "trust.signal").exists()


def test_a_well_formed_secret_that_is_not_the_connections_is_invalid_client(client, tw):
    crm, crm_secret = connection_create(access=tw.world.access, name="CRM", audience="https://crm.example.com",
                                        scopes=["crm:read"])
    old = tw.world.connection_secret
    rotated = tw.api.post(tw.url(f"connections/{tw.world.connection.pk}/rotate-secret"))
    assert rotated.status_code == 200
    connection = tw.world.connection.client_id
    for auth in ((connection, old), (connection, crm_secret), (crm.client_id, old)):
        _refused_with(_signal(client, tw, _body(tw), auth=auth), 401, "invalid_client")
    assert not TrustSignal.objects.exists()
    current = (connection, rotated.json()["client_secret"])
    assert _signal(client, tw, _body(tw), auth=current).status_code == 202


def test_no_credentials_is_invalid_client(client, tw):
    response = client.post(f"/oauth/{tw.org.slug}/signals", json.dumps(_body(tw)),
                           content_type="application/json")
    _refused_with(response, 401, "invalid_client")
    assert not TrustSignal.objects.exists()


def test_a_connection_of_another_org_is_unknown_here(client, tw):
    other = trust_world()
    response = _signal(client, tw, _body(tw), auth=(other.world.connection.client_id,
                                                    other.world.connection_secret))
    _refused_with(response, 401, "invalid_client")
    assert not TrustSignal.objects.exists()


def test_an_agent_of_another_org_is_refused_and_on_record(client, tw):
    other = trust_world()
    response = _signal(client, tw, {**_body(tw), "agent": other.agent.client_id})
    _refused_with(response, 400, "invalid_request")
    assert not TrustSignal.objects.exists()
    assert other.score() == BASELINE
    refusal = latest_event(tw.org, "trust.signal_rejected")
    assert refusal.data == {"reason": "unknown_agent", "connection": str(tw.world.connection.pk)}
    assert refusal.outcome == "denied"
    assert not audit_events(other.org, "trust.signal_rejected").exists()


def test_an_agent_that_does_not_call_this_service_is_refused(client, tw):
    crm, crm_secret = connection_create(access=tw.world.access, name="CRM", audience="https://crm.example.com",
                                        scopes=["crm:read"])
    response = _signal(client, tw, _body(tw), auth=(crm.client_id, crm_secret))
    _refused_with(response, 400, "invalid_request")
    assert not TrustSignal.objects.exists()
    assert tw.score() == BASELINE
    refusal = latest_event(tw.org, "trust.signal_rejected")
    assert refusal.data == {"reason": "not_an_audience", "connection": str(crm.pk)}
    assert refusal.actor_id == str(crm.pk)


@pytest.mark.parametrize("body,content_type", [
    ({"agent": "{agent}", "type": "hallucination", "severity": "high"}, "application/json"),
    ({"agent": "{agent}", "type": "output_flagged", "severity": "extreme"}, "application/json"),
    ({"type": "output_flagged", "severity": "low"}, "application/json"),
    ({"agent": 5, "type": "output_flagged", "severity": "low"}, "application/json"),
    ('["not", "an", "object"]', "application/json"),
    ("{not json", "application/json"),
    ("agent={agent}&type=output_flagged&severity=low", "application/x-www-form-urlencoded"),
    ({"agent": "{agent}\u0000", "type": "output_flagged", "severity": "low"}, "application/json"),
    ({"agent": "{agent}", "type": "output_flagged", "severity": "low", "note": "a\u0000b"},
     "application/json"),
    (b'{"agent": "x\x00", "type": "output_flagged", "severity": "low"}', "application/json"),
], ids=["type", "severity", "no agent", "agent not text", "array", "not json", "form", "NUL in agent",
        "NUL in another field", "raw NUL byte"])
def test_a_malformed_report_is_invalid_request(client, tw, body, content_type):
    def fill(value):
        return value.replace("{agent}", tw.agent.client_id) if isinstance(value, str) else value

    if isinstance(body, dict):
        body = {k: fill(v) for k, v in body.items()}
    elif isinstance(body, str) and content_type.endswith("urlencoded"):
        body = fill(body)
    response = _signal(client, tw, body, content_type=content_type)
    _refused_with(response, 400, "invalid_request")
    assert not TrustSignal.objects.exists()
    assert not audit_events(tw.org, "trust.signal").exists()


def test_nul_in_the_org_or_the_credentials_is_refused_not_a_server_error(client, tw):
    response = _signal(client, tw, _body(tw), slug=f"{tw.org.slug}%00")
    _refused_with(response, 400, "invalid_request")
    response = _signal(client, tw, _body(tw), auth=(tw.world.connection.client_id + "\x00",
                                                    tw.world.connection_secret))
    _refused_with(response, 400, "invalid_request")
    assert not TrustSignal.objects.exists()


def test_signals_are_limited_per_connection(client, tw, settings):
    settings.IAM_SIGNALS_PER_MINUTE = 3
    for _ in range(3):
        assert _signal(client, tw, _body(tw, severity="low")).status_code == 202
    response = _signal(client, tw, _body(tw, severity="low"))
    _refused_with(response, 429, "slow_down")
    assert response["Retry-After"] == "60"
    assert TrustSignal.objects.filter(agent=tw.agent).count() == 3
    crm, crm_secret = connection_create(access=tw.world.access, name="CRM", audience="https://crm.example.com",
                                        scopes=["crm:read"])
    # Another connection has its own budget (its refusal here is about the agent, not the limit).
    _refused_with(_signal(client, tw, _body(tw), auth=(crm.client_id, crm_secret)), 400, "invalid_request")


def test_only_post(client, tw):
    assert client.get(f"/oauth/{tw.org.slug}/signals").status_code == 405


# The service keeps the rules itself -----------------------------------------------------------


def _record(agent, connection, type="guardrail_violation", severity="high"):
    return signal_record(agent=agent, connection=connection, type=type, severity=severity,
                         actor=Actor.for_connection(connection))


def test_the_service_refuses_an_agent_of_another_org_and_keeps_the_refusal(tw):
    other = trust_world()
    with pytest.raises(NotFound):
        _record(other.agent, tw.world.connection)
    assert not TrustSignal.objects.exists()
    refusal = latest_event(tw.org, "trust.signal_rejected")
    assert refusal.data == {"reason": "other_org", "connection": str(tw.world.connection.pk)}
    assert refusal.outcome == "denied" and refusal.actor_id == str(tw.world.connection.pk)
    assert not audit_events(other.org, "trust.signal_rejected").exists()
    assert not audit_events(tw.org, "trust.signal").exists() and other.score() == BASELINE


def test_the_service_refuses_an_agent_that_does_not_call_the_connection(tw):
    crm, _ = connection_create(access=tw.world.access, name="CRM", audience="https://crm.example.com",
                               scopes=["crm:read"])
    with pytest.raises(NotFound):
        _record(tw.agent, crm)
    assert not TrustSignal.objects.exists()
    refusal = latest_event(tw.org, "trust.signal_rejected")
    assert refusal.data == {"reason": "not_an_audience", "connection": str(crm.pk)}
    assert refusal.outcome == "denied"
    assert not audit_events(tw.org, "trust.signal").exists() and tw.score() == BASELINE


@pytest.mark.parametrize("type,severity", [("authentication_failure", "low"),
                                           ("guardrail_violation", "dire")])
def test_the_service_takes_only_the_public_types_and_severities(tw, type, severity):
    with pytest.raises(Invalid):
        _record(tw.agent, tw.world.connection, type=type, severity=severity)
    assert not TrustSignal.objects.exists()
    assert latest_event(tw.org, "trust.signal_rejected").data["reason"] == "unknown_type"


@pytest.mark.parametrize("kind", sorted(PRODUCT_SIGNAL_KINDS))
def test_a_connection_may_not_report_what_only_the_product_observes(client, tw, kind):
    response = _signal(client, tw, _body(tw, type=kind, severity="low"))
    _refused_with(response, 400, "invalid_request")
    assert not TrustSignal.objects.exists()
    assert tw.score() == BASELINE


# What the product observes itself -------------------------------------------------------------


def test_authentication_failures_and_unexpected_networks_count_against_identity(tw):
    tw.policy(signal_half_life_seconds=HOUR)
    with freeze_time(start()) as frozen:
        failure = product_signal_record(agent=tw.agent, kind="authentication_failure", detail="bad_secret")
        product_signal_record(agent=tw.agent, kind="unexpected_network", detail="203.0.113.9")
        assert (failure.connection_id, failure.type) == (None, "authentication_failure")
        trust = tw.trust()
        assert trust["components"]["identity"]["score"] == 100 - 5 - 10
        assert trust["components"]["behaviour"]["score"] == 50
        assert trust["components"]["identity"]["reasons"] == [
            "identity: token request from an unexpected network, 0 min ago: -10",
            "identity: authentication failure, 0 min ago: -5"]
        assert trust["score"] == round(BASELINE - 15 * 0.25)
        frozen.tick(2 * HOUR)
        assert tw.trust()["components"]["identity"]["score"] == round(100 - 15 / 4)  # they fade
        frozen.tick(8 * HOUR)
        assert tw.score() == BASELINE


def test_identity_signals_cost_at_most_40_together(tw):
    for _ in range(6):
        product_signal_record(agent=tw.agent, kind="unexpected_network")
        product_signal_record(agent=tw.agent, kind="authentication_failure")
    trust = tw.trust()
    assert trust["components"]["identity"]["score"] == 60
    identity = [r for r in trust["reasons"] if r.startswith("identity:")]
    assert len([r for r in identity if "×6" in r]) == 2  # one reason per kind, not per row
    assert identity[-1] == "identity: what the token endpoint observed counts at most -40"


def test_refused_scopes_and_audiences_count_against_behaviour(tw):
    product_signal_record(agent=tw.agent, kind="scope_refused", detail="scope_not_granted")
    product_signal_record(agent=tw.agent, kind="audience_refused", detail="resource_unknown")
    trust = tw.trust()
    assert trust["components"]["behaviour"]["score"] == 50 - 5 - 5
    assert trust["components"]["identity"]["score"] == 100
    assert any("scope refused (low)" in r for r in trust["reasons"])


@pytest.mark.parametrize("kind", ["guardrail_violation", "positive_review", "nonsense"])
def test_the_product_records_only_its_own_kinds(tw, kind):
    with pytest.raises(Invalid):
        product_signal_record(agent=tw.agent, kind=kind)
    assert not TrustSignal.objects.exists()
