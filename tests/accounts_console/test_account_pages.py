"""The person's own account pages: one side navigation with the current page marked and the way
back to each org's console; sessions named by browser and OS at a fixed query count; recovery codes
copied and downloaded from the page that shows them, and nowhere else."""

import datetime
import re
from urllib.parse import unquote

import pytest
from django.db import connection as db
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import RecoveryCode, UserSession
from accounts.sessions import SessionStore
from core.secrets import secret_hash
from tests.factories import MemberFactory, OrgFactory, UserFactory, sign_in

pytestmark = pytest.mark.django_db

CHROME_MAC = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/131.0.0.0 Safari/537.36")
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
# url name -> the nav entry it is (what aria-current marks)
PAGES = {
    "accounts:mfa-setup": "Security overview",
    "accounts:password-change": "Password",
    "accounts:mfa-totp": "Authenticator app",
    "accounts:mfa-passkey": "Passkeys",
    "accounts:mfa-recovery-codes": "Recovery codes",
    "accounts:sessions": "Sessions",
    "agents:account-delegations": "Delegations I granted",
}


@pytest.fixture
def person(db):
    user = UserFactory(email="pat@example.com")
    MemberFactory(org=OrgFactory(name="Acme Robotics", slug="acme"), user=user, role="member")
    MemberFactory(org=OrgFactory(name="Beta Labs", slug="beta"), user=user, role="admin")
    return user


def nav_of(html: str) -> str:
    start = html.index('<nav class="sidenav" aria-label="Your account">')
    return html[start:html.index("</nav>", start)]


def current_entries(nav: str) -> list[str]:
    return re.findall(r'<a href="[^"]+" aria-current="page">([^<]+)</a>', nav)


@pytest.mark.parametrize("name", PAGES)
def test_every_account_page_has_the_account_nav_with_itself_marked(person, name):
    client = sign_in(Client(), person)
    response = client.get(reverse(name))
    assert response.status_code == 200
    html = response.content.decode()
    nav = nav_of(html)
    for url_name, label in PAGES.items():
        assert f'href="{reverse(url_name)}"' in nav and f">{label}</a>" in nav
    assert current_entries(nav) == [PAGES[name]]
    assert 'class="topbar"' in html and "Log out" in html  # base.html's topbar stays
    for slug in ("acme", "beta"):  # the way back to each org's console
        assert f'href="{reverse("console:overview", kwargs={"org": slug})}"' in nav


def test_confirmation_pages_mark_the_page_they_belong_to(person):
    client = sign_in(Client(), person)
    totp = TOTPDevice.objects.create(user=person, name="Phone", confirmed=True)
    remove = client.get(reverse("accounts:mfa-remove", kwargs={"kind": "totp", "pk": totp.pk}))
    assert current_entries(nav_of(remove.content.decode())) == ["Security overview"]
    _session(person, FIREFOX_LINUX)
    ask = client.post(reverse("accounts:sessions-revoke-others"))
    assert current_entries(nav_of(ask.content.decode())) == ["Sessions"]


def test_a_person_without_an_org_is_offered_the_console_home(db):
    client = sign_in(Client(), UserFactory())
    nav = nav_of(client.get(reverse("accounts:sessions")).content.decode())
    assert f'href="{reverse("accounts:home")}">Back to the console</a>' in nav
    assert "console:overview" not in nav and "/orgs/" not in nav


# --- sessions ----------------------------------------------------------------------------------


def _session(user, agent: str, *, ip="192.0.2.10", age_minutes=0) -> UserSession:
    store = SessionStore()
    store["_auth_user_id"] = str(user.pk)
    store.create()
    now = timezone.now() - datetime.timedelta(minutes=age_minutes)
    UserSession.objects.filter(session_key=store.session_key).update(
        user=user, user_agent=agent, ip=ip, created_at=now, last_seen_at=now)
    return UserSession.objects.get(session_key=store.session_key)


def _queries(client, path) -> int:
    assert client.get(path).status_code == 200
    with CaptureQueriesContext(db) as captured:
        response = client.get(path)
    assert response.status_code == 200
    return len(captured)


def test_sessions_show_browser_and_system_with_the_raw_header_kept(person):
    client = sign_in(Client(HTTP_USER_AGENT=CHROME_MAC), person)
    _session(person, FIREFOX_LINUX, age_minutes=5)
    _session(person, "curl/8.5.0", age_minutes=10)
    _session(person, "\x01garbage" + "z" * 400, age_minutes=15)  # PostgreSQL text holds no NUL
    html = client.get(reverse("accounts:sessions")).content.decode()
    devices = re.findall(r'data-testid="session-device" title="([^"]*)">([^<]+)</span>', html)
    shown = [readable for _, readable in devices]
    assert shown[1:] == ["Firefox 133 on Linux", "curl 8.5", "Unknown browser"]
    assert (FIREFOX_LINUX, "Firefox 133 on Linux") in devices  # the raw header, in the title
    assert ("curl/8.5.0", "curl 8.5") in devices


