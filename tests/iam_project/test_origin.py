"""The development origin: where `make run` serves is what links, tokens, metadata and passkeys name.

`IAM_CANONICAL_ORIGIN` is read once at start-up (the host list and the passkey relying party are
derived from it), so those checks start a fresh interpreter; the consumers read the setting at call
time and are checked over HTTP in this process."""

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import mail
from django.test import TestCase

from agents import keys
from core.permissions import Perm
from tests.agents.conftest import AUDIENCE, build_world, post_form
from tests.factories import PASSWORD, OrgFactory, UserFactory, api_key_for

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "http://localhost:8300"
DERIVED = ("IAM_CANONICAL_ORIGIN", "IAM_WEBAUTHN_RP_ID", "IAM_WEBAUTHN_ORIGIN", "CSRF_TRUSTED_ORIGINS",
           "ALLOWED_HOSTS", "IAM_ORIGIN_ALIASES")


def _development_settings(**env_overrides) -> dict:
    """The derived settings of a development start (DEBUG on) under the given environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "IAM_"))}
    env.update(env_overrides)
    code = ("import json; from django.conf import settings as s; "
            f"print(json.dumps({{n: getattr(s, n) for n in {DERIVED!r}}}))")
    result = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_origin_names_the_relying_party_the_trusted_origin_and_an_allowed_host():
    derived = _development_settings(IAM_CANONICAL_ORIGIN=ORIGIN + "/")
    assert derived["IAM_CANONICAL_ORIGIN"] == ORIGIN
    assert derived["IAM_WEBAUTHN_RP_ID"] == "localhost" and derived["IAM_WEBAUTHN_ORIGIN"] == ORIGIN
    # The loopback twin is the same development server (the contract's http://127.0.0.1:PORT).
    assert derived["IAM_ORIGIN_ALIASES"] == ["http://127.0.0.1:8300"]
    assert derived["CSRF_TRUSTED_ORIGINS"] == [ORIGIN, "http://127.0.0.1:8300"]
    assert {"localhost", "127.0.0.1"} <= set(derived["ALLOWED_HOSTS"])
    named = _development_settings(IAM_CANONICAL_ORIGIN="http://iam.test:8300")
    assert named["IAM_WEBAUTHN_RP_ID"] == "iam.test" and "iam.test" in named["ALLOWED_HOSTS"]
    assert named["IAM_ORIGIN_ALIASES"] == []
    # Loopback stays reachable whatever the origin says (the contract's http://127.0.0.1:8000).
    assert {"127.0.0.1", "localhost", "[::1]"} <= set(named["ALLOWED_HOSTS"])


def test_make_run_derives_the_origin_from_where_it_serves():
    def dry_run(*args, **env):
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "IAM_"))}
        result = subprocess.run(["make", "--no-print-directory", "-n", "run", *args], cwd=ROOT,
                                env={**clean, **env}, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout

    manage = ".venv/bin/python manage.py"
    served = dry_run("HOST=127.0.0.1:8300")
    assert f"IAM_CANONICAL_ORIGIN=http://127.0.0.1:8300 {manage} seed_demo" in served
    assert f"IAM_CANONICAL_ORIGIN=http://127.0.0.1:8300 {manage} runserver 127.0.0.1:8300" in served
    assert "8000" not in served
    assert f"IAM_CANONICAL_ORIGIN=http://localhost:8000 {manage} runserver localhost:8000" in dry_run()
    # An origin set by hand (a proxy, another name) wins over the derived one.
    by_hand = dry_run(IAM_CANONICAL_ORIGIN="https://iam.example.test")
    assert f"IAM_CANONICAL_ORIGIN=https://iam.example.test {manage} runserver localhost:8000" in by_hand


@pytest.fixture
def origin(settings):
    settings.IAM_CANONICAL_ORIGIN = ORIGIN
    keys.caches_clear()
    yield ORIGIN
    keys.caches_clear()


def _claims(jwt: str) -> dict:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_issuer_metadata_and_tokens_use_the_origin(client, origin, db):
    world = build_world()
    metadata = client.get(f"/.well-known/oauth-authorization-server/oauth/{world.slug}").json()
    assert metadata["issuer"] == f"{origin}/oauth/{world.slug}"
    for name in ("token_endpoint", "jwks_uri", "introspection_endpoint", "revocation_endpoint"):
        assert metadata[name].startswith(f"{origin}/oauth/{world.slug}/")
    response = post_form(client, world.url("token"),
                         {"grant_type": "client_credentials", "scope": "tickets:read", "resource": AUDIENCE},
                         auth=(world.agent.client_id, world.agent_secret))
    assert response.status_code == 200, response.content
    assert _claims(response.json()["access_token"])["iss"] == metadata["issuer"]


def test_scim_base_url_uses_the_origin(client, origin, db):
    org = OrgFactory()
    _, secret = api_key_for(org, list(Perm))
    response = client.post(f"/api/v1/orgs/{org.slug}/scim-tokens", {"name": "Okta"},
                           content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 201, response.content
    assert response.json()["scim_base_url"] == f"{origin}/scim/v2/"


def test_reset_links_use_the_origin(client, origin, db):
    user = UserFactory(password=PASSWORD)
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert client.post("/password/reset/", {"email": user.email}).status_code == 200
    (link,) = re.findall(r"https?://\S+/password/reset/\S+/", mail.outbox[-1].body)
    assert link.startswith(f"{origin}/password/reset/")
