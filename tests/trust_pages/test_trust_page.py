"""The trust page: the policy form, gates, trust roots and connection minimums. Every change is
audited and refused input (out of range, duplicate, private key, another org's object, no CSRF
token, missing permission) changes nothing."""

import json
import re

import pytest
from django.test import Client

from agents.models import Connection
from tests.factories import MemberFactory, OrgFactory
from tests.helpers import audit_events, latest_event
from tests.trust.conftest import SigningRoot, trust_world
from tests.trust_pages.conftest import as_user, url
from trust import policies
from trust.models import TrustGate, TrustPolicy, TrustRoot

pytestmark = pytest.mark.django_db

POLICY = {
    "org_floor": "30",
    "weight_identity": "10",
    "weight_behaviour": "40",
    "weight_compliance": "20",
    "weight_attestations": "30",
    "signal_half_life_seconds": "86400",
    "secret_max_age_days": "30",
    "required_attestations": "security_review\n\n  pentest \n",
}


def owner_client(tw):
    return as_user(tw.world.owner.user)


def policy_row(org):
    return TrustPolicy.objects.filter(org=org).values().first()


def gates(org):
    return list(
        TrustGate.objects.for_org(org).order_by("name").values_list("name", "operation", "min_score", "below")
    )


def add_gate(tw, **fields):
    return policies.trust_gate_add(
        access=tw.world.access,
        **{"name": "deploys", "operation": "deploy", "min_score": 60, "below": "block", **fields},
    )


def test_the_page_permission_matrix(tw):
    path = url("trust", tw.org)
    anonymous = Client().get(path)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")
    assert as_user(MemberFactory(org=OrgFactory(), role="owner").user).get(path).status_code == 404
    viewer = as_user(MemberFactory(org=tw.org, role="viewer").user)
    page = viewer.get(path)
    assert page.status_code == 200 and "Save trust policy" not in page.content.decode()
    assert viewer.post(path, POLICY).status_code == 403 and policy_row(tw.org) is None
    assert latest_event(tw.org, "access.denied").data["required"] == "trust:write"
    assert "Save trust policy" in owner_client(tw).get(path).content.decode()


def test_the_policy_form_saves_every_setting(tw):
    response = owner_client(tw).post(url("trust", tw.org), POLICY)
    assert response.status_code == 302
    row = policy_row(tw.org)
    assert (
        row["org_floor"],
        row["weight_identity"],
        row["weight_behaviour"],
        row["weight_compliance"],
        row["weight_attestations"],
    ) == (30, 10, 40, 20, 30)
    assert (row["signal_half_life_seconds"], row["secret_max_age_days"]) == (86400, 30)
    assert row["required_attestations"] == ["pentest", "security_review"]
    assert "org_floor" in latest_event(tw.org, "policy.changed").data["fields"]
    page = owner_client(tw).get(url("trust", tw.org)).content.decode()
    assert 'name="org_floor" value="30"' in page and "pentest\nsecurity_review" in page


@pytest.mark.parametrize(
    "change",
    [
        {"org_floor": "101"},
        {"signal_half_life_seconds": "60"},
        {"secret_max_age_days": "0"},
        {"weight_identity": "-1"},
        {"required_attestations": "x" * 101},
        {"org_floor": "ten"},
    ],
)
def test_an_invalid_policy_changes_nothing(tw, change):
    response = owner_client(tw).post(url("trust", tw.org), {**POLICY, **change})
    assert response.status_code == 400
    assert policy_row(tw.org) is None and not audit_events(tw.org, "policy.changed").exists()


def test_all_zero_weights_are_refused_on_the_form(tw):
    zero = {name: "0" for name in POLICY if name.startswith("weight_")}
    response = owner_client(tw).post(url("trust", tw.org), {**POLICY, **zero})
    assert response.status_code == 400 and "All weights are zero." in response.content.decode()
    assert policy_row(tw.org) is None and not audit_events(tw.org, "policy.changed").exists()


