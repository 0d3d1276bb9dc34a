"""The OpenID AuthZEN 1.0 Access Evaluation endpoint over HTTP: a downstream service, authenticated as
its connection, asks whether an agent may be dispatched for an operation and gets dispatch's decision
(true only for allow; escalate and block are false with the reasons in `context`). Agents that do not
call the service, of another org or unknown, all get the same false; malformed requests are 400,
unauthenticated ones 401; each evaluation is on record and starts nothing."""

import json
from urllib.parse import urlsplit

import pytest
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext

from agents.models import Run
from agents.policies import connection_create
from tests.agents.conftest import AUDIENCE, basic
from tests.helpers import audit_events, latest_event
from tests.trust.conftest import trust_world

pytestmark = pytest.mark.django_db

BASELINE = 70  # a fresh agent's score (tests.trust.test_signals)
CRM = "https://crm.example.com"


def _url(tw, batch=False, slug=None) -> str:
    return f"/authzen/{slug or tw.org.slug}/access/v1/evaluation{'s' if batch else ''}"


def _ask(tw, operation="deploy", *, agent=None, action="dispatch", **extra) -> dict:
    return {
        "subject": {"type": "agent", "id": agent or tw.agent.client_id},
        "action": {"name": action},
        "resource": {"type": "operation", "id": operation},
        **extra,
    }


def _evaluate(
    client, tw, body=None, *, auth=None, batch=False, slug=None, content_type="application/json", **headers
):
    auth = auth or (tw.world.connection.client_id, tw.world.connection_secret)
    body = _ask(tw) if body is None else body
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(
        _url(tw, batch, slug), data, content_type=content_type, HTTP_AUTHORIZATION=basic(*auth), **headers
    )


def _decision(response) -> dict:
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    return response.json()


