"""Production mode refuses to start without its secrets, and passes `check --deploy` when given them."""

import base64
import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROD = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "IAM_HMAC_KEYS": "k1:" + base64.urlsafe_b64encode(b"k" * 32).decode(),
    "IAM_ENCRYPTION_KEYS": "e1:" + base64.urlsafe_b64encode(b"e" * 32).decode(),
    "DJANGO_ALLOWED_HOSTS": "iam.example.com",
}


def _manage(*args, **env_overrides):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "IAM_"))}
    env.update(PROD)
    for key, value in env_overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_missing_secret_key_stops_start_up_with_a_clear_message():
    result = _manage("check", DJANGO_SECRET_KEY=None)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


def test_missing_allowed_hosts_stops_start_up():
    result = _manage("check", DJANGO_ALLOWED_HOSTS=None)
    assert result.returncode != 0
    assert "DJANGO_ALLOWED_HOSTS is not set" in result.stderr


def test_missing_hmac_keys_stops_start_up():
    result = _manage("check", IAM_HMAC_KEYS=None)
    assert result.returncode != 0
    assert "IAM_HMAC_KEYS is not set" in result.stderr


def test_check_deploy_is_clean_in_production_mode():
    result = _manage("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_unknown_api_routes_answer_json_in_the_contract_shape(client, db):
    response = client.get("/api/v1/orgs/acme/no-such-resource")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "Not found."}
    page = client.get("/no-such-page/")
    assert page.status_code == 404 and b"Not found" in page.content


def test_an_unexpected_error_in_the_api_shows_no_internals(key_client, org, monkeypatch):
    from core.permissions import Perm
    from rbac import policies

    def broken(**kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(policies, "api_key_create", broken)
    response = key_client(*Perm).post(f"/api/v1/orgs/{org.slug}/api-keys",
                                      {"name": "x", "permissions": ["member:read"]}, format="json")
    assert response.status_code == 500
    assert response.json() == {"error": "server_error",
                               "detail": "The server could not complete the request."}