def test_gates_are_added_changed_and_deleted(tw):
    client = owner_client(tw)
    added = client.post(
        url("gate-add", tw.org),
        {"name": "deploys", "operation": "deploy", "min_score": "70", "below": "escalate"},
    )
    assert added.status_code == 302 and gates(tw.org) == [("deploys", "deploy", 70, "escalate")]
    assert latest_event(tw.org, "trust.gate_created").data["min_score"] == 70
    gate = TrustGate.objects.for_org(tw.org).get()
    changed = client.post(
        url("gate-change", tw.org, pk=gate.pk),
        {"name": "deploys", "operation": "deploy:prod", "min_score": "80", "below": "block"},
    )
    assert changed.status_code == 302 and gates(tw.org) == [("deploys", "deploy:prod", 80, "block")]
    assert latest_event(tw.org, "trust.gate_changed").data["previous"]["min_score"] == 70
    asked = client.post(url("gate-delete", tw.org, pk=gate.pk))  # first the question; nothing changes
    assert asked.status_code == 200 and len(gates(tw.org)) == 1
    assert "no longer need a trust score of 80" in asked.content.decode()
    deleted = client.post(url("gate-delete", tw.org, pk=gate.pk), {"confirm": "yes"})
    assert deleted.status_code == 302 and gates(tw.org) == []
    assert latest_event(tw.org, "trust.gate_deleted").data["name"] == "deploys"


@pytest.mark.parametrize(
    "fields,status",
    [
        ({"min_score": "101"}, 400),
        ({"below": "shrug"}, 400),
        ({"operation": "no spaces"}, 400),
        ({"name": "existing"}, 409),
        ({"name": ""}, 400),
    ],
)
def test_an_invalid_gate_changes_nothing(tw, fields, status):
    add_gate(tw, name="existing")
    before = gates(tw.org)
    body = {"name": "new", "operation": "deploy", "min_score": "50", "below": "block", **fields}
    response = owner_client(tw).post(url("gate-add", tw.org), body)
    assert response.status_code == status and gates(tw.org) == before
    gate = TrustGate.objects.for_org(tw.org).get()
    add_gate(tw, name="other")
    before = gates(tw.org)
    body["name"] = "other" if fields.get("name") == "existing" else body["name"]
    response = owner_client(tw).post(url("gate-change", tw.org, pk=gate.pk), body)
    assert response.status_code == status and gates(tw.org) == before


def test_another_orgs_gate_root_and_connection_are_not_found(tw):
    other = trust_world()
    gate = add_gate(other)
    root = policies.trust_root_add(access=other.world.access, name="board", jwks=SigningRoot("k1").jwks)
    client = owner_client(tw)
    body = {"name": "x", "operation": "deploy", "min_score": "1", "below": "block"}
    assert client.post(url("gate-change", tw.org, pk=gate.pk), body).status_code == 404
    assert client.post(url("gate-delete", tw.org, pk=gate.pk), {"confirm": "yes"}).status_code == 404
    assert client.post(url("root-remove", tw.org, pk=root.pk), {"confirm": "yes"}).status_code == 404
    connection = other.world.connection
    assert (
        client.post(url("connection-min-trust", tw.org, pk=connection.pk), {"min_trust": "90"}).status_code
        == 404
    )
    assert gates(other.org) == [("deploys", "deploy", 60, "block")]
    assert TrustRoot.objects.filter(pk=root.pk).exists()
    assert Connection.objects.get(pk=connection.pk).min_trust == 0


