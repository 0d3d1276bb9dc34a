"""The permission matrix for every admin API resource: anonymous 401, missing permission 403,
another org's URL or object 404, allowed 2xx. Each refused call also changes nothing."""


import time
from datetime import timedelta

import pytest
from django.utils import timezone
from joserfc import jwt
from joserfc.jwk import ECKey

from accounts.models import ApiKey, Membership
from agents.models import Agent, AgentSecret, Connection, Delegation, Run
from audit.actors import Actor
from audit.events import AuditEvent
from audit.models import AuditEntry
from audit.services import audit_record
from core.permissions import Perm
from core.tenancy import org_scope
from rbac.models import Role, Team
from scim.models import GroupMapping, ScimToken
from sso.models import Connection as SsoConnection
from sso.models import Domain
from tests.factories import (
    AgentFactory,
    ConnectionFactory,
    GroupMappingFactory,
    MemberFactory,
    OrgFactory,
    RoleFactory,
    RunFactory,
    ScimGroupFactory,
    ScimTokenFactory,
    TeamFactory,
    api_key_for,
    sign_in,
)
from trust.models import Approval, Attestation, ScoreSample, TrustGate, TrustPolicy, TrustRoot

pytestmark = pytest.mark.django_db


def _objects(org):
    """One object of each kind in `org`, keyed by the name used in the cases below."""
    member = MemberFactory(org=org)
    MemberFactory(org=org, role="owner")
    entry = audit_record(org=org, actor=Actor.system(), event=AuditEvent.ORG_UPDATED)
    connection = ConnectionFactory(org=org, name="tickets", audience=AUDIENCE, scopes=["t:read"])
    agent = AgentFactory(org=org, name="bot", scopes=["t:read"], audiences=[AUDIENCE], owners=[member])
    scim_group = ScimGroupFactory(org=org, display_name="Engineering")
    delegation = Delegation.objects.create(
        org=org, agent=agent, user=member.user, membership=member, person_email=member.user.email,
        audience=AUDIENCE, scopes=["t:read"], expires_at=timezone.now() + timedelta(hours=1))
    key = ECKey.generate_key("P-256", parameters={"kid": "board-1"})
    trust_root = TrustRoot.objects.create(org=org, name="board", jwks={"keys": [key.as_dict(private=False)]})
    now = int(time.time())
    statement = jwt.encode({"alg": "ES256", "kid": "board-1"}, {
        "sub": f"agent:{agent.pk}", "type": "review", "weight": 10, "iat": now, "exp": now + 3600}, key)
    pending = RunFactory(agent=agent, status="pending_approval", operation="deploy",
                         pending_until=timezone.now() + timedelta(hours=1))
    approval = Approval.objects.create(org=org, run=pending, agent=agent, operation="deploy", score=50,
                                       level="standard", expires_at=pending.pending_until)
    return {
        "approval": approval.pk,
        "trust_gate": TrustGate.objects.create(org=org, name="deploys", operation="deploy", min_score=60).pk,
        "domain": Domain.objects.create(org=org, domain="example.com").pk,
        "sso_connection": SsoConnection.objects.create(org=org, name="Okta", slug="okta", protocol="oidc",
                                                       issuer="https://idp.example.com").pk,
        "trust_root": trust_root.pk,
        "attestation": statement,
        "delegation": delegation.pk,
        "agent": agent.pk,
        "connection": connection.pk,
        "run": RunFactory(agent=agent).pk,
        "member": member.pk,
        "team": TeamFactory(org=org).pk,
        "role": RoleFactory(org=org, permissions=["agent:read"]).pk,
        "api_key": api_key_for(org, [Perm.MEMBER_READ])[0].pk,
        "audit": entry.pk,
        "scim_token": ScimTokenFactory(org=org).pk,
        "scim_group": scim_group.pk,
        "scim_mapping": GroupMappingFactory(group=scim_group, builtin_role="viewer").pk,
    }


AUDIENCE = "https://tickets.example/api"
CI_PUBLIC_KEY = {"kty": "EC", "crv": "P-256", "kid": "ci-1",
                 "x": "FsK9f77tcrQ1ColTF5ecyBDzulh282Jsb_Rsw87wZF4",
                 "y": "NabCmml6PUY8pmZjN9zblE_4DZpnVtTUQvJrpRaiTRE"}


