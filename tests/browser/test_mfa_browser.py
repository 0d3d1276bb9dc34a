"""Second factors through a real browser: an authenticator app, and passkeys on Chromium's virtual
authenticator (driven over CDP). WebAuthn needs a secure context: http://localhost is one,
http://127.0.0.1 is not, so pages are opened on the live server's localhost URL."""

import itertools
import os
import re
import shlex
import socket
import subprocess
import time
from base64 import b32decode
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django_otp.oath import TOTP

from accounts.models import WebAuthnCredential
from audit.models import AuditEntry
from tests.factories import PASSWORD, MemberFactory, OrgFactory, UserFactory

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def member(db):
    user = UserFactory(password=PASSWORD)
    return MemberFactory(org=OrgFactory(name="Acme Robotics"), role="owner", user=user)


@pytest.fixture
def base(live_server, settings):
    url = live_server.url.replace("127.0.0.1", "localhost")
    assert urlparse(url).hostname == "localhost"
    settings.IAM_WEBAUTHN_RP_ID = "localhost"
    settings.IAM_WEBAUTHN_ORIGIN = url
    settings.CSRF_TRUSTED_ORIGINS = [url]
    settings.ALLOWED_HOSTS = ["localhost"]
    return url


def home_url(base, member):
    """Where a completed sign-in lands: the org's overview."""
    return f"{base}/orgs/{member.org.slug}/"


def password_step(page, base, email):
    page.goto(base + "/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def log_out(page):
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login/$"))


def code_for(secret: str, *, not_equal_to: str = "") -> str:
    totp = TOTP(b32decode(secret.replace(" ", "")))
    code = f"{totp.token():06d}"
    while code == not_equal_to:  # the step used at enrollment is refused as a replay: wait it out
        time.sleep(1)
        totp.time = time.time()
        code = f"{totp.token():06d}"
    return code


def test_enroll_an_authenticator_app_then_sign_in_with_it(page, base, member):
    password_step(page, base, member.user.email)
    page.goto(base + "/account/security/")
    page.get_by_role("link", name="Set up an authenticator app").click()
    expect(page.locator("figure.qr svg")).to_be_visible()
    secret = page.get_by_test_id("totp-secret").inner_text()
    enrolled_with = code_for(secret)
    page.get_by_label("Code from the app").fill(enrolled_with)
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_role("heading", name="Recovery codes")).to_be_visible()
    page.get_by_role("button", name="Generate recovery codes").click()
    expect(page.get_by_test_id("recovery-codes").locator("li")).to_have_count(10)
    log_out(page)

    password_step(page, base, member.user.email)
    expect(page.get_by_role("heading", name="Two-step verification")).to_be_visible()
    page.get_by_label("Code").fill(code_for(secret, not_equal_to=enrolled_with))
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(home_url(base, member))


def virtual_authenticator(page) -> tuple:
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True}})
    return cdp, added["authenticatorId"]


def register_passkey(page, base, member):
    password_step(page, base, member.user.email)
    expect(page).to_have_url(home_url(base, member))
    page.goto(base + "/account/mfa/passkey/")
    page.get_by_label("Name").fill("Virtual key")
    page.get_by_role("button", name="Create passkey").click()
    expect(page.get_by_role("heading", name="Recovery codes")).to_be_visible()
    log_out(page)


def test_register_a_passkey_then_sign_in_with_it(page, base, member):
    cdp, authenticator = virtual_authenticator(page)
    register_passkey(page, base, member)
    device = WebAuthnCredential.objects.get(user=member.user)
    assert device.name == "Virtual key" and device.confirmed

    password_step(page, base, member.user.email)
    page.get_by_role("button", name="Use a passkey").click()
    expect(page).to_have_url(home_url(base, member))
    device.refresh_from_db()
    assert device.last_used_at is not None
    login = AuditEntry.objects.for_org(None).filter(event_name="login.success").order_by("-seq").first()
    assert login.data == {"method": "password+webauthn"}
    cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": authenticator})