def test_a_trust_root_is_registered_listed_and_removed_after_confirmation(tw):
    client = owner_client(tw)
    signer = SigningRoot("board-key-1")
    added = client.post(url("root-add", tw.org), {"name": "Review board", "jwks": json.dumps(signer.jwks)})
    assert added.status_code == 302
    root = TrustRoot.objects.for_org(tw.org).get()
    assert root.name == "Review board" and latest_event(tw.org, "trust.root_added").data["kids"] == [
        "board-key-1"
    ]
    page = client.get(url("trust", tw.org)).content.decode()
    assert "Review board" in page and "<code>board-key-1</code>" in page
    asked = client.post(url("root-remove", tw.org, pk=root.pk))  # no confirmation: asks, removes nothing
    assert asked.status_code == 200 and "Remove the trust root Review board?" in asked.content.decode()
    assert TrustRoot.objects.filter(pk=root.pk).exists()
    removed = client.post(url("root-remove", tw.org, pk=root.pk), {"confirm": "yes"})
    assert removed.status_code == 302 and not TrustRoot.objects.filter(pk=root.pk).exists()
    assert latest_event(tw.org, "trust.root_removed").data["name"] == "Review board"


@pytest.mark.parametrize(
    "jwks", ["not json", "[1, 2]", '{"keys": []}', "PRIVATE", '{"keys": [{"kty": "EC"}]}']
)
def test_an_invalid_trust_root_changes_nothing(tw, jwks):
    if jwks == "PRIVATE":
        signer = SigningRoot("leaky")
        jwks = json.dumps({"keys": [signer.key.as_dict(private=True)]})
    response = owner_client(tw).post(url("root-add", tw.org), {"name": "Board", "jwks": jwks})
    assert response.status_code == 400
    assert not TrustRoot.objects.for_org(tw.org).exists()
    assert not audit_events(tw.org, "trust.root_added").exists()
    assert '"d"' not in response.content.decode() or jwks != "PRIVATE"


def test_a_connection_minimum_is_set_per_connection(tw):
    client = owner_client(tw)
    connection = tw.world.connection
    page = client.get(url("trust", tw.org)).content.decode()
    assert url("connection-min-trust", tw.org, pk=connection.pk) in page
    response = client.post(url("connection-min-trust", tw.org, pk=connection.pk), {"min_trust": "45"})
    assert response.status_code == 302 and Connection.objects.get(pk=connection.pk).min_trust == 45
    assert latest_event(tw.org, "connection.updated")
    for bad in ("101", "-1", "many", ""):
        refused = client.post(url("connection-min-trust", tw.org, pk=connection.pk), {"min_trust": bad})
        assert refused.status_code == 400 and Connection.objects.get(pk=connection.pk).min_trust == 45
    viewer = as_user(MemberFactory(org=tw.org, role="viewer").user)
    assert (
        viewer.post(url("connection-min-trust", tw.org, pk=connection.pk), {"min_trust": "0"}).status_code
        == 403
    )
    assert Connection.objects.get(pk=connection.pk).min_trust == 45


def test_posts_without_a_csrf_token_change_nothing(tw):
    client = owner_client(tw)
    client.handler.enforce_csrf_checks = True
    assert client.post(url("trust", tw.org), POLICY).status_code == 403
    assert (
        client.post(
            url("gate-add", tw.org), {"name": "g", "operation": "deploy", "min_score": "1", "below": "block"}
        ).status_code
        == 403
    )
    assert policy_row(tw.org) is None and gates(tw.org) == []


def test_deleting_a_gate_says_what_still_applies_to_its_operation(tw):
    client = owner_client(tw)
    for name, score in (("deploys", 70), ("prod deploys", 85)):
        client.post(url("gate-add", tw.org), {"name": name, "operation": "deploy", "min_score": str(score),
                                               "below": "escalate"})
    client.post(url("gate-add", tw.org), {"name": "reads", "operation": "read", "min_score": "10",
                                           "below": "block"})
    gate = TrustGate.objects.for_org(tw.org).get(name="deploys")
    page = re.sub(r"\s+", " ", client.post(url("gate-delete", tw.org, pk=gate.pk)).content.decode())
    assert "no longer need a trust score of 70 (below it they are escalated to a person today)" in page
    assert "and 1 other gate on this operation: prod deploys (85)." in page and "reads (10)" not in page
    assert "0 runs of this operation already waiting for approval stay in the queue" in page
    assert len(gates(tw.org)) == 3
