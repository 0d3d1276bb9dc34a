"""Trust over the admin API: trust roots, attestations (one signed by a registered root's key counts;
anything else is refused, changes nothing and is on record), the agent's score, the org's trust
policy, and the versions and networks an agent's owners expect."""

import base64
import hashlib
import hmac

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents.models import Agent
from tests.helpers import audit_events, latest_event
from tests.trust.conftest import SigningRoot, b64, claims_for, trust_world, unsigned
from trust.models import Attestation, ScoreSample, TrustPolicy, TrustRoot, TrustSignal

pytestmark = pytest.mark.django_db

BASELINE = 70  # identity 100·25 + behaviour 50·35 + compliance 100·15 + attestations 50·25, over 100


# Trust roots ----------------------------------------------------------------------------------


def test_a_root_is_registered_listed_read_and_removed(tw, root):
    body = tw.register(root, name="Security review board")
    assert body["name"] == "Security review board"
    assert body["jwks"] == root.jwks
    assert latest_event(tw.org, "trust.root_added").data == {"name": "Security review board",
                                                             "kids": [root.kid]}
    listed = tw.api.get(tw.url("trust-roots")).json()["results"]
    assert [r["id"] for r in listed] == [body["id"]]
    assert tw.api.get(tw.url(f"trust-roots/{body['id']}")).json()["name"] == "Security review board"
    assert tw.attest(root.sign(claims_for(tw.agent, weight=40))).status_code == 201
    assert tw.score() == BASELINE + 10
    assert tw.api.delete(tw.url(f"trust-roots/{body['id']}")).status_code == 204
    assert not TrustRoot.objects.filter(org=tw.org).exists()
    assert latest_event(tw.org, "trust.root_removed").data["attestations"] == 1
    assert tw.score() == BASELINE  # what it signed stopped counting with it


def _private(root):
    return {"keys": [root.key.as_dict(private=True)]}


def _no_kid(root):
    key = root.key.as_dict(private=False)
    del key["kid"]
    return {"keys": [key]}


def _twice(root):
    return {"keys": [root.key.as_dict(private=False), SigningRoot(root.kid).key.as_dict(private=False)]}


@pytest.mark.parametrize("jwks", [_private, _no_kid, _twice, lambda r: {"keys": []}, lambda r: "x"],
                         ids=["private key", "no kid", "duplicate kid", "no keys", "not a set"])