def _state(org) -> dict:
    """Everything a call to this API could change in `org`: a refused call must leave it equal."""
    with org_scope(org):
        return {
            "members": sorted(Membership.objects.values_list("pk", "role", "status")),
            "custom roles": sorted(Role.objects.values_list("pk", "name", "description", "permissions")),
            "teams": sorted(Team.objects.values_list("pk", "name", "description")),
            "api keys": sorted(ApiKey.objects.values_list("pk", "name", "revoked_at")),
            "agents": sorted((a.pk, a.status, a.scopes, a.audiences, sorted(a.owners.values_list("pk",
                                                                                                 flat=True)))
                             for a in Agent.objects.all()),
            "agent secrets": sorted(AgentSecret.objects.values_list("pk", "expires_at", "revoked_at")),
            "connections": sorted(Connection.objects.values_list("pk", "name", "scopes")),
            "runs": sorted(Run.objects.values_list("pk", "status")),
            "scim tokens": sorted(ScimToken.objects.values_list("pk", "expires_at", "revoked_at")),
            "scim mappings": sorted(GroupMapping.objects.values_list("pk", "kind", "builtin_role")),
            "delegations": sorted(Delegation.objects.values_list("pk", "status", "revoked_at")),
            "agent trust inputs": sorted(Agent.objects.values_list("pk", "approved_versions", "networks")),
            "trust roots": sorted(TrustRoot.objects.values_list("pk", "name")),
            "attestations": sorted(Attestation.objects.values_list("pk", "weight")),
            "trust policy": sorted(TrustPolicy.objects.values_list("org_floor", "weight_identity")),
            "score samples": ScoreSample.objects.count(),
            "trust gates": sorted(TrustGate.objects.values_list("pk", "name", "min_score", "below")),
            "approvals": sorted(Approval.objects.values_list("pk", "status")),
            "domains": sorted(Domain.objects.values_list("pk", "domain", "verified_at")),
            "sso connections": sorted(SsoConnection.objects.values_list("pk", "name", "jit", "enabled")),
        }

