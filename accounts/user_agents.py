"""A session's User-Agent header as a person reads it: "Chrome 131 on macOS", "curl 8.5".

The parsing is ua-parser's (the Python port of the uap-core rules that browserscope started, with the
rules shipped and updated as the ua-parser-builtins package): User-Agent strings are a moving
target of vendors' conventions, and a hand-written set of regexes here would be wrong by the next
browser release, while the shared rules are kept current by many projects that depend on them.

Descriptions are cached per string (a person's sessions repeat the same few browsers), the input is
cut to the length a session stores, and nothing a client sends (NUL bytes, 10 kB of junk) can make a
page fail: anything the rules do not know is "Unknown browser".
"""

from functools import lru_cache

from ua_parser import parse

UNKNOWN = "Unknown browser"
MAX_LENGTH = 512  # what a session keeps (accounts.login_flow); longer text is never stored
# Browsers say their full version; the major one is what a person recognises. Tools keep minor.
_MAJOR_ONLY = {"Chrome", "Chrome Mobile", "Chromium", "HeadlessChrome", "Firefox", "Firefox Mobile", "Edge",
               "Edge Mobile", "Safari", "Mobile Safari", "Opera", "Samsung Internet", "Brave", "Vivaldi",
               "Yandex Browser"}
_BROWSER_NAMES = {"Mobile Safari": "Safari", "Chrome Mobile": "Chrome", "Chrome Mobile iOS": "Chrome",
                  "Firefox Mobile": "Firefox", "Firefox iOS": "Firefox", "Edge Mobile": "Edge",
                  "HeadlessChrome": "Headless Chrome"}
# Desktop systems freeze or misreport their version in the header (macOS says 10.15.7, Windows 11
# says 10), so only the name is shown; mobile systems' versions are real and kept.
_OS_NAMES = {"Mac OS X": "macOS", "Chrome OS": "ChromeOS", "Windows": "Windows", "Linux": "Linux",
             "Ubuntu": "Linux", "Fedora": "Linux", "Debian": "Linux"}
_OS_WITH_VERSION = {"iOS", "Android", "iPadOS"}


def _version(parts, keep_minor: bool) -> str:
    major, minor = parts.major, parts.minor
    if not major or not major.isdigit():
        return ""
    if keep_minor and minor and minor.isdigit():
        return f"{major}.{minor}"
    return major


def _browser(result) -> str:
    ua = result.user_agent
    if ua is None or not ua.family or ua.family == "Other":
        return ""
    version = _version(ua, keep_minor=ua.family not in _MAJOR_ONLY)
    name = _BROWSER_NAMES.get(ua.family, ua.family)
    return f"{name} {version}" if version else name


def _system(result) -> str:
    os = result.os
    if os is None or not os.family or os.family == "Other":
        return ""
    if os.family in _OS_WITH_VERSION:
        version = _version(os, keep_minor=False)
        return f"{os.family} {version}" if version else os.family
    return _OS_NAMES.get(os.family, os.family)


@lru_cache(maxsize=1024)
def _describe(text: str) -> str:
    try:
        result = parse(text)
        browser, system = _browser(result), _system(result)
    except Exception:  # the rules are third-party regexes: a surprise there must not break a page
        return UNKNOWN
    if browser and system:
        return f"{browser} on {system}"
    if system:
        return f"{UNKNOWN} on {system}"
    return browser or UNKNOWN


def describe_user_agent(user_agent) -> str:
    """"Chrome 131 on macOS", "Firefox on Linux", "curl 8.5", or "Unknown browser"."""
    if not isinstance(user_agent, str):
        return UNKNOWN
    text = user_agent[:MAX_LENGTH].strip()
    return _describe(text) if text else UNKNOWN
