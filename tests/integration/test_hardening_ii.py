"""Hardening II (issue #21): each case an adversarial run found, against real servers on 127.0.0.1.

A key read from a file, a chunked body flooding the local server, an empty server key, Redis
misconfigured or silent, and processes sharing one Redis budget with different limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from hf_infer_core import (
    AsyncEmbeddingClient,
    ConfigError,
    EmbeddingClient,
    InferenceEndpoint,
    RateLimitBackendError,
)
from hf_infer_server import LocalServer, free_port
from langchain_hf_infer import HFInferEmbeddings

from ..conftest import PEAK_RSS, RedisServer, run_probe
from ..fake_endpoint import fake_endpoint, max_in_window

TOKEN = "hf_abcdefghijklmnopqrstuvwxyz0123456789"

# ------------------------------------------------------------------ 1. a key read from a file


@pytest.mark.parametrize("tail", ["\n", "\r\n", " \t\n"])
def test_surrounding_whitespace_of_a_key_is_stripped(tail: str) -> None:
    with fake_endpoint() as server:
        endpoint = InferenceEndpoint.from_url(server.embed_url, TOKEN + tail, requests_per_minute=None)
        with EmbeddingClient(endpoint, discover=False) as client:
            client.embed(["x"])
        assert server.log[0].authorization == f"Bearer {TOKEN}"
        model = HFInferEmbeddings(url=server.embed_url, api_key=TOKEN + tail, discover=False)
        assert model.api_key is not None and model.api_key.get_secret_value() == TOKEN


@pytest.mark.parametrize("inner", ["\n", "\r", "\x00", "\x7f", "é", "\ud800"])
def test_a_key_with_a_control_or_non_ascii_character_is_a_config_error_that_never_shows_it(inner: str) -> None:
    key = TOKEN[:10] + inner + TOKEN[10:]
    body = {"service": "hugging_face", "service_settings": {"url": "http://127.0.0.1:9/embed", "api_key": key}}
    for build in (
        lambda: InferenceEndpoint.from_request("text_embedding", "x", body),
        lambda: InferenceEndpoint.from_url("http://127.0.0.1:9/embed", key),
        lambda: HFInferEmbeddings(url="http://127.0.0.1:9/embed", api_key=key),
    ):
        with pytest.raises(ConfigError) as info:
            build()
        assert "cannot be sent in an HTTP header" in str(info.value)
        assert TOKEN[:10] not in str(info.value) and TOKEN[10:] not in str(info.value)


# ------------------------------------------------------------------ 3, 4. the local server


def test_a_chunked_body_is_read_as_a_stream_and_refused_at_the_limit(local_server: LocalServer) -> None:
    """300 MB sent chunked to /embed: 413 at 2 MB, and the server's memory does not follow."""
    pid = _server_pid(local_server)
    before = _rss(pid)
    host, port = local_server.url.removeprefix("http://").split(":")
    answer = b""
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        auth = f"Authorization: Bearer {local_server.api_key}\r\n" if local_server.api_key else ""
        sock.sendall(
            f"POST /embed HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        piece = b'{"inputs": "' + b"a" * (1 << 20)
        sent = 0
        try:
            while sent < 300 << 20:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                sent += len(piece)
        except OSError:
            pass  # the server answered and closed: what is expected
        sock.settimeout(10)
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError:
            pass
    assert answer.startswith(b"HTTP/1.1 413")
    assert sent < 300 << 20, "the server read everything it was sent"
    assert _rss(pid) - before < 64 << 20


def _server_pid(server: LocalServer) -> int:
    port = server.url.rsplit(":", 1)[1]
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=False).stdout
    if "pid=" not in out:
        pytest.skip("ss cannot name the server's process here")
    return int(out.split("pid=")[1].split(",")[0])


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_an_empty_server_key_refuses_to_start(how: str) -> None:
    env = {**os.environ, "HF_INFER_SERVER_API_KEY": ""} if how == "environment" else dict(os.environ)
    command = [sys.executable, "-m", "hf_infer_server._cli", "serve", "--port", str(free_port())]
    if how == "flag":
        command += ["--api-key", ""]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)
    assert result.returncode == 2
    assert "API key is empty" in result.stderr


def test_deeply_nested_json_gets_422_not_500(local_server: LocalServer) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {local_server.api_key}", "Content-Type": "application/json"}
    answer = httpx.post(local_server.embed_url, content=b"[" * 200_000, headers=headers, timeout=30)
    assert answer.status_code == 422


# ------------------------------------------------------------------ 5, 6. Redis misconfigured or silent


@pytest.fixture
def locked_redis() -> Iterator[RedisServer]:
    """A redis-server with a password and an ACL user who may not run scripts."""
    with tempfile.TemporaryDirectory() as directory:
        server = RedisServer(directory)
        _redis_cli(server, "CONFIG", "SET", "requirepass", "right-pw")
        _redis_cli(
            server,
            "ACL",
            "SETUSER",
            "noscript",
            "on",
            ">user-pw",
            "~*",
            "+@all",
            "-evalsha",
            "-eval",
            password="right-pw",
        )
        try:
            yield server
        finally:
            server.stop()


def _redis_cli(server: RedisServer, *args: str, password: str | None = None) -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=server.port, password=password)
    client.execute_command(*args)
    client.close()