# (method, path, permission, body, allowed status, the model a successful call adds to or removes from)
CASES = [
    ("get", "members", Perm.MEMBER_READ, None, 200, None),
    ("get", "members/{member}", Perm.MEMBER_READ, None, 200, None),
    ("post", "members", Perm.MEMBER_WRITE, {"email": "new@example.com", "role": "viewer"}, 201, Membership),
    ("patch", "members/{member}", Perm.MEMBER_WRITE, {"role": "viewer"}, 200, None),
    ("delete", "members/{member}", Perm.MEMBER_WRITE, None, 204, Membership),
    ("get", "teams", Perm.TEAM_READ, None, 200, None),
    ("get", "teams/{team}", Perm.TEAM_READ, None, 200, None),
    ("post", "teams", Perm.TEAM_WRITE, {"name": "Ops"}, 201, Team),
    ("get", "roles", Perm.ROLE_READ, None, 200, None),
    ("get", "roles/builtin", Perm.ROLE_READ, None, 200, None),
    ("get", "roles/{role}", Perm.ROLE_READ, None, 200, None),
    ("post", "roles", Perm.ROLE_WRITE, {"name": "Ops", "permissions": ["agent:read"]}, 201, Role),
    ("patch", "roles/{role}", Perm.ROLE_WRITE, {"description": "x"}, 200, None),
    ("delete", "roles/{role}", Perm.ROLE_WRITE, None, 204, Role),
    ("get", "permissions", Perm.ROLE_READ, None, 200, None),
    ("get", "api-keys", Perm.API_KEY_READ, None, 200, None),
    ("get", "api-keys/{api_key}", Perm.API_KEY_READ, None, 200, None),
    ("post", "api-keys", Perm.API_KEY_WRITE, {"name": "ci", "permissions": ["member:read"]}, 201, ApiKey),
    ("delete", "api-keys/{api_key}", Perm.API_KEY_WRITE, None, 204, None),
    ("get", "audit/events", Perm.AUDIT_READ, None, 200, None),
    ("get", "audit/events/{audit}", Perm.AUDIT_READ, None, 200, None),
    ("get", "audit/verify", Perm.AUDIT_READ, None, 200, None),
    ("get", "exports/access-review.csv", Perm.ACCESS_REVIEW_EXPORT, None, 200, None),
    ("get", "agents", Perm.AGENT_READ, None, 200, None),
    ("get", "agents/{agent}", Perm.AGENT_READ, None, 200, None),
    ("post", "agents", Perm.AGENT_WRITE,
     {"name": "new bot", "scopes": ["t:read"], "audiences": [AUDIENCE], "owner": "{member}"}, 201, Agent),
    ("patch", "agents/{agent}", Perm.AGENT_WRITE, {"scopes": []}, 200, None),
    ("post", "agents/{agent}/rotate-secret", Perm.AGENT_CREDENTIALS, {"overlap_seconds": 60}, 200, None),
    ("post", "agents/{agent}/suspend", Perm.AGENT_WRITE, None, 200, None),
    ("post", "agents/{agent}/revoke", Perm.AGENT_WRITE, None, 200, None),
    ("get", "connections", Perm.CONNECTION_READ, None, 200, None),
    ("get", "connections/{connection}", Perm.CONNECTION_READ, None, 200, None),
    ("post", "connections", Perm.CONNECTION_WRITE,
     {"name": "crm", "audience": "https://crm.example/api", "scopes": ["crm:read"]}, 201, Connection),
    ("get", "runs", Perm.RUN_READ, None, 200, None),
    ("get", "runs/{run}", Perm.RUN_READ, None, 200, None),
    ("post", "runs", Perm.RUN_WRITE, {"agent": "{agent}", "description": "x"}, 201, Run),
    ("post", "runs/{run}/terminate", Perm.RUN_WRITE, None, 200, None),
    ("get", "delegations", Perm.AGENT_READ, None, 200, None),
    ("get", "delegations/{delegation}", Perm.AGENT_READ, None, 200, None),
    ("post", "delegations/{delegation}/revoke", Perm.ORG_READ, None, 200, None),
    ("get", "scim-tokens", Perm.SCIM_READ, None, 200, None),
    ("get", "scim-tokens/{scim_token}", Perm.SCIM_READ, None, 200, None),
    ("post", "scim-tokens", Perm.SCIM_WRITE, {"name": "Entra"}, 201, ScimToken),
    ("post", "scim-tokens/{scim_token}/revoke", Perm.SCIM_WRITE, {"grace_seconds": 60}, 200, None),
    ("get", "scim-groups", Perm.SCIM_READ, None, 200, None),
    ("get", "scim-groups/{scim_group}", Perm.SCIM_READ, None, 200, None),
    ("get", "scim-mappings", Perm.SCIM_READ, None, 200, None),
    ("get", "scim-mappings/{scim_mapping}", Perm.SCIM_READ, None, 200, None),
    ("post", "scim-mappings", Perm.SCIM_WRITE,
     {"group": "{scim_group}", "kind": "builtin_role", "builtin_role": "member"}, 201, GroupMapping),
    ("delete", "scim-mappings/{scim_mapping}", Perm.SCIM_WRITE, None, 204, GroupMapping),
    ("patch", "agents/{agent}", Perm.AGENT_WRITE, {"approved_versions": ["1.0"], "networks": ["10.0.0.0/8"]},
     200, None),
    ("get", "trust-roots", Perm.TRUST_READ, None, 200, None),
    ("get", "trust-roots/{trust_root}", Perm.TRUST_READ, None, 200, None),
    ("post", "trust-roots", Perm.TRUST_WRITE,
     {"name": "ci", "jwks": {"keys": [CI_PUBLIC_KEY]}}, 201, TrustRoot),
    ("delete", "trust-roots/{trust_root}", Perm.TRUST_WRITE, None, 204, TrustRoot),
    ("get", "agents/{agent}/attestations", Perm.TRUST_READ, None, 200, None),
    ("post", "agents/{agent}/attestations", Perm.TRUST_WRITE, {"attestation": "{attestation}"}, 201,
     Attestation),
    ("get", "agents/{agent}/trust", Perm.TRUST_READ, None, 200, None),
    ("get", "trust-policy", Perm.TRUST_READ, None, 200, None),
    ("patch", "trust-policy", Perm.TRUST_WRITE, {"org_floor": 30, "weights": {"identity": 10}}, 200, None),
    ("get", "trust-gates", Perm.TRUST_READ, None, 200, None),
    ("get", "trust-gates/{trust_gate}", Perm.TRUST_READ, None, 200, None),
    ("post", "trust-gates", Perm.TRUST_WRITE,
     {"name": "exports", "operation": "export", "min_score": 70, "below": "escalate"}, 201, TrustGate),
    ("patch", "trust-gates/{trust_gate}", Perm.TRUST_WRITE, {"min_score": 65}, 200, None),
    ("delete", "trust-gates/{trust_gate}", Perm.TRUST_WRITE, None, 204, TrustGate),
    ("get", "approvals", Perm.TRUST_READ, None, 200, None),
    ("get", "approvals/{approval}", Perm.TRUST_READ, None, 200, None),
    ("post", "approvals/{approval}/approve", Perm.TRUST_APPROVE, None, 200, None),
    ("post", "approvals/{approval}/deny", Perm.TRUST_APPROVE, None, 200, None),
    ("post", "runs/{run}/stop", Perm.RUN_WRITE, None, 200, None),
    ("post", "runs/{run}/complete", Perm.RUN_WRITE, None, 200, None),
    ("get", "domains", Perm.SSO_READ, None, 200, None),
    ("get", "domains/{domain}", Perm.SSO_READ, None, 200, None),
    ("post", "domains", Perm.SSO_WRITE, {"domain": "corp.example.org"}, 201, Domain),
    ("delete", "domains/{domain}", Perm.SSO_WRITE, None, 204, Domain),
    ("get", "sso-connections", Perm.SSO_READ, None, 200, None),
    ("get", "sso-connections/{sso_connection}", Perm.SSO_READ, None, 200, None),
    ("patch", "sso-connections/{sso_connection}", Perm.SSO_WRITE, {"jit": True}, 200, None),
    ("delete", "sso-connections/{sso_connection}", Perm.SSO_WRITE, None, 204, SsoConnection),
]
IDS = [f"{m} {p}" for m, p, *_ in CASES]


