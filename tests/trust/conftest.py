"""An org with a connection and an agent (tests.agents.conftest.build_world), an admin API client
holding every permission, and trust roots whose keys sign attestations with joserfc, a JOSE
library independent of the one the server verifies with."""

import base64
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from rest_framework.test import APIClient

from core.permissions import Perm
from tests.agents.conftest import World, build_world
from tests.factories import api_key_for


@dataclass
class SigningRoot:
    """A party's key pair: the public half is registered, the private half signs."""

    kid: str
    key: ECKey = field(init=False)

    def __post_init__(self):
        self.key = ECKey.generate_key("P-256", parameters={"kid": self.kid})

    @property
    def jwks(self) -> dict:
        return {"keys": [self.key.as_dict(private=False)]}

    def sign(self, claims: dict, **header) -> str:
        return jwt.encode({"alg": "ES256", "kid": self.kid, **header}, claims, self.key)


def claims_for(agent, *, type="security_review", weight=20, ttl=3600, iat=None, **extra) -> dict:
    issued = int(time.time()) if iat is None else iat
    return {"sub": f"agent:{agent.pk}", "type": type, "weight": weight, "iat": issued, "exp": issued + ttl,
            **extra}


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def unsigned(claims: dict, **header) -> str:
    """A JWS with `alg: none` and no signature (RFC 7515 §A.5's unsecured form)."""
    return f"{b64({'alg': 'none', **header})}.{b64(claims)}."


@dataclass
class TrustWorld:
    world: World
    api: APIClient

    @property
    def org(self):
        return self.world.org

    @property
    def agent(self):
        return self.world.agent

    def url(self, path: str) -> str:
        return f"/api/v1/orgs/{self.org.slug}/{path}"

    def register(self, root: SigningRoot, name: str | None = None) -> dict:
        response = self.api.post(self.url("trust-roots"), {"name": name or root.kid, "jwks": root.jwks},
                                 format="json")
        assert response.status_code == 201, response.content
        return response.json()

    def attest(self, compact: str, agent=None, **body):
        agent = agent or self.agent
        return self.api.post(self.url(f"agents/{agent.pk}/attestations"), {"attestation": compact, **body},
                             format="json")

    def trust(self, agent=None, **headers) -> dict:
        response = self.api.get(self.url(f"agents/{(agent or self.agent).pk}/trust"), **headers)
        assert response.status_code == 200, response.content
        return response.json()

    def score(self, agent=None) -> int:
        return self.trust(agent)["score"]

    def policy(self, **changes) -> dict:
        response = self.api.patch(self.url("trust-policy"), changes, format="json")
        assert response.status_code == 200, response.content
        return response.json()


def admin_client(org) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(org, list(Perm))[1]}")
    return client


def trust_world(org=None) -> TrustWorld:
    world = build_world(org)
    return TrustWorld(world, admin_client(world.org))


def start() -> datetime:
    # Frozen time begins just after the world was built, so rows keep their real order.
    return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)


@pytest.fixture
def tw(db) -> TrustWorld:
    return trust_world()


@pytest.fixture
def root() -> SigningRoot:
    return SigningRoot("review-board-1")