def _gate(tw, **body):
    response = tw.api.post(
        tw.url("trust-gates"), {"name": "deploys", "operation": "deploy", **body}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def _min_trust(tw, value, connection=None):
    connection = connection or tw.world.connection
    response = tw.api.patch(tw.url(f"connections/{connection.pk}"), {"min_trust": value}, format="json")
    assert response.status_code == 200, response.content


def _refused(response, status, error):
    assert response.status_code == status, response.content
    assert response.json()["error"] == error and response.json()["error_description"]
    assert response["Cache-Control"] == "no-store"


def _decisions(tw) -> int:
    return sum(audit_events(tw.org, name).count() for name in ("trust.allow", "trust.escalate", "trust.deny"))


def test_an_agent_above_every_gate_is_allowed(client, tw):
    _gate(tw, min_score=50, below="block")
    answer = _decision(_evaluate(client, tw, HTTP_X_REQUEST_ID="bfe9eb29-ab87-4ca3-be83-a1d5d8305716"))
    assert answer["decision"] is True
    context = answer["context"]
    assert context["outcome"] == "allow"
    assert context["trust"] == {"score": BASELINE, "level": "elevated"}
    assert isinstance(context["reasons"], list)
    assert "reason_admin" not in context
    entry = latest_event(tw.org, "trust.allow")
    assert entry.actor_type == "connection" and entry.actor_id == str(tw.world.connection.pk)
    assert (entry.target_type, entry.target_id) == ("agent", str(tw.agent.pk))
    assert entry.outcome == "success"
    assert entry.data["path"] == "authzen" and entry.data["decision"] == "allow"
    assert entry.data["agent"] == str(tw.agent.pk) and entry.data["operation"] == "deploy"
    assert entry.data["audiences"] == [tw.world.connection.audience]
    assert entry.data["score"] == BASELINE
    assert entry.correlation_id == "bfe9eb29-ab87-4ca3-be83-a1d5d8305716"
    assert not Run.objects.exists()  # an evaluation never starts a run


def test_the_request_id_is_echoed(client, tw):
    response = _evaluate(client, tw, HTTP_X_REQUEST_ID="bfe9eb29-ab87-4ca3-be83-a1d5d8305716")
    assert response["X-Request-ID"] == "bfe9eb29-ab87-4ca3-be83-a1d5d8305716"


def test_an_escalating_gate_is_false_with_outcome_escalate(client, tw):
    _gate(tw, min_score=90, below="escalate")
    answer = _decision(_evaluate(client, tw))
    assert answer["decision"] is False
    context = answer["context"]
    assert context["outcome"] == "escalate" and context["id"] == "escalate"
    assert context["trust"] == {"score": BASELINE, "level": "elevated"}
    assert "below gate deploys's minimum 90" in context["reason_admin"]["en"]
    assert context["reason_user"]["en"]
    assert any("gate deploys" in r for r in context["reasons"])
    entry = latest_event(tw.org, "trust.escalate")
    assert entry.data["path"] == "authzen" and entry.data["decision"] == "escalate"
    assert entry.outcome == "denied"
    assert {"gate": "gate", "name": "deploys", "min_score": 90, "outcome": "escalate"} in entry.data["gates"]
    assert not Run.objects.exists()
    assert not audit_events(tw.org, "trust.allow").exists()


def test_a_gate_for_another_operation_does_not_apply(client, tw):
    _gate(tw, min_score=90, below="block")
    assert _decision(_evaluate(client, tw, _ask(tw, "read-tickets")))["decision"] is True


def test_a_blocking_connection_minimum_is_false(client, tw):
    _min_trust(tw, 80)
    answer = _decision(_evaluate(client, tw))
    assert answer["decision"] is False
    assert answer["context"]["outcome"] == "block"
    assert "below https://tickets.example.com's minimum 80" in answer["context"]["reason_admin"]["en"]
    entry = latest_event(tw.org, "trust.deny")
    assert entry.data["path"] == "authzen" and entry.data["decision"] == "block"
    assert entry.outcome == "denied"


def test_only_the_asking_connections_minimum_counts(client, tw):
    crm, _ = connection_create(access=tw.world.access, name="CRM", audience=CRM, scopes=["crm:read"])
    patched = tw.api.patch(tw.url(f"agents/{tw.agent.pk}"), {"audiences": [AUDIENCE, CRM]}, format="json")
    assert patched.status_code == 200, patched.content
    _min_trust(tw, 95, connection=crm)  # another service the agent calls: not this one's business
    assert _decision(_evaluate(client, tw))["decision"] is True
    assert latest_event(tw.org, "trust.allow").data["audiences"] == [tw.world.connection.audience]


def test_a_score_or_decision_in_the_request_is_ignored(client, tw):
    _gate(tw, min_score=90, below="block")
    body = _ask(tw, context={"score": 100, "decision": True, "trust": {"score": 100}})
    body["subject"]["properties"] = {"score": 100, "level": "trusted"}
    answer = _decision(_evaluate(client, tw, body, HTTP_X_TRUST_SCORE="100"))
    assert answer["decision"] is False
    assert answer["context"]["trust"]["score"] == BASELINE


def _same_false_for_every_unknown(answer):
    assert answer == {
        "decision": False,
        "context": {
            "id": "unknown_subject",
            "outcome": "block",
            "reason_admin": {"en": "No agent with that client id calls this service."},
            "reason_user": {"en": "No agent with that client id calls this service."},
            "reasons": ["No agent with that client id calls this service."],
        },
    }


def test_an_unknown_agent_is_false_and_on_record(client, tw):
    answer = _decision(_evaluate(client, tw, _ask(tw, agent="agt_nobody")))
    _same_false_for_every_unknown(answer)
    entry = latest_event(tw.org, "trust.deny")
    assert entry.data["path"] == "authzen" and entry.data["reasons"] == ["unknown_subject"]
    assert (entry.target_type, entry.target_id) == ("connection", str(tw.world.connection.pk))


def test_another_orgs_agent_is_false_alike_and_nothing_is_said_of_it(client, tw):
    other = trust_world()
    answer = _decision(_evaluate(client, tw, _ask(tw, agent=other.agent.client_id)))
    _same_false_for_every_unknown(answer)
    assert not audit_events(other.org, "trust.deny").exists()
    assert not audit_events(other.org, "trust.allow").exists()


def test_an_agent_that_does_not_call_this_service_is_false_alike(client, tw):
    crm, crm_secret = connection_create(access=tw.world.access, name="CRM", audience=CRM, scopes=["crm:read"])
    answer = _decision(_evaluate(client, tw, auth=(crm.client_id, crm_secret)))
    _same_false_for_every_unknown(answer)
    entry = latest_event(tw.org, "trust.deny")
    assert entry.actor_id == str(crm.pk) and entry.data["reasons"] == ["unknown_subject"]


@pytest.mark.parametrize(
    "change,reason",
    [
        ({"action": {"name": "delete"}}, "unsupported_action"),
        ({"resource": {"type": "document", "id": "deploy"}}, "unsupported_resource"),
        ({"subject": {"type": "user", "id": "alice@example.com"}}, "unsupported_subject"),
    ],
)
def test_another_action_resource_or_subject_type_is_false_with_a_reason(client, tw, change, reason):
    answer = _decision(_evaluate(client, tw, {**_ask(tw), **change}))
    assert answer["decision"] is False
    assert answer["context"]["id"] == reason and answer["context"]["reason_admin"]["en"]
    assert latest_event(tw.org, "trust.deny").data["reasons"] == [reason]
    assert not audit_events(tw.org, "trust.allow").exists()


def test_a_connection_of_another_org_is_unauthenticated_here(client, tw):
    other = trust_world()
    response = _evaluate(client, tw, auth=(other.world.connection.client_id, other.world.connection_secret))
    _refused(response, 401, "invalid_client")
    assert response["WWW-Authenticate"].startswith("Basic")
    assert _decisions(tw) == 0 and _decisions(other) == 0


@pytest.mark.parametrize(
    "auth",
    [
        ("{connection}", "cnc_wrong_secret"),
        ("{agent}", "{agent_secret}"),
        ("nobody", "{connection_secret}"),
    ],
    ids=["wrong secret", "an agent's credentials", "unknown client"],
)
def test_a_caller_that_is_not_the_connection_is_401(client, tw, auth):
    values = {
        "connection": tw.world.connection.client_id,
        "agent": tw.agent.client_id,
        "agent_secret": tw.world.agent_secret,
        "connection_secret": tw.world.connection_secret,
    }
    response = _evaluate(client, tw, auth=tuple(a.format(**values) for a in auth))
    _refused(response, 401, "invalid_client")
    assert response["WWW-Authenticate"].startswith("Basic")
    assert _decisions(tw) == 0


def test_no_credentials_is_401_with_www_authenticate(client, tw):
    response = client.post(_url(tw), json.dumps(_ask(tw)), content_type="application/json")
    _refused(response, 401, "invalid_client")
    assert response["WWW-Authenticate"].startswith("Basic")
    assert _decisions(tw) == 0


VALID = {
    "subject": {"type": "agent", "id": "a"},
    "action": {"name": "dispatch"},
    "resource": {"type": "operation", "id": "x"},
}


def _json(**changes) -> str:
    return json.dumps({**VALID, **changes})


MALFORMED = {
    "not json": "not json",
    "an array": "[1, 2]",
    "nothing": "{}",
    "no subject id": _json(subject={"type": "agent"}),
    "subject not an object": _json(subject="agent"),
    "id not a string": _json(subject={"type": "agent", "id": 7}),
    "no action name": _json(action={}),
    "no resource": json.dumps({k: v for k, v in VALID.items() if k != "resource"}),
    "properties not an object": _json(resource={"type": "operation", "id": "x", "properties": []}),
    "NUL escape": _json(subject={"type": "agent", "id": "a\x00b"}),
    "NUL in a key": _json(context={"a\x00": 1}),
    "context not an object": _json(context=[]),
    "id too long": _json(subject={"type": "agent", "id": "a" * 300}),
    "deep nesting": '{"context": ' + "[" * 5000 + "]" * 5000 + "}",
    "nested too deeply": _json(context={"a": json.loads("[" * 100 + "]" * 100)}),
    "NUL byte": b'{"subject": {"type": "agent", "id": "a\x00"}}',
    "not UTF-8": b"\xff\xfe{}",
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_requests_are_400_and_record_nothing(client, tw, body):
    _refused(_evaluate(client, tw, body), 400, "invalid_request")
    assert _decisions(tw) == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_a_body_that_is_not_sent_as_json_is_400(client, tw, content_type):
    _refused(_evaluate(client, tw, json.dumps(_ask(tw)), content_type=content_type), 400, "invalid_request")
    assert _decisions(tw) == 0


def test_a_huge_body_is_400_not_500(client, tw, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = _ask(tw, context={"padding": "x" * 5000})
    _refused(_evaluate(client, tw, body), 400, "invalid_request")
    assert _decisions(tw) == 0


def test_get_is_refused_in_json(client, tw):
    response = client.get(
        _url(tw), HTTP_AUTHORIZATION=basic(tw.world.connection.client_id, tw.world.connection_secret)
    )
    assert response.status_code == 405 and response.json()["error"] == "invalid_request"
    assert response["Allow"] == "POST"


def test_evaluations_are_rate_limited_per_connection(client, tw, settings):
    settings.IAM_AUTHZEN_PER_MINUTE = 3
    for _ in range(3):
        assert _evaluate(client, tw).status_code == 200
    response = _evaluate(client, tw)
    _refused(response, 429, "slow_down")
    assert response["Retry-After"] == "60"
    assert _decisions(tw) == 3
    crm, crm_secret = connection_create(access=tw.world.access, name="CRM", audience=CRM, scopes=["crm:read"])
    assert _evaluate(client, tw, auth=(crm.client_id, crm_secret)).status_code == 200  # its own budget


def test_the_metadata_names_the_pdp_and_its_endpoints(client, tw):
    response = client.get(f"/.well-known/authzen-configuration/authzen/{tw.org.slug}")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "public" in response["Cache-Control"] and "max-age=300" in response["Cache-Control"]
    issuer = client.get(f"/.well-known/oauth-authorization-server/oauth/{tw.org.slug}").json()["issuer"]
    pdp = issuer.replace(f"/oauth/{tw.org.slug}", f"/authzen/{tw.org.slug}")  # the same origin
    assert pdp.startswith("http") and pdp.endswith(f"/authzen/{tw.org.slug}")
    assert response.json() == {
        "policy_decision_point": pdp,
        "access_evaluation_endpoint": f"{pdp}/access/v1/evaluation",
        "access_evaluations_endpoint": f"{pdp}/access/v1/evaluations",
    }
    assert client.get(f"/.well-known/authzen-configuration/authzen/{tw.org.slug}x").status_code == 404


def test_the_metadatas_endpoint_is_where_the_evaluation_answers(client, tw):
    metadata = client.get(f"/.well-known/authzen-configuration/authzen/{tw.org.slug}").json()
    path = urlsplit(metadata["access_evaluation_endpoint"]).path
    response = client.post(
        path,
        json.dumps(_ask(tw)),
        content_type="application/json",
        HTTP_AUTHORIZATION=basic(tw.world.connection.client_id, tw.world.connection_secret),
    )
    assert _decision(response)["decision"] is True


def test_a_batch_answers_each_in_order_with_defaults(client, tw):
    _gate(tw, min_score=90, below="escalate")
    body = {
        "subject": {"type": "agent", "id": tw.agent.client_id},
        "action": {"name": "dispatch"},
        "evaluations": [
            {"resource": {"type": "operation", "id": "read"}},
            {"resource": {"type": "operation", "id": "deploy"}},
            {"action": {"name": "delete"}, "resource": {"type": "operation", "id": "read"}},
        ],
    }
    answer = _decision(_evaluate(client, tw, body, batch=True))
    assert [e["decision"] for e in answer["evaluations"]] == [True, False, False]
    assert [e["context"]["outcome"] for e in answer["evaluations"]] == ["allow", "escalate", "block"]
    assert _decisions(tw) == 3


def test_a_batch_can_stop_on_the_first_deny(client, tw):
    _gate(tw, min_score=90, below="block")
    body = {
        "subject": {"type": "agent", "id": tw.agent.client_id},
        "action": {"name": "dispatch"},
        "options": {"evaluations_semantic": "deny_on_first_deny"},
        "evaluations": [{"resource": {"type": "operation", "id": op}} for op in ("read", "deploy", "read")],
    }
    answer = _decision(_evaluate(client, tw, body, batch=True))
    assert [e["decision"] for e in answer["evaluations"]] == [True, False]
    assert _decisions(tw) == 2


@pytest.mark.parametrize(
    "body",
    [
        {"evaluations": [{"resource": {"type": "operation", "id": "x"}}]},
        {"evaluations": "all"},
        {"evaluations": [{}] * 51},
        {"options": {"evaluations_semantic": "sometimes"}, "evaluations": []},
    ],
    ids=["missing defaults", "not an array", "too many", "unknown semantic"],
)
def test_a_malformed_batch_is_400(client, tw, body):
    _refused(_evaluate(client, tw, body, batch=True), 400, "invalid_request")
    assert _decisions(tw) == 0


def _queries(client, tw) -> int:
    with CaptureQueriesContext(db_connection) as queries:
        assert _decision(_evaluate(client, tw))["decision"] is True
    return len(queries)


@pytest.mark.parametrize("warm", [False, True], ids=["cold cache", "warm cache"])
def test_the_query_count_does_not_grow_with_the_gates(client, tw, warm):
    from django.core.cache import cache

    def measure():
        if not warm:
            cache.clear()
        else:
            _evaluate(client, tw)
        return _queries(client, tw)

    _gate(tw, name="g0", min_score=10)
    one = measure()
    for i in range(1, 8):
        _gate(tw, name=f"g{i}", min_score=10)
    assert measure() == one
