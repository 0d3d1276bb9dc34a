"""A real OpenID Provider on loopback for the OIDC tests: tests/peers/oidc/server.mjs (panva's
oidc-provider) run by node, one process for the whole session on a free port.

Without node or tests/peers/oidc/node_modules the tests that use it skip, naming what is missing,
unless IAM_REQUIRE_SERVICES=1 (CI), where they fail instead. Install the packages with
`npm ci --prefix tests/peers/oidc`.

The fixture generates the OP's signing key, so a test can also sign tokens the OP never issued
(`peer.sign`) with the key its JWKS publishes. Each test registers its own client (dynamic client
registration) with the redirect URI of the connection it builds. `peer.login` drives the OP's
sign-in form with plain HTTP and returns the URL the OP sends the browser back to.
"""

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

PEER_DIR = Path(__file__).resolve().parent.parent / "peers" / "oidc"
LOOPBACK = ["127.0.0.0/8"]
START_SECONDS = 20

ACCOUNTS = [
    {"sub": "alice-0001", "email": "alice@acme.example", "email_verified": True, "name": "Alice Doe",
     "groups": ["engineering"], "amr": ["pwd"]},
    {"sub": "bob-0002", "email": "bob@acme.example", "email_verified": False, "name": "Bob Roe",
     "groups": [], "amr": ["pwd"]},
    {"sub": "carol-0003", "email": "carol@acme.example", "email_verified": True, "name": "Carol Poe",
     "groups": ["engineering", "admins"], "amr": ["pwd", "otp"]},
]


def peer_unavailable_reason() -> str | None:
    if not shutil.which("node"):
        return "node is missing (apt-get install nodejs npm)"
    if not (PEER_DIR / "node_modules" / "oidc-provider").is_dir():
        return f"{PEER_DIR}/node_modules is missing (npm ci --prefix {PEER_DIR})"
    return None


def _skip_or_fail(reason: str):
    if os.environ.get("IAM_REQUIRE_SERVICES") == "1":
        pytest.fail(f"IAM_REQUIRE_SERVICES=1 but the OpenID Provider peer cannot run: {reason}")
    pytest.skip(f"the OpenID Provider peer cannot run: {reason}; set IAM_REQUIRE_SERVICES=1 to fail instead")


