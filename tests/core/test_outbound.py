"""The outbound-URL guard against real peers on loopback: an HTTP server and a DNS server of the
tests' own (dnspython answering UDP queries). Loopback is refused unless allow-listed; so are
metadata, private and IPv4-in-IPv6 addresses, redirects to them, names that resolve to them
(resolved once: a rebinding answer cannot move the connection), oversized and slow answers."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import override_settings

from core.outbound import OutboundRefused, outbound_request
from tests.dns_server import LocalDns

LOOPBACK = ["127.0.0.0/8"]


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/big":
            self._answer(200, b"x" * 300_000)
        elif self.path == "/slow":
            time.sleep(1.5)
            self._answer(200, b"late")
        elif self.path.startswith("/to/"):  # /to/<host>/<path>: a redirect to http://<host>/<path>
            self.send_response(302)
            self.send_header("Location", "http://" + self.path[len("/to/"):])
            self.end_headers()
        elif self.path.startswith("/here/"):  # a redirect to a path of this server
            self.send_response(302)
            self.send_header("Location", "/" + self.path[len("/here/"):])
            self.end_headers()
        elif self.path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.end_headers()
        else:
            self._answer(200, f"hello {self.headers['Host']}".encode())

    def _answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def web():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server.server_address[1]
    server.shutdown()


@pytest.fixture(scope="module")
def resolver():
    server = LocalDns()
    yield server
    server.close()


def _refused(reason, *args, **kwargs):
    with pytest.raises(OutboundRefused) as caught:
        outbound_request("GET", *args, **kwargs)
    assert caught.value.reason == reason


def test_loopback_is_refused_unless_the_operator_allow_lists_it(web):
    base, port = web
    with override_settings(IAM_OUTBOUND_ALLOW_NETWORKS=[]):
        _refused("address_not_allowed", base + "/")
        _refused("address_not_allowed", f"http://localhost:{port}/")
        _refused("address_not_allowed", f"http://[::ffff:127.0.0.1]:{port}/")
    with override_settings(IAM_OUTBOUND_ALLOW_NETWORKS=LOOPBACK):
        answer = outbound_request("GET", base + "/")
        assert answer.status == 200 and answer.body == f"hello 127.0.0.1:{port}".encode()


@pytest.mark.parametrize("address", ["169.254.169.254", "10.0.0.1", "192.168.1.1", "100.64.0.1", "0.0.0.0",
                                     "[::1]", "[fd00::1]", "[fe80::1]", "224.0.0.1"])
def test_private_metadata_and_special_addresses_are_refused_without_a_connection(address):
    with override_settings(IAM_OUTBOUND_ALLOW_NETWORKS=LOOPBACK):
        _refused("address_not_allowed", f"https://{address}/latest/meta-data/")


def test_only_https_and_no_credentials_in_the_url(web):
    base, port = web
    with override_settings(IAM_OUTBOUND_ALLOW_NETWORKS=LOOPBACK):
        for url in ("file:///etc/passwd", "ftp://127.0.0.1/", "gopher://127.0.0.1/"):
            _refused("scheme_not_allowed", url)
        _refused("credentials_in_url", f"http://user:pw@127.0.0.1:{port}/")
        _refused("scheme_not_allowed", "http://192.0.32.10/", timeout=0.2)  # public: https only


def test_a_redirect_is_checked_like_the_first_url(web):
    base, port = web
    with override_settings(IAM_OUTBOUND_ALLOW_NETWORKS=LOOPBACK):
        _refused("address_not_allowed", base + "/to/169.254.169.254/latest")
        followed = outbound_request("GET", base + "/here/plain")
        assert followed.status == 200 and followed.url == base + "/plain"
        _refused("too_many_redirects", base + "/loop")


def test_size_and_time_are_bounded(web):
    base, _port = web
    with override_settings(IAM_OUTBOUND_ALLOW_NETWORKS=LOOPBACK):
        _refused("too_large", base + "/big", max_bytes=100_000)
        assert len(outbound_request("GET", base + "/big").body) == 300_000
        _refused("timeout", base + "/slow", timeout=0.5)


def test_a_name_is_resolved_once_and_the_connection_goes_to_that_address(web, resolver):
    _base, port = web
    nameservers = [f"127.0.0.1:{resolver.port}"]
    with override_settings(IAM_DNS_NAMESERVERS=nameservers, IAM_OUTBOUND_ALLOW_NETWORKS=[]):
        resolver.answers, resolver.queries = ["127.0.0.1"], 0
        _refused("address_not_allowed", f"http://idp.test:{port}/")  # a name for loopback: refused
    with override_settings(IAM_DNS_NAMESERVERS=nameservers, IAM_OUTBOUND_ALLOW_NETWORKS=LOOPBACK):
        # Rebinding: the first answer is checked and used; a second lookup would get another.
        resolver.answers, resolver.queries = ["127.0.0.1", "169.254.169.254"], 0
        answer = outbound_request("GET", f"http://idp.test:{port}/")
        assert answer.body == f"hello idp.test:{port}".encode() and resolver.queries == 1