def test_a_bad_key_set_is_refused_with_its_field(tw, root, jwks):
    response = tw.api.post(tw.url("trust-roots"), {"name": "board", "jwks": jwks(root)}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error" and "jwks" in response.json()["fields"]
    assert not TrustRoot.objects.filter(org=tw.org).exists()
    assert not audit_events(tw.org, "trust.root_added").exists()


def test_a_kid_or_name_another_root_has_is_a_conflict(tw, root):
    tw.register(root, name="board")
    for body in ({"name": "other", "jwks": SigningRoot(root.kid).jwks},
                 {"name": "board", "jwks": SigningRoot("fresh").jwks}):
        response = tw.api.post(tw.url("trust-roots"), body, format="json")
        assert response.status_code == 409, response.content
        assert response.json()["error"] == "duplicate" and response.json()["fields"]
    assert TrustRoot.objects.filter(org=tw.org).count() == 1
    assert audit_events(tw.org, "trust.root_added").count() == 1


# Attestations ---------------------------------------------------------------------------------


def test_an_attestation_from_a_registered_root_raises_the_score(tw, root):
    registered = tw.register(root)
    response = tw.attest(root.sign(claims_for(tw.agent, weight=20, jti="review-7")))
    assert response.status_code == 201, response.content
    body = response.json()
    assert {k: body[k] for k in ("type", "weight", "root", "kid", "live")} == {
        "type": "security_review", "weight": 20, "root": registered["id"], "kid": root.kid, "live": True}
    assert body["issued_at"] and body["expires_at"] and body["id"]
    trust = tw.trust()
    assert trust["score"] == BASELINE + 5
    assert trust["components"]["attestations"]["score"] == 70
    assert any("security_review" in r for r in trust["reasons"])
    assert latest_event(tw.org, "trust.attestation_added").data["weight"] == 20
    listed = tw.api.get(tw.url(f"agents/{tw.agent.pk}/attestations")).json()["results"]
    assert [(a["id"], a["live"]) for a in listed] == [(body["id"], True)]


def _other_key(root, agent):
    return SigningRoot(root.kid).sign(claims_for(agent, weight=50))  # same kid, a key nobody registered


def _unknown_kid(root, agent):
    return SigningRoot("nobody").sign(claims_for(agent, weight=50))


def _embedded_jwk(root, agent):
    attacker = SigningRoot(root.kid)
    return attacker.sign(claims_for(agent, weight=50), jwk=attacker.key.as_dict(private=False))


def _other_agent(root, agent):
    return root.sign({**claims_for(agent, weight=50), "sub": "agent:00000000-0000-4000-8000-000000000000"})


def _user_subject(root, agent):
    return root.sign({**claims_for(agent, weight=50), "sub": f"user:{agent.pk}"})


def _weight_51(root, agent):
    return root.sign(claims_for(agent, weight=51))


def _weight_text(root, agent):
    return root.sign(claims_for(agent, weight="50"))


def _expired(root, agent):
    return root.sign(claims_for(agent, weight=50, iat=1_000_000_000))


def _alg_none(root, agent):
    return unsigned(claims_for(agent, weight=50), kid=root.kid)


def _hs256_with_the_public_key(root, agent):
    # The classic confusion: the registered public key used as an HMAC secret (made by hand: JOSE
    # libraries refuse to, as they should).
    signing_input = f"{b64({'alg': 'HS256', 'kid': root.kid})}.{b64(claims_for(agent, weight=50))}"
    mac = hmac.new(root.key.as_pem(private=False), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def _no_type(root, agent):
    claims = claims_for(agent, weight=50)
    del claims["type"]
    return root.sign(claims)


def _garbage(root, agent):
    return "not.a.jws"


REFUSED = [
    (_other_key, "bad_signature"), (_unknown_kid, "unknown_key"), (_embedded_jwk, "embedded_key"),
    (_other_agent, "wrong_subject"), (_user_subject, "wrong_subject"), (_weight_51, "bad_weight"),
    (_weight_text, "bad_weight"), (_expired, "expired"), (_alg_none, "algorithm_not_allowed"),
    (_hs256_with_the_public_key, "algorithm_not_allowed"), (_no_type, "missing_type"),
    (_garbage, "malformed"),
]


@pytest.mark.parametrize("make,reason", REFUSED, ids=[m.__name__.strip("_") for m, _ in REFUSED])
def test_an_attestation_not_from_a_registered_root_changes_nothing(tw, root, make, reason):
    tw.register(root)
    before = tw.trust()
    response = tw.attest(make(root, tw.agent))
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid_attestation"
    assert "attestation" in response.json()["fields"]
    assert not Attestation.objects.filter(org=tw.org).exists()
    assert tw.score() == before["score"]
    assert tw.trust()["components"] == before["components"]
    refusal = latest_event(tw.org, "trust.attestation_rejected")
    assert refusal.data == {"agent": str(tw.agent.pk), "reason": reason} and refusal.outcome == "denied"
    assert audit_events(tw.org, "trust.attestation_rejected").count() == 1
    assert not audit_events(tw.org, "trust.attestation_added").exists()


def test_the_same_statement_counts_once(tw, root):
    tw.register(root)
    compact = root.sign(claims_for(tw.agent, weight=20))
    assert tw.attest(compact).status_code == 201
    response = tw.attest(compact)
    assert response.status_code == 409 and response.json()["error"] == "duplicate"
    assert Attestation.objects.filter(org=tw.org).count() == 1
    assert tw.score() == BASELINE + 5


def test_another_orgs_agent_is_a_404(tw, root):
    other = trust_world()
    tw.register(root)
    compact = root.sign(claims_for(other.agent, weight=50))
    for response in (tw.attest(compact, agent=other.agent),
                     tw.api.get(tw.url(f"agents/{other.agent.pk}/attestations")),
                     tw.api.get(tw.url(f"agents/{other.agent.pk}/trust"))):
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"
    assert not Attestation.objects.exists()
    assert not ScoreSample.objects.exists()
    assert not audit_events(other.org, "trust.attestation_added").exists()


# The score ------------------------------------------------------------------------------------


def test_the_trust_answer_is_the_contract(tw):
    body = tw.trust()
    assert set(body) == {"score", "level", "components", "reasons", "evaluated_at"}
    assert body["score"] == BASELINE and body["level"] == "elevated"
    assert set(body["components"]) == {"identity", "behaviour", "compliance", "attestations"}
    assert body["components"]["behaviour"] == {"score": 50, "weight": 35, "reasons": []}
    assert body["reasons"] == [] and body["evaluated_at"].endswith("Z")


def test_a_self_asserted_score_is_ignored(tw, root):
    tw.register(root)
    assert tw.trust(HTTP_X_TRUST_SCORE="100")["score"] == BASELINE
    response = tw.attest(root.sign(claims_for(tw.agent, weight=0, score=100, level="trusted")), score=100)
    assert response.status_code == 201
    assert tw.trust(HTTP_X_TRUST_SCORE="100", HTTP_X_TRUST_LEVEL="trusted")["score"] == BASELINE
    response = tw.api.patch(tw.url("trust-policy"), {"score": 100}, format="json")
    assert response.status_code == 400 and "score" in response.json()["fields"]


def test_reading_the_score_keeps_one_sample_a_minute(tw):
    from freezegun import freeze_time

    from tests.trust.conftest import start

    with freeze_time(start()) as frozen:
        tw.trust()
        frozen.tick(30)
        tw.trust()
        assert ScoreSample.objects.filter(agent=tw.agent).count() == 1
        frozen.tick(31)
        tw.trust()
    samples = list(ScoreSample.objects.filter(agent=tw.agent).order_by("at"))
    assert [(s.score, s.level) for s in samples] == [(BASELINE, "elevated")] * 2
    assert (samples[1].at - samples[0].at).total_seconds() == 61


def _queries(tw) -> int:
    with CaptureQueriesContext(connection) as captured:
        tw.trust()
    return len(captured)


def test_the_score_costs_constant_queries(tw, root):
    tw.api.get(tw.url("trust-roots"))  # the API key's first use records it: not the score's cost
    empty = _queries(tw)
    busy = trust_world()
    busy.register(root)
    for i in range(30):
        assert busy.attest(root.sign(claims_for(busy.agent, weight=1, jti=f"j{i}"))).status_code == 201
        TrustSignal.objects.create(org=busy.org, agent=busy.agent, connection=busy.world.connection,
                                   type="output_flagged", severity="low")
    assert ScoreSample.objects.filter(agent=busy.agent).count() == 0
    assert _queries(busy) == empty
    assert empty <= 9, empty


# Trust policy ---------------------------------------------------------------------------------


def test_the_policy_is_read_and_changed(tw):
    body = tw.api.get(tw.url("trust-policy")).json()
    assert body["weights"] == {"identity": 25, "behaviour": 35, "compliance": 15, "attestations": 25}
    assert body["org_floor"] == 20 and body["required_attestations"] == []
    changed = tw.policy(org_floor=35, weights={"identity": 0, "behaviour": 0, "compliance": 0},
                        signal_half_life_seconds=7200, secret_max_age_days=30,
                        required_attestations=["security_review"])
    assert changed["weights"] == {"identity": 0, "behaviour": 0, "compliance": 0, "attestations": 25}
    assert changed["org_floor"] == 35 and changed["signal_half_life_seconds"] == 7200
    assert tw.api.get(tw.url("trust-policy")).json() == changed
    entry = latest_event(tw.org, "policy.changed")
    assert "weight_identity" in entry.data["fields"] and entry.data["previous"]["org_floor"] == 20
    assert tw.score() == 50  # only the attestations component weighs now


@pytest.mark.parametrize("body,field", [
    ({"org_floor": 101}, "org_floor"),
    ({"org_floor": -1}, "org_floor"),
    ({"weights": {"identity": -1}}, "weights"),
    ({"weights": {"identity": 101}}, "weights"),
    ({"weights": {"trust": 5}}, "weights"),
    ({"weights": {"identity": 0, "behaviour": 0, "compliance": 0, "attestations": 0}}, "weights"),
    ({"signal_half_life_seconds": 10}, "signal_half_life_seconds"),
    ({"secret_max_age_days": 0}, "secret_max_age_days"),
    ({"required_attestations": "security_review"}, "required_attestations"),
    ({"required_attestations": ["x" * 101]}, "required_attestations"),
    ({"org_floor": 30, "weight_identity": 5}, "weight_identity"),
], ids=lambda v: str(v)[:40])
def test_an_invalid_policy_changes_nothing(tw, body, field):
    tw.policy(org_floor=25)
    before = tw.api.get(tw.url("trust-policy")).json()
    changes = audit_events(tw.org, "policy.changed").count()
    response = tw.api.patch(tw.url("trust-policy"), body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["fields"]
    assert tw.api.get(tw.url("trust-policy")).json() == before
    assert audit_events(tw.org, "policy.changed").count() == changes
    assert TrustPolicy.objects.get(org=tw.org).org_floor == 25


# What the agent's owners expect ----------------------------------------------------------------


def test_approved_versions_and_networks_are_set_on_the_agent(tw):
    url = tw.url(f"agents/{tw.agent.pk}")
    response = tw.api.patch(url, {"approved_versions": ["1.4.2", "1.4.2", "1.5.0"],
                                  "networks": ["10.1.2.3/16", "2001:db8::/32"]}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["approved_versions"] == ["1.4.2", "1.5.0"]
    assert body["networks"] == ["10.1.0.0/16", "2001:db8::/32"]
    assert tw.api.get(url).json()["networks"] == ["10.1.0.0/16", "2001:db8::/32"]
    entry = latest_event(tw.org, "agent.trust_inputs_changed")
    assert entry.data["networks"] == ["10.1.0.0/16", "2001:db8::/32"]
    assert entry.data["previous_networks"] == [] and entry.data["approved_versions"] == ["1.4.2", "1.5.0"]
    assert not audit_events(tw.org, "agent.grant_changed").exists()  # the grant was not touched
    trust = tw.trust()
    assert trust["components"]["compliance"]["score"] == 70
    assert "compliance: no version reported yet" in trust["reasons"]


@pytest.mark.parametrize("body,field", [
    ({"networks": ["10.0.0.0/33"]}, "networks"),
    ({"networks": ["example.com"]}, "networks"),
    ({"networks": "10.0.0.0/8"}, "networks"),
    ({"networks": ["10.0.0.0/8"], "approved_versions": [""]}, "approved_versions"),
    ({"approved_versions": ["x" * 65]}, "approved_versions"),
    ({"networks": ["10.0.0.0/8"], "scopes": ["nothing:here"]}, "scopes"),
], ids=lambda v: str(v)[:40])
def test_an_invalid_expectation_changes_nothing(tw, body, field):
    response = tw.api.patch(tw.url(f"agents/{tw.agent.pk}"), body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["fields"]
    agent = Agent.objects.get(pk=tw.agent.pk)
    assert agent.networks == [] and agent.approved_versions == [] and agent.scopes == ["tickets:read"]
    assert not audit_events(tw.org, "agent.trust_inputs_changed").exists()


# Keys' alg and use, duplicates --------------------------------------------------------------


def _rsa_key(kid: str, **parameters):
    from joserfc.jwk import RSAKey

    return RSAKey.generate_key(2048, parameters={"kid": kid, **parameters})


@pytest.mark.parametrize("key,message", [
    (lambda root: {"kty": "oct", "kid": "shared", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ"}, "symmetric"),
    (lambda root: {**root.key.as_dict(private=False), "use": "enc"}, "signing"),
    (lambda root: _rsa_key("rsa-1", alg="RS384").as_dict(private=False), "algorithm"),
], ids=["symmetric key", "encryption key", "algorithm not accepted"])
def test_a_key_that_cannot_sign_attestations_is_refused_at_registration(tw, root, key, message):
    response = tw.api.post(tw.url("trust-roots"), {"name": "board", "jwks": {"keys": [key(root)]}},
                           format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "validation_error"
    assert message in " ".join(response.json()["fields"]["jwks"]).lower()
    assert not TrustRoot.objects.filter(org=tw.org).exists()
    assert not audit_events(tw.org, "trust.root_added").exists()


def test_an_attestation_must_use_the_algorithm_its_key_names(tw):
    from joserfc import jwt as jose_jwt

    key = _rsa_key("ci-pipeline")  # the signer's copy names no alg: it could sign RS256 too
    registered = {**key.as_dict(private=False), "alg": "PS256"}
    response = tw.api.post(tw.url("trust-roots"), {"name": "ci", "jwks": {"keys": [registered]}},
                           format="json")
    assert response.status_code == 201, response.content
    claims = claims_for(tw.agent, weight=50)
    response = tw.attest(jose_jwt.encode({"alg": "RS256", "kid": "ci-pipeline"}, claims, key))
    assert response.status_code == 400 and response.json()["error"] == "invalid_attestation"
    refusal = latest_event(tw.org, "trust.attestation_rejected")
    assert refusal.data == {"agent": str(tw.agent.pk), "reason": "wrong_key_algorithm"}
    assert not Attestation.objects.filter(org=tw.org).exists() and tw.score() == BASELINE
    claims = claims_for(tw.agent, weight=40, jti="ps")
    compact = jose_jwt.encode({"alg": "PS256", "kid": "ci-pipeline"}, claims, key, algorithms=["PS256"])
    assert tw.attest(compact).status_code == 201
    assert tw.score() == BASELINE + 10


def test_a_registered_key_not_for_signing_verifies_nothing(tw, root):
    # A row registered before `use` was checked at registration.
    TrustRoot.objects.create(org=tw.org, name="legacy",
                             jwks={"keys": [{**root.key.as_dict(private=False), "use": "enc"}]})
    response = tw.attest(root.sign(claims_for(tw.agent, weight=50)))
    assert response.status_code == 400 and response.json()["error"] == "invalid_attestation"
    refusal = latest_event(tw.org, "trust.attestation_rejected")
    assert refusal.data == {"agent": str(tw.agent.pk), "reason": "key_not_for_signing"}
    assert not Attestation.objects.filter(org=tw.org).exists() and tw.score() == BASELINE


def _same_jti(root, first, agent):
    return root.sign(claims_for(agent, weight=30, jti="j1"))  # another statement, the same jti


@pytest.mark.parametrize("jti,again", [({}, lambda root, first, agent: first),
                                       ({"jti": "j1"}, lambda root, first, agent: first),
                                       ({"jti": "j1"}, _same_jti)],
                         ids=["same statement", "same statement and jti", "same jti"])
def test_a_duplicate_attestation_is_a_conflict_on_record(tw, root, jti, again):
    tw.register(root)
    first = root.sign(claims_for(tw.agent, weight=20, **jti))
    assert tw.attest(first).status_code == 201
    response = tw.attest(again(root, first, tw.agent))
    assert response.status_code == 409 and response.json()["error"] == "duplicate"
    assert Attestation.objects.filter(org=tw.org).count() == 1 and tw.score() == BASELINE + 5
    refusal = latest_event(tw.org, "trust.attestation_rejected")
    assert refusal.data == {"agent": str(tw.agent.pk), "reason": "duplicate"} and refusal.outcome == "denied"
    assert audit_events(tw.org, "trust.attestation_rejected").count() == 1
    assert audit_events(tw.org, "trust.attestation_added").count() == 1