class OidcPeer:
    def __init__(self, issuer: str, admin_token: str, initial_access_token: str, private_key, kid: str):
        self.issuer = issuer
        self.admin_token = admin_token
        self.initial_access_token = initial_access_token
        self.private_key = private_key
        self.kid = kid

    # --- what a test sets up -------------------------------------------------------------

    def _admin(self, method: str, path: str, body: dict | None = None):
        response = requests.request(method, self.issuer + path, json=body, timeout=5,
                                    headers={"Authorization": f"Bearer {self.admin_token}"})
        response.raise_for_status()
        return response.json()

    def register(self, redirect_uri: str, *, backchannel_logout_uri: str = "",
                 auth_method: str = "client_secret_basic") -> tuple[str, str]:
        """A new client at the OP (RFC 7591). Returns (client_id, client_secret)."""
        metadata = {"redirect_uris": [redirect_uri], "token_endpoint_auth_method": auth_method,
                    "response_types": ["code"], "grant_types": ["authorization_code"]}
        if backchannel_logout_uri:
            metadata.update(backchannel_logout_uri=backchannel_logout_uri,
                            backchannel_logout_session_required=True)
        response = requests.post(self.issuer + "/reg", json=metadata, timeout=5,
                                 headers={"Authorization": f"Bearer {self.initial_access_token}"})
        assert response.status_code == 201, response.text
        body = response.json()
        return body["client_id"], body["client_secret"]

    def account(self, sub: str, **claims) -> dict:
        return self._admin("POST", "/_peer/accounts", {"sub": sub, **claims})

    def sessions(self, sub: str) -> list:
        return self._admin("GET", f"/_peer/sessions?sub={sub}")

    def logout_token(self, client_id: str, sub: str, sid: str = "") -> str:
        """A logout token made by the OP's own code and keys, returned instead of sent."""
        return self._admin("POST", "/_peer/backchannel-logout",
                           {"client_id": client_id, "sub": sub, "sid": sid or None})["logout_token"]

    def logout_deliver(self, client_id: str, sub: str, sid: str = "") -> dict:
        """The OP posts a logout token to the client's backchannel_logout_uri itself."""
        response = requests.post(self.issuer + "/_peer/backchannel-logout", timeout=10,
                                 json={"client_id": client_id, "sub": sub, "sid": sid or None,
                                       "deliver": True},
                                 headers={"Authorization": f"Bearer {self.admin_token}"})
        return response.json()

    def next_id_token(self, id_token: str) -> None:
        """The next token response carries this ID token instead of the one the OP issued."""
        self._admin("POST", "/_peer/next-id-token", {"id_token": id_token})

    def last_id_token(self) -> str:
        return self._admin("GET", "/_peer/last-token-response")["id_token"]

    def sign(self, claims: dict, *, headers: dict | None = None, key=None, algorithm: str = "RS256") -> str:
        """A JWT signed with the OP's own key (or `key`), for tokens the OP would never issue."""
        fields = {"kid": self.kid, **(headers or {})}
        return jwt.encode(claims, key if key is not None else self.private_key, algorithm=algorithm,
                          headers=fields)

    def claims(self, client_id: str, nonce: str, **extra) -> dict:
        """ID token claims as the OP would issue them to `client_id`."""
        now = int(time.time())
        base = {"iss": self.issuer, "sub": "alice-0001", "aud": client_id, "iat": now, "exp": now + 300,
                "nonce": nonce}
        base.update(extra)
        return {name: value for name, value in base.items() if value is not None}

    # --- the person at the OP --------------------------------------------------------------

    def login(self, authorize_url: str, account: str = "alice-0001", *, amr: str = "", acr: str = "",
              cancel: bool = False, session: requests.Session | None = None) -> str:
        """Follow our login's redirect to the OP, sign in there as `account` (authenticated with
        `amr`, space-separated) and return the URL the OP sends the browser back to (the callback
        with code, state and iss, or with an error)."""
        browser = session or requests.Session()
        url = authorize_url
        submitted = False
        for _hop in range(12):
            if not url.startswith(self.issuer):
                return url  # back at the relying party
            response = browser.get(url, allow_redirects=False, timeout=5)
            if response.status_code in (302, 303):
                url = urljoin(url, response.headers["Location"])
                continue
            path = urlsplit(url).path
            if response.status_code != 200 or not path.startswith("/interaction/") or submitted:
                raise AssertionError(f"the OP answered {response.status_code} at {path}: "
                                     f"{response.text[:300]}")
            action = "abort" if cancel else "login"
            response = browser.post(f"{self.issuer}{path}/{action}", allow_redirects=False, timeout=5,
                                    data={"account": account, "amr": amr, "acr": acr})
            assert response.status_code in (302, 303), response.text[:300]
            url = urljoin(url, response.headers["Location"])
            submitted = True
        raise AssertionError("the OP kept redirecting")


def _private_jwk(private_key, kid: str) -> dict:
    jwk = json.loads(RSAAlgorithm.to_jwk(private_key))
    return {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}


# One OP for the whole run, although each test module that binds the fixture gets a fixture
# definition of its own (and pytest would start one process for each).
_RUNNING: dict = {}


@pytest.fixture(scope="session")
def oidc_peer_process(tmp_path_factory, pytestconfig):
    if "peer" not in _RUNNING:
        if "reason" not in _RUNNING:
            _RUNNING["reason"] = peer_unavailable_reason() or ""
            if not _RUNNING["reason"]:
                try:
                    _RUNNING["peer"] = _start(tmp_path_factory.mktemp("oidc-peer"))
                except PeerUnavailable as exc:
                    _RUNNING["reason"] = str(exc)
                else:
                    pytestconfig.add_cleanup(_stop)
        if _RUNNING["reason"]:
            _skip_or_fail(_RUNNING["reason"])
    return _RUNNING["peer"]


