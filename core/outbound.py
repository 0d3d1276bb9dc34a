"""The one way out to a URL that an IdP or an admin gave us (discovery documents, JWKS, SAML
metadata, token endpoints): `outbound_request`.

It resolves the host once, refuses the request unless every address it resolved to may be reached
(never private, loopback, link-local, multicast, reserved or shared ranges, which covers cloud
metadata addresses, and IPv4 written inside IPv6), then connects to that very address, so a DNS
answer that changes between the check and the connection (rebinding) cannot move it. TLS still
verifies the certificate against the host name. Redirects are followed by hand, each target checked
the same way; the body and the time are bounded. Only `https` is spoken, except to an address the
operator allow-listed (`IAM_OUTBOUND_ALLOW_NETWORKS`, for IdPs on a private network and for the
test suite's local peers). `IAM_DNS_NAMESERVERS` points resolution at given servers.

Written by hand on urllib3 (which requests uses): the SSRF guards on PyPI are unmaintained
(advocate) or check the name rather than the address connected to; urllib3 lets us connect to the
resolved address while verifying TLS against the name (`server_hostname`, `assert_hostname`).
"""

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import dns.exception
import dns.resolver
import urllib3
from django.conf import settings

MAX_BYTES = 1_000_000
TIMEOUT_SECONDS = 5.0
MAX_REDIRECTS = 3
REDIRECTS = (301, 302, 303, 307, 308)


class OutboundRefused(Exception):
    """The request was not made or not finished; `reason` says why (never the body)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class OutboundResponse:
    status: int
    headers: dict
    body: bytes
    url: str  # after redirects


def _allowed_networks() -> list:
    return [ipaddress.ip_network(n, strict=False) for n in settings.IAM_OUTBOUND_ALLOW_NETWORKS]


def _address(text: str):
    address = ipaddress.ip_address(text)
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return address


def _allow_listed(address) -> bool:
    return any(address in network for network in _allowed_networks())


def _public(address) -> bool:
    return address.is_global and not address.is_multicast


def _resolve(host: str) -> list:
    """Every address `host` names, resolved once (an IP literal is itself)."""
    try:
        return [_address(host)]
    except ValueError:
        pass
    nameservers = settings.IAM_DNS_NAMESERVERS
    try:
        if nameservers:
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = [ns.rsplit(":", 1)[0] for ns in nameservers]
            resolver.port = int(nameservers[0].rsplit(":", 1)[1]) if ":" in nameservers[0] else 53
            resolver.lifetime = TIMEOUT_SECONDS
            found = []
            for kind in ("A", "AAAA"):
                try:
                    found += [_address(r.to_text()) for r in resolver.resolve(host, kind)]
                except dns.resolver.NoAnswer:
                    continue
            return found
        return [_address(info[4][0]) for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)]
    except (dns.exception.DNSException, OSError, ValueError) as exc:
        raise OutboundRefused("unresolvable", host) from exc


def _target(url: str):
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise OutboundRefused("scheme_not_allowed", parts.scheme)
    if parts.username or parts.password:
        raise OutboundRefused("credentials_in_url")
    host = parts.hostname
    addresses = _resolve(host)
    if not addresses:
        raise OutboundRefused("unresolvable", host)
    listed = all(_allow_listed(a) for a in addresses)
    if not listed and not all(_public(a) for a in addresses):
        raise OutboundRefused("address_not_allowed", host)
    if parts.scheme == "http" and not listed:
        raise OutboundRefused("scheme_not_allowed", "http")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.scheme, host, port, str(addresses[0]), path


def _pool(scheme, host, port, address, timeout):
    bounded = urllib3.Timeout(connect=timeout, read=timeout)
    if scheme == "https":
        return urllib3.HTTPSConnectionPool(address, port, timeout=bounded, retries=False,
                                           cert_reqs="CERT_REQUIRED", server_hostname=host,
                                           assert_hostname=host)
    return urllib3.HTTPConnectionPool(address, port, timeout=bounded, retries=False)


def outbound_request(method: str, url: str, *, body: bytes | None = None, headers: dict | None = None,
                     max_bytes: int = MAX_BYTES, timeout: float = TIMEOUT_SECONDS,
                     max_redirects: int = MAX_REDIRECTS) -> OutboundResponse:
    """Make the request through the guard; OutboundRefused for anything it will not do."""
    deadline = time.monotonic() + timeout
    for _hop in range(max_redirects + 1):
        scheme, host, port, address, path = _target(url)
        default_port = 443 if scheme == "https" else 80
        sent = {"Host": host if port == default_port else f"{host}:{port}", "Accept-Encoding": "identity",
                **(headers or {})}
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise OutboundRefused("timeout", host)
        pool = _pool(scheme, host, port, address, remaining)
        try:
            response = pool.urlopen(method, path, body=body, headers=sent, redirect=False,
                                    preload_content=False, assert_same_host=False)
            if response.status in REDIRECTS and response.headers.get("Location"):
                url = urljoin(url, response.headers["Location"])
                response.release_conn()
                if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                    method, body = "GET", None
                continue
            data = _read(response, max_bytes, deadline, host)
            return OutboundResponse(response.status, dict(response.headers), data, url)
        except urllib3.exceptions.TimeoutError as exc:
            raise OutboundRefused("timeout", host) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise OutboundRefused("connection_failed", host) from exc
        finally:
            pool.close()
    raise OutboundRefused("too_many_redirects", url)


def _read(response, max_bytes: int, deadline: float, host: str) -> bytes:
    chunks, size = [], 0
    for chunk in response.stream(64 * 1024):
        size += len(chunk)
        if size > max_bytes:
            raise OutboundRefused("too_large", host)
        if time.monotonic() > deadline:
            raise OutboundRefused("timeout", host)
        chunks.append(chunk)
    return b"".join(chunks)
