"""The Redis rate-limit budget: misconfigured or silent Redis fails fast and typed; sharers keep the smallest limit."""

from __future__ import annotations

import asyncio
import os
import signal
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

from ..conftest import RedisServer
from ..fake_endpoint import fake_endpoint, max_in_window

TOKEN = "hf_abcdefghijklmnopqrstuvwxyz0123456789"

# ------------------------------------------------------------------ Redis misconfigured or silent


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


# ------------------------------------------------------------------ sharers with different limits


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
