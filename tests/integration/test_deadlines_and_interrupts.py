"""Every attempt ends within its deadline, a refused connection is typed, and Ctrl-C or a fatal error ends a call at once."""

from __future__ import annotations

from typing import Any

import pytest

from hf_infer_core import EmbeddingClient, InferenceEndpoint

from ..fake_endpoint import expected_vector, fake_endpoint

# ------------------------------------------------------------------ connection refused


async def test_connection_refused_is_a_transport_error_in_both_clients() -> None:
    from hf_infer_core import AsyncEmbeddingClient, TimeoutError, TransportError
    from hf_infer_server import free_port

    endpoint = InferenceEndpoint.from_url(f"http://127.0.0.1:{free_port()}/embed", "k", requests_per_minute=10**6)
    sync = EmbeddingClient(endpoint, max_retries=0)
    with pytest.raises(TransportError) as info:
        sync.embed(["a"])
    assert not isinstance(info.value, TimeoutError)
    async with AsyncEmbeddingClient(endpoint, max_retries=0) as client:
        with pytest.raises(TransportError) as ainfo:
            await client.embed(["a"])
    assert not isinstance(ainfo.value, TimeoutError)


# ------------------------------------------------------------------ a hard deadline per attempt


async def embed_either(client: Any, texts: list[str]) -> list[list[float]]:
    """Call a sync or an async client's embed."""
    import inspect

    result = client.embed(texts)
    vectors: list[list[float]] = await result if inspect.isawaitable(result) else result
    return vectors


@pytest.mark.parametrize("kind", ["endless-drip", "slow-drip", "header-drip"])
async def test_a_dripping_server_cannot_hold_a_call_past_its_deadlines(kind: str) -> None:
    """Body or headers dripping one byte every 0.25 s: each attempt and each batch end on time, in both drivers."""
    import time

    from hf_infer_core import AsyncEmbeddingClient, TimeoutError

    drip = {
        "permanent": "header_drip" if kind == "header-drip" else "drip",
        "drip_seconds": 0.25,
        "drip_bytes": 10_000 if kind == "slow-drip" else None,
    }
    with fake_endpoint(**drip) as server:
        endpoint = InferenceEndpoint.from_url(server.embed_url, "k", requests_per_minute=10**6)
        # One attempt: it ends within timeout + 0.5 s.
        for factory in (EmbeddingClient, AsyncEmbeddingClient):
            client = factory(endpoint, timeout=1.0, max_retries=0)
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await embed_either(client, ["a"])
            assert time.monotonic() - started < 1.0 + 0.5
        # Retries: every attempt is bounded, and the batch ends within retry_deadline + 1 s.
        for factory in (EmbeddingClient, AsyncEmbeddingClient):
            client = factory(endpoint, timeout=2.0, retry_deadline=5.0, max_retries=1, max_retry_wait=0.5)
            started = time.monotonic()
            with pytest.raises(TimeoutError) as info:
                await embed_either(client, ["a"])
            elapsed = time.monotonic() - started
            assert info.value.attempts == 2
            assert elapsed < 2 * (2.0 + 0.5) + 0.5 and elapsed < 5.0 + 1.0


# ------------------------------------------------------------------ prompt interrupt and abort


_EARLIER: set[int] = set()  # threads of earlier tests: not this test's to count


def _hf_infer_threads() -> list[str]:
    import threading

    return [t.name for t in threading.enumerate() if t.name.startswith("hf-infer") and id(t) not in _EARLIER]


def _only_this_tests_threads() -> None:
    """Count from now on only the threads this test starts (an earlier test's may still be ending)."""
    import threading

    _EARLIER.update(id(t) for t in threading.enumerate())


def _closed_and_threads_ended(client: EmbeddingClient) -> None:
    import time

    client.close()  # its worker threads end with it
    for _ in range(200):
        if not _hf_infer_threads():
            return
        time.sleep(0.05)
    assert _hf_infer_threads() == []


def test_ctrl_c_ends_a_threaded_embed_at_once_and_sends_nothing_after() -> None:
    import os
    import signal
    import threading
    import time

    _only_this_tests_threads()
    # Python raises KeyboardInterrupt on SIGINT only when it did not start with SIGINT ignored (a
    # background job of a non-interactive shell, nohup, some CI runners): install what the test needs.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _ctrl_c_ends_the_call(os, signal, threading, time)
    finally:
        signal.signal(signal.SIGINT, previous)


def _ctrl_c_ends_the_call(os: Any, signal: Any, threading: Any, time: Any) -> None:
    with fake_endpoint(latency=1.0) as server:  # every request takes one second
        endpoint = InferenceEndpoint.from_url(server.embed_url, "k", requests_per_minute=10**6)
        client = EmbeddingClient(endpoint, batch_size=1, max_concurrency=4)
        texts = [f"text {i}" for i in range(24)]
        sent_at: list[float] = []
        timer = threading.Timer(0.7, lambda: (sent_at.append(time.monotonic()), os.kill(os.getpid(), signal.SIGINT)))
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            client.embed(texts)
        surfaced = time.monotonic()
        assert surfaced - sent_at[0] < 1.0, f"Ctrl-C surfaced after {surfaced - sent_at[0]:.2f} s"
        time.sleep(1.5)  # requests in flight at the signal finish; their threads go back to the client's pool
        assert len(_hf_infer_threads()) <= 4  # the client's worker threads, kept for its next calls
        late = [entry.at for entry in server.log if entry.at > sent_at[0] + 0.05]
        assert late == [], f"{len(late)} requests sent after Ctrl-C"
        before = len(server.log)
        assert client.embed(["still usable"]) == [expected_vector("still usable")]
        assert len(server.log) == before + 1
        _closed_and_threads_ended(client)


def test_a_fatal_error_does_not_wait_out_another_threads_retry_after() -> None:
    import time

    from hf_infer_core import AuthenticationError

    _only_this_tests_threads()
    answers = {"slow": "429", "fatal": "401"}
    with fake_endpoint(by_text=answers, retry_after="20") as server:
        endpoint = InferenceEndpoint.from_url(server.embed_url, "k", requests_per_minute=10**6)
        client = EmbeddingClient(endpoint, batch_size=1, max_concurrency=2, max_retry_wait=30.0)
        started = time.monotonic()
        with pytest.raises(AuthenticationError):
            client.embed(["slow", "fatal"])
        assert time.monotonic() - started < 1.0
        time.sleep(0.5)
        assert len(_hf_infer_threads()) <= 2  # the client's worker threads, idle
        sent = sorted(entry.inputs[0] for entry in server.log)
        # No retry was sent. "slow" may not have been sent at all: on a busy machine its thread
        # can start after "fatal" already stopped the call (issue #27, case 13).
        assert sent in (["fatal"], ["fatal", "slow"])
        _closed_and_threads_ended(client)