def test_a_passkey_without_user_verification_is_refused(page, base, member):
    cdp, authenticator = virtual_authenticator(page)
    register_passkey(page, base, member)
    cdp.send("WebAuthn.setUserVerified", {"authenticatorId": authenticator, "isUserVerified": False})

    password_step(page, base, member.user.email)
    page.get_by_role("button", name="Use a passkey").click()
    expect(page.get_by_role("status").last).to_contain_text(re.compile("could not be verified|cancelled"))
    expect(page).to_have_url(re.compile(r"/login/mfa/"))
    response = page.request.get(home_url(base, member), max_redirects=0)
    assert response.status == 302 and "/login/" in response.headers["location"]
    # Chromium refuses on the device (UV required but failed) and the page reports it.
    failure = AuditEntry.objects.for_org(None).filter(event_name="mfa.failure").get()
    assert failure.data == {"method": "webauthn", "reason": "client_NotAllowedError"}
    logins = AuditEntry.objects.for_org(None).filter(event_name="login.success")
    assert not logins.filter(data__method="password+webauthn").exists()


# --- the quick start's printed origin --------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _make_run_steps(env: dict, port: int) -> list[tuple[dict, list[str]]]:
    """What `make run` would run with its default HOST (per `make -n`), moved to `port`: each step's
    environment assignments and its command."""
    # --no-print-directory: under a parent make (make test) "Entering directory" lines would join in.
    listed = subprocess.run(["make", "--no-print-directory", "-n", "run"], cwd=ROOT, env=env, check=True,
                            capture_output=True, text=True, timeout=60).stdout
    steps = []
    for line in listed.replace(":8000", f":{port}").splitlines():
        words = shlex.split(line)
        assigned = dict(w.split("=", 1) for w in itertools.takewhile(lambda w: "=" in w, words))
        steps.append((assigned, words[len(assigned):]))
    return steps


@pytest.fixture
def quick_start(tmp_path):
    """The server exactly as `make run` starts it (its default HOST, another port), on a fresh
    database: yields seed_demo's printout once the server answers."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DJANGO_", "IAM_")) and k not in ("REDIS_URL", "CELERY_BROKER_URL")}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    *setup, (serve_env, serve) = _make_run_steps(env, port)
    assert serve[-2] == "runserver"
    printed = ""
    for assigned, command in setup:
        printed += subprocess.run(command, cwd=ROOT, env={**env, **assigned}, check=True, capture_output=True,
                                  text=True, timeout=300).stdout
    # Without the autoreloader: one process to stop, and no restart when a source file changes.
    server = subprocess.Popen([*serve, "--noreload"], cwd=ROOT, env={**env, **serve_env},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline and server.poll() is None, "the server did not start"
                time.sleep(0.2)
        yield printed
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_passkey_registers_and_signs_in_on_the_origin_the_quick_start_prints(page, quick_start):
    login_url = re.search(r"Sign in at (\S+)", quick_start).group(1)
    email = re.search(r"email:\s+(\S+)", quick_start).group(1)
    password = re.search(r"password:\s+(\S+)", quick_start).group(1)
    origin = login_url.removesuffix("/login/")
    assert urlparse(login_url).hostname == "localhost"  # an IP address cannot be a WebAuthn RP ID
    cdp, authenticator = virtual_authenticator(page)

    def sign_in_with_password():
        page.goto(login_url)
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()

    sign_in_with_password()
    expect(page).to_have_url(f"{origin}/orgs/demo/")
    page.goto(origin + "/account/mfa/passkey/")
    page.get_by_label("Name").fill("Virtual key")
    page.get_by_role("button", name="Create passkey").click()
    expect(page.get_by_role("heading", name="Recovery codes")).to_be_visible()
    (credential,) = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
    assert credential["rpId"] == "localhost"
    log_out(page)

    sign_in_with_password()
    page.get_by_role("button", name="Use a passkey").click()
    expect(page).to_have_url(f"{origin}/orgs/demo/")
    (used,) = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
    assert used["signCount"] > credential["signCount"]
    # The contract's address reaches the same server.
    assert page.request.get(f"http://127.0.0.1:{urlparse(origin).port}/login/").status == 200
