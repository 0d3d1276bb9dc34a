"""A session's User-Agent read as a person would: real headers of today's browsers and tools, and
whatever else a client may send."""

import pytest

from accounts import user_agents
from accounts.user_agents import UNKNOWN, describe_user_agent


@pytest.fixture(autouse=True)
def fresh_cache():
    """A test that swaps the parser must leave no description it made behind."""
    user_agents._describe.cache_clear()
    yield
    user_agents._describe.cache_clear()

REAL = [
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36", "Chrome 131 on Windows"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36", "Chrome 131 on macOS"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.5 Mobile/15E148 Safari/604.1", "Safari 17 on iOS 17"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/18.1 Safari/605.1.15", "Safari 18 on macOS"),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox 133 on Linux"),
    ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
     "Firefox 133 on Linux"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86", "Edge 131 on Windows"),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.6778.135 Mobile Safari/537.36", "Chrome 131 on Android 14"),
    ("curl/8.5.0", "curl 8.5"),
    ("python-requests/2.32.3", "Python Requests 2.32"),
]


@pytest.mark.parametrize(("header", "readable"), REAL, ids=[r for _, r in REAL])
def test_real_headers_read_as_browser_on_system(header, readable):
    assert describe_user_agent(header) == readable


@pytest.mark.parametrize("header", [
    "", "   ", None, 42, "\x00", "\x00\x00\x00Chrome\x00", "Browser A", "a" * 10_000,
    "Mozilla/5.0 (" * 2_000, "\ud800 broken surrogate", "💥" * 600,
], ids=["empty", "blank", "none", "not-text", "nul", "nuls", "made-up", "10kB", "nested", "surrogate",
        "emoji"])
def test_garbage_is_an_unknown_browser_and_never_an_error(header):
    assert describe_user_agent(header) == UNKNOWN


def test_a_system_without_a_known_browser_still_names_the_system():
    assert describe_user_agent("Mozilla/5.0 (X11; Linux x86_64)") == "Unknown browser on Linux"


def test_a_surprise_inside_the_parser_is_an_unknown_browser(monkeypatch):
    monkeypatch.setattr(user_agents, "parse", lambda text: object())  # no user_agent, no os
    assert describe_user_agent("curl/8.5.0") == UNKNOWN


def test_each_header_is_parsed_once(monkeypatch):
    calls = []
    real = user_agents.parse
    monkeypatch.setattr(user_agents, "parse", lambda text: calls.append(text) or real(text))
    for _ in range(50):
        assert describe_user_agent("curl/8.5.0") == "curl 8.5"
    assert calls == ["curl/8.5.0"]


def test_only_what_a_session_keeps_is_parsed(monkeypatch):
    seen, real = [], user_agents.parse
    monkeypatch.setattr(user_agents, "parse", lambda text: seen.append(len(text)) or real(text))
    describe_user_agent("x" * 10_000)
    assert seen == [user_agents.MAX_LENGTH]