class PeerUnavailable(Exception):
    pass


def _start(folder: Path) -> OidcPeer:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = uuid.uuid4().hex
    admin_token, initial = uuid.uuid4().hex, uuid.uuid4().hex
    config = {"admin_token": admin_token, "initial_access_token": initial,
              "signing_keys": [_private_jwk(private_key, kid)], "cookie_keys": [uuid.uuid4().hex],
              "accounts": ACCOUNTS, "acr_values": ["urn:acme:mfa", "urn:acme:pwd"]}
    config_file = folder / "config.json"
    config_file.write_text(json.dumps(config))
    config_file.chmod(0o600)
    log = tempfile.TemporaryFile(dir=folder)
    process = subprocess.Popen(["node", str(PEER_DIR / "server.mjs")], cwd=PEER_DIR,
                               env={**os.environ, "OIDC_PEER_CONFIG_FILE": str(config_file)},
                               stdout=subprocess.PIPE, stderr=log, text=True)
    _RUNNING.update(process=process, log=log)
    try:
        issuer = _started(process, log)
    except PeerUnavailable:
        _stop()
        raise
    return OidcPeer(issuer, admin_token, initial, private_key, kid)


def _stop():
    process, log = _RUNNING.pop("process", None), _RUNNING.pop("log", None)
    if process is not None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if log is not None:
        log.close()
    _RUNNING.pop("peer", None)


def _started(process, log) -> str:
    line: list = []
    reader = threading.Thread(target=lambda: line.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(START_SECONDS)
    if not line or not line[0].strip():
        log.seek(0)
        raise PeerUnavailable(f"node {PEER_DIR / 'server.mjs'} did not start: {log.read().decode()[-2000:]}")
    issuer = json.loads(line[0])["issuer"]
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        try:
            if requests.get(issuer + "/.well-known/openid-configuration", timeout=2).status_code == 200:
                return issuer
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise PeerUnavailable(f"the OpenID Provider at {issuer} did not answer discovery")


@pytest.fixture
def oidc_peer(oidc_peer_process, settings):
    """The OP, with the outbound guard letting loopback through for this test."""
    settings.IAM_OUTBOUND_ALLOW_NETWORKS = LOOPBACK
    yield oidc_peer_process
    oidc_peer_process.next_id_token("")  # a swap the test set up and never used ends with it


def oidc_connection(org, peer: OidcPeer, *, slug: str = "acme-idp", auth_method: str = "client_secret_basic",
                    backchannel_logout_uri: str | None = None, **fields):
    """A saved OIDC connection of `org` to the peer, with a client registered there for it and the
    provider's metadata and keys fetched through the outbound guard (as the connection API does)."""
    from django.conf import settings
    from django.urls import reverse

    from sso import oidc
    from sso.models import Connection

    connection = Connection(org=org, name=fields.pop("name", "Acme IdP"), slug=slug, protocol="oidc",
                            issuer=peer.issuer, **fields)
    if backchannel_logout_uri is None:
        backchannel_logout_uri = settings.IAM_CANONICAL_ORIGIN.rstrip("/") + reverse(
            "sso:oidc-backchannel-logout", kwargs={"org": org.slug, "connection": slug})
    connection.client_id, secret = peer.register(oidc.redirect_uri(connection), auth_method=auth_method,
                                                 backchannel_logout_uri=backchannel_logout_uri)
    connection.seal("client_secret", secret)
    connection.provider_metadata = oidc.provider_discover(peer.issuer)
    connection.jwks = oidc.jwks_fetch(connection.provider_metadata["jwks_uri"])
    connection.save()
    return connection