def test_the_sessions_page_costs_the_same_queries_at_2_and_30_sessions(person):
    client = sign_in(Client(HTTP_USER_AGENT=CHROME_MAC), person)
    _session(person, FIREFOX_LINUX)
    small = _queries(client, reverse("accounts:sessions"))
    for n in range(28):
        _session(person, FIREFOX_LINUX if n % 2 else f"curl/8.{n}.0", age_minutes=n + 1)
    assert person.sessions.count() == 30
    html = client.get(reverse("accounts:sessions")).content.decode()
    assert html.count('data-testid="session-device"') == 30
    assert _queries(client, reverse("accounts:sessions")) == small


# --- recovery codes ----------------------------------------------------------------------------


def _codes_response(client, **data):
    return client.post(reverse("accounts:mfa-recovery-codes"), data)


def test_the_download_and_the_copy_hold_exactly_the_codes_shown(person):
    TOTPDevice.objects.create(user=person, name="Phone", confirmed=True)
    client = sign_in(Client(), person)
    response = _codes_response(client)
    html = response.content.decode()
    shown = re.findall(r"<li>([a-z2-9]{5}-[a-z2-9]{5})</li>", html)
    assert len(shown) == 10
    link = r'download="agent-iam-recovery-codes.txt"\s+href="data:text/plain;charset=utf-8,([^"]*)"'
    href = re.search(link, html).group(1)
    assert unquote(href) == "".join(f"{code}\n" for code in shown)
    copied = re.search(r'<textarea id="recovery-codes-text"[^>]*>([^<]*)</textarea>', html).group(1)
    assert copied.split() == shown
    assert 'data-copy="#recovery-codes-text"' in html
    stored = set(RecoveryCode.objects.values_list("code_hash", flat=True))
    assert {secret_hash(code.replace("-", ""))[0] for code in shown} == stored


def test_no_later_request_shows_the_codes_again(person):
    TOTPDevice.objects.create(user=person, name="Phone", confirmed=True)
    client = sign_in(Client(), person)
    shown = re.findall(r"<li>([a-z2-9]{5}-[a-z2-9]{5})</li>", _codes_response(client).content.decode())
    session = dict(client.session.items())
    for path in (reverse("accounts:mfa-recovery-codes"), reverse("accounts:mfa-setup"),
                 reverse("accounts:sessions")):
        again = client.get(path).content.decode()
        assert not any(code in again for code in shown) and "data:text/plain" not in again
    assert not any(code in repr(session) for code in shown)  # nor kept in the session for later


def test_replacing_codes_says_the_old_ones_stop_and_a_bare_post_replaces_nothing(person):
    TOTPDevice.objects.create(user=person, name="Phone", confirmed=True)
    client = sign_in(Client(), person)
    _codes_response(client)
    before = set(RecoveryCode.objects.values_list("code_hash", flat=True))
    page = client.get(reverse("accounts:mfa-recovery-codes")).content.decode()
    assert "the 10 you have left stop working" in page and 'name="confirm" value="yes"' in page
    bare = _codes_response(client)
    assert bare.status_code == 200 and "the 10 you have left stop working" in bare.content.decode()
    assert not re.search(r"<li>[a-z2-9]{5}-[a-z2-9]{5}</li>", bare.content.decode())
    assert "recovery-codes-text" not in bare.content.decode()
    assert set(RecoveryCode.objects.values_list("code_hash", flat=True)) == before
    done = _codes_response(client, confirm="yes")
    assert "recovery-codes-text" in done.content.decode()
    assert not set(RecoveryCode.objects.values_list("code_hash", flat=True)) & before


def test_the_authenticator_key_has_a_copy_button(person):
    client = sign_in(Client(), person)
    html = client.get(reverse("accounts:mfa-totp")).content.decode()
    secret = re.search(r'data-testid="totp-secret">([A-Z2-7 ]+)</code>', html).group(1)
    assert f'id="totp-secret-text" class="visually-hidden" readonly tabindex="-1" aria-hidden="true" ' \
           f'value="{secret.replace(" ", "")}"' in html
    assert 'data-copy="#totp-secret-text"' in html


def test_removing_the_last_factor_says_recovery_codes_go_with_it(person):
    totp = TOTPDevice.objects.create(user=person, name="Phone", confirmed=True)
    client = sign_in(Client(), person)
    _codes_response(client)
    page = client.get(reverse("accounts:mfa-remove", kwargs={"kind": "totp", "pk": totp.pk})).content.decode()
    assert "two-step verification turns off" in page
    assert "Your 10 recovery codes are removed with it." in page