def _client(url: str, backend: str, **options: Any) -> EmbeddingClient:
    endpoint = InferenceEndpoint.from_url(url, "k")
    return EmbeddingClient(endpoint, rate_limit_backend=backend, discover=False, **options)


@pytest.mark.parametrize(
    ("backend", "says"),
    [
        ("redis://:wrong-pw@127.0.0.1:{port}/0", "AuthenticationError"),
        ("redis://noscript:user-pw@127.0.0.1:{port}/0", "NoPermissionError"),
        ("redis://:right-pw@127.0.0.1:{port}/99", "DB index is out of range"),
    ],
    ids=["wrong-password", "acl-without-evalsha", "db-index"],
)
@pytest.mark.parametrize("driver", ["sync", "async"])
def test_redis_misconfiguration_fails_fast_with_a_typed_error(
    locked_redis: RedisServer, backend: str, says: str, driver: str
) -> None:
    url = backend.format(port=locked_redis.port)
    with fake_endpoint() as server:
        client = _client(server.embed_url, url)
        started = time.monotonic()
        call = (
            (lambda: client.embed(["x"]))
            if driver == "sync"
            else (lambda: asyncio.run(AsyncEmbeddingClient(client.endpoint, options=client.options).embed(["x"])))
        )
        with pytest.raises(RateLimitBackendError) as info:
            call()
        assert time.monotonic() - started < 2.0  # not retried for minutes
        assert not server.log  # nothing sent without a slot
    assert says in str(info.value)
    assert "pw" not in str(info.value)


def test_bad_tls_options_fail_fast() -> None:
    with fake_endpoint() as server:
        started = time.monotonic()
        with pytest.raises((RateLimitBackendError, ConfigError)) as info:
            _client(server.embed_url, "rediss://127.0.0.1:1/0?ssl_cert_reqs=bogus").embed(["x"])
        assert time.monotonic() - started < 2.0
    assert "bogus" in str(info.value) or "ssl" in str(info.value).lower()


def test_a_redis_that_never_answers_is_reported_within_retry_deadline(redis_server: RedisServer) -> None:
    assert redis_server.proc is not None
    with fake_endpoint() as server:
        client = _client(server.embed_url, redis_server.url, retry_deadline=2.0)
        os.kill(redis_server.proc.pid, signal.SIGSTOP)
        started = time.monotonic()
        try:
            with pytest.raises(RateLimitBackendError):
                client.embed(["x"])
        finally:
            os.kill(redis_server.proc.pid, signal.SIGCONT)
        assert time.monotonic() - started < 3.0


# ------------------------------------------------------------------ 7. sharers with different limits


def test_sharers_with_different_limits_never_exceed_the_smallest(redis_server: RedisServer) -> None:
    """A 600/min and a 6,000/min client on one Redis budget: together at most 600/min."""
    seconds = 6.0
    with fake_endpoint() as server:
        until = time.monotonic() + seconds

        def run(rpm: int) -> None:
            endpoint = InferenceEndpoint.from_url(server.embed_url, "k", requests_per_minute=rpm)
            client = EmbeddingClient(
                endpoint, rate_limit_backend=redis_server.url, batch_size=1, max_concurrency=1, discover=False
            )
            i = 0
            while time.monotonic() < until:
                client.embed([f"{rpm} {i}"])
                i += 1

        threads = [threading.Thread(target=run, args=(rpm,)) for rpm in (600, 6000, 6000)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        times = sorted(entry.at for entry in server.log)
    # Until the slow sharer's first reservation, the fast ones' spacing was all Redis knew: from
    # then on, 600/min is one request per 0.1 s, at most 21 in any closed 2 s (the burst of one).
    settled = [t for t in times if t >= times[0] + 0.2]
    assert max_in_window(settled, 2.0) <= 21
    assert (len(settled) - 1) / (settled[-1] - settled[0]) * 60 <= 600 * 1.01


# ------------------------------------------------------------------ 8. memory of chunking one large text


def test_chunking_one_20_mb_text_peaks_under_five_times_its_size() -> None:
    measured = run_probe(
        PEAK_RSS
        + """
import json, sys
sys.path.insert(0, ".")
from benchmarks.corpus import prose
text = prose(20.0)
base = reset_peak()
from hf_infer_core import chunk_text
chunks = chunk_text(text, None)
print(json.dumps({"growth": peak() - base, "size": len(text), "chunks": len(chunks)}))
""",
        timeout=300,
    )
    assert measured["growth"] <= 5 * measured["size"], measured  # type: ignore[operator]


def test_connections_dripping_their_headers_are_closed_after_the_header_timeout() -> None:
    from hf_infer_server import run_local_server

    with run_local_server(extra_args=["--header-timeout", "1"]) as server:
        host, port = server.url.removeprefix("http://").split(":")
        sockets = [socket.create_connection((host, int(port)), timeout=5) for _ in range(200)]
        try:
            deadline = time.monotonic() + 2.5
            while time.monotonic() < deadline:
                for sock in sockets:
                    with contextlib.suppress(OSError):
                        sock.send(b"G")  # one byte of a request line at a time
                time.sleep(0.25)
            closed = 0
            for sock in sockets:
                sock.settimeout(2)
                try:
                    closed += sock.recv(1) == b""
                except OSError:
                    closed += 1
        finally:
            for sock in sockets:
                sock.close()
        # A well-behaved request on a fresh connection still gets its answer.
        import httpx

        assert httpx.get(server.url + "/health", timeout=30).status_code == 200
    assert closed == 200