def _fill(value, objects):
    if isinstance(value, str):
        return value.format(**objects)
    if isinstance(value, list):
        return [_fill(v, objects) for v in value]
    return value


def _call(client, method, org, path, objects, body):
    url = f"/api/v1/orgs/{org.slug}/{path.format(**objects)}"
    body = {k: _fill(v, objects) for k, v in body.items()} if body else body
    return getattr(client, method)(url, body, format="json") if body else getattr(client, method)(url)


@pytest.mark.parametrize("method,path,perm,body,ok,model", CASES, ids=IDS)
def test_anonymous_gets_401(api, org, method, path, perm, body, ok, model):
    objects = _objects(org)
    response = _call(api, method, org, path, objects, body)
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("method,path,perm,body,ok,model", CASES, ids=IDS)
def test_missing_permission_gets_403_and_changes_nothing(key_client, org, method, path, perm, body, ok,
                                                         model):
    objects = _objects(org)
    client = key_client(*[p for p in Perm if p != perm])
    before = _state(org)
    response = _call(client, method, org, path, objects, body)
    assert response.status_code == 403
    assert response.json()["error"] == "permission_denied"
    assert _state(org) == before
    denial = AuditEntry.objects.for_org(org).filter(event_name="access.denied").latest("seq")
    assert denial.data["required"] == perm.value


@pytest.mark.parametrize("method,path,perm,body,ok,model", CASES, ids=IDS)
def test_key_of_another_org_gets_404(key_client, org, method, path, perm, body, ok, model):
    objects = _objects(org)
    other = OrgFactory()
    response = _call(key_client(*Perm, for_org=other), method, org, path, objects, body)
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "Not found."}


@pytest.mark.parametrize("method,path,perm,body,ok,model", [c for c in CASES if "{" in c[1]],
                         ids=[i for i, c in zip(IDS, CASES, strict=True) if "{" in c[1]])
def test_object_of_another_org_gets_404(key_client, org, method, path, perm, body, ok, model):
    other = OrgFactory()
    foreign = _objects(other)
    client = key_client(*Perm)
    before = _state(other), _state(org)
    response = _call(client, method, org, path, foreign, body)
    assert response.status_code == 404
    assert (_state(other), _state(org)) == before


@pytest.mark.parametrize("method,path,perm,body,ok,model", CASES, ids=IDS)
def test_allowed_gets_2xx(key_client, org, method, path, perm, body, ok, model):
    objects = _objects(org)
    response = _call(key_client(*Perm), method, org, path, objects, body)
    assert response.status_code == ok, response.content[:500]


def test_session_auth_works_and_requires_csrf(org, owner):
    from rest_framework.test import APIClient

    client = APIClient(enforce_csrf_checks=True)
    sign_in(client, owner.user)
    assert client.get(f"/api/v1/orgs/{org.slug}/members").status_code == 200
    response = client.post(f"/api/v1/orgs/{org.slug}/teams", {"name": "x"}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert not Team.objects.for_org(org).exists()


def test_member_of_another_org_gets_404_through_the_session(org):
    from rest_framework.test import APIClient

    stranger = MemberFactory(org=OrgFactory(), role="owner")
    client = APIClient()
    sign_in(client, stranger.user)
    assert client.get(f"/api/v1/orgs/{org.slug}/members").status_code == 404
    assert client.get("/api/v1/orgs/no-such-org/members").status_code == 404
