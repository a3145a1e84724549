"""HTTPS endpoints: verified against the environment's CA settings, with one TLS context per process."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from hf_infer_core import TimeoutError, TransportError
from hf_infer_core.drivers import _transports

from .drive import DRIVERS, make_client, raw_server, run_call


class _Embed(BaseHTTPRequestHandler):
    """TEI's ``/embed`` in its smallest form: a vector per input, its first value the input's length."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        inputs = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["inputs"]
        self._send(200, json.dumps([[float(len(text)), 1.0, 0.5] for text in inputs]).encode())

    def do_GET(self) -> None:  # /info: not served, as by an endpoint that is not TEI
        self._send(404, b'{"error": "not found"}')

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def https_url(authority: trustme.CA) -> Iterator[str]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Embed)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/embed"
    server.shutdown()
    server.server_close()


@pytest.fixture
def trusted(authority: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``SSL_CERT_FILE`` naming the test authority; the process's TLS contexts forgotten."""
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setattr(_transports, "_TLS", {})
    return bundle


@pytest.mark.parametrize("driver", DRIVERS)
def test_both_drivers_verify_the_endpoint_against_ssl_cert_file(
    driver: str, https_url: str, trusted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_call(make_client(driver, https_url), "embed", ["abc", "de"]) == [[3.0, 1.0, 0.5], [2.0, 1.0, 0.5]]
    # Without it, certifi's authorities: the test's certificate is refused, as a typed error.
    monkeypatch.delenv("SSL_CERT_FILE")
    with pytest.raises(TransportError, match=r"certificate of .* was not accepted .*SSL_CERT_FILE") as refused:
        run_call(make_client(driver, https_url), "embed", ["abc"])
    assert refused.value.untrusted and refused.value.attempts == 1  # not retried: it would fail the same way


def test_clients_load_the_ca_bundle_once_per_process(
    https_url: str, trusted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading a CA bundle costs 30-50 ms of CPU: every client built paid it, now the first one does."""
    loads: list[str | None] = []
    real = httpx.create_ssl_context

    def counted(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        if not args and "verify" not in kwargs:  # a bundle loaded, not a context passed through
            loads.append(_transports.os.environ.get("SSL_CERT_FILE"))
        return real(*args, **kwargs)

    monkeypatch.setattr(httpx, "create_ssl_context", counted)
    for driver in DRIVERS * 3:
        assert run_call(make_client(driver, https_url), "embed", ["abc"]) == [[3.0, 1.0, 0.5]]
    assert loads == [str(trusted)]
    # Another CA file is another context: a changed setting is honoured, not masked by the first.
    other = trusted.with_name("other.pem")
    other.write_bytes(trusted.read_bytes())
    monkeypatch.setenv("SSL_CERT_FILE", str(other))
    assert run_call(make_client("async", https_url), "embed", ["abc"]) == [[3.0, 1.0, 0.5]]
    assert loads == [str(trusted), str(other)]


def test_a_ca_bundle_rewritten_in_place_is_loaded_again(
    https_url: str, trusted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shared context is the bundle's as it is now: authorities removed from the file are not trusted from memory."""
    assert run_call(make_client("async", https_url), "embed", ["abc"]) == [[3.0, 1.0, 0.5]]
    trustme.CA().cert_pem.write_to_path(str(trusted))  # same path, another authority only
    for driver in DRIVERS:
        with pytest.raises(TransportError, match="not accepted") as refused:
            run_call(make_client(driver, https_url), "embed", ["abc"])
        assert refused.value.untrusted


@pytest.fixture
def plain_http() -> Iterator[str]:
    """A plain-HTTP server that answers what it cannot parse (a TLS hello) with a 400 and closes, as most do."""
    with raw_server(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n") as (port, _):
        yield f"https://127.0.0.1:{port}/embed"


@pytest.mark.parametrize("driver", DRIVERS)
def test_an_https_url_to_a_plain_http_server_says_so(driver: str, plain_http: str) -> None:
    """What failed (the TLS handshake), not "no answer in time" (httpx-aiohttp's ConnectTimeout for any failure)."""
    with pytest.raises(TransportError, match=r"https://127\.0\.0\.1.*WRONG_VERSION_NUMBER") as failed:
        run_call(make_client(driver, plain_http, max_retries=0), "embed", ["abc"])
    assert not isinstance(failed.value, TimeoutError)
