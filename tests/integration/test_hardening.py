"""Hardening over real HTTP: correct after fork, rate-limit keys, and the other attacker cases.

Each test here reproduces a case a careful attacker found on the earlier client (see the README's
Reliability section for the figures).
"""

from __future__ import annotations

import logging
import multiprocessing
from typing import Any

import pytest

from hf_infer_core import EmbeddingClient, InferenceEndpoint
from langchain_hf_infer import HFInferEmbeddings

from ..conftest import PEAK_RSS, run_probe
from ..fake_endpoint import expected_vector, fake_endpoint

# ------------------------------------------------------------------ 1. fork

_PARENT: dict[str, Any] = {}


def _child_round(task: tuple[int, int]) -> tuple[int, int, list[str]]:
    """Embed 40 texts no other child sends with the client inherited from the parent."""
    child, round_ = task
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("hf_infer_core").addHandler(handler)
    texts = [f"child {child} round {round_} text {i}" for i in range(40)]
    wrong = errors = 0
    for client in (_PARENT["client"], _PARENT["adapter"]):
        try:
            vectors = client.embed(texts) if isinstance(client, EmbeddingClient) else client.embed_documents(texts)
        except Exception:
            errors += 1
            continue
        wrong += sum(v != expected_vector(t) for v, t in zip(vectors, texts, strict=True))
    return wrong, errors, records


def test_forked_children_get_their_own_connections_and_right_vectors() -> None:
    with fake_endpoint() as server:
        endpoint = InferenceEndpoint.from_url(server.embed_url, "key", requests_per_minute=10**7)
        client = EmbeddingClient(endpoint, batch_size=8, max_concurrency=4)
        adapter = HFInferEmbeddings(
            url=server.embed_url,
            api_key="key",
            requests_per_minute=10**7,
            batch_size=8,
            max_concurrency=4,
            chunking_settings={"strategy": "none"},
        )
        # The parent uses both first, so their keep-alive connections exist when the children fork.
        parent_texts = [f"parent {i}" for i in range(40)]
        assert client.embed(parent_texts) == [expected_vector(t) for t in parent_texts]
        assert adapter.embed_documents(parent_texts) == [expected_vector(t) for t in parent_texts]
        _PARENT.update(client=client, adapter=adapter)
        try:
            with multiprocessing.get_context("fork").Pool(4) as pool:
                results = pool.map(_child_round, [(c, r) for r in range(5) for c in range(4)], chunksize=1)
        finally:
            _PARENT.clear()
        assert sum(r[0] for r in results) == 0, "a child got a vector of another text"
        assert sum(r[1] for r in results) == 0, "a child's call failed"
        # The parent is unaffected and keeps working on its own connections.
        assert client.embed(parent_texts) == [expected_vector(t) for t in parent_texts]
        client.close()
    warnings = [m for r in results for m in r[2] if "fork" in m]
    assert warnings, "a forked child must be told its rate limit is per process"
    # Once per child process, not once per call: 4 workers at most.
    assert len(warnings) <= 4
    assert "rate_limit_backend" in warnings[0]


# ------------------------------------------------------------------ 6. connection refused


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


# ------------------------------------------------------------------ 2. a hard deadline per attempt


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


# ------------------------------------------------------------------ 3. prompt interrupt and abort


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


# ------------------------------------------------------------------ 4. bounded response memory

_MEMORY_PROBE = (
    PEAK_RSS
    + """
import asyncio, json, sys

from hf_infer_core import AsyncEmbeddingClient, EmbeddingClient, InferenceEndpoint, ResponseFormatError

url, kind, mode = sys.argv[1], sys.argv[2], sys.argv[3]
endpoint = InferenceEndpoint.from_url(url, "k", requests_per_minute=10**6)
factory = EmbeddingClient if mode == "sync" else AsyncEmbeddingClient
client = factory(endpoint, max_retries=0, timeout=60.0)

def run(texts):
    result = client.embed(texts)
    return asyncio.run(result) if mode == "async" else result

run(["warm up"])  # imports, connections and buffers exist before the baseline
before = reset_peak()
try:
    run([kind])
    outcome = "no error"
except ResponseFormatError as err:
    outcome = f"ResponseFormatError: {err}"
after = peak()
print(json.dumps({"growth": after - before, "outcome": outcome}))
"""
)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("kind", ["gzip_bomb", "huge", "huge_chunked"])
def test_response_memory_is_bounded(kind: str, mode: str) -> None:

    from hf_infer_core.protocol._body import default_response_limit

    # 1 MB inflating to 1 GiB; a 400 MB body, with and without a Content-Length.
    answers = {"gzip_bomb": "gzip_bomb", "huge": "huge", "huge_chunked": "huge_chunked"}
    with fake_endpoint(by_text=answers) as server:
        probe: dict[str, Any] = run_probe(_MEMORY_PROBE, server.embed_url, kind, mode)
    assert probe["outcome"].startswith("ResponseFormatError"), probe
    assert "max_response_bytes" in probe["outcome"]
    assert "inputs [0]" in probe["outcome"]  # the error names the batch
    limit = default_response_limit(1)
    # The limit plus a constant (interpreter, one socket read, allocator slack): 32 MiB.
    assert probe["growth"] < limit + (32 << 20), f"peak RSS grew by {probe['growth'] / 2**20:.0f} MiB"


# ------------------------------------------------------------------ 5. per-event-loop state is freed


def _open_fds() -> int:
    import os

    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self/fd"), reason="counts file descriptors in /proc")
def test_state_for_closed_event_loops_is_released() -> None:
    import asyncio
    import gc
    import warnings

    gc.collect()  # what earlier tests left is collected now, not counted against this test
    with fake_endpoint() as server:
        model = HFInferEmbeddings(url=server.embed_url, api_key="k", requests_per_minute=10**7, max_concurrency=4)
        texts = [f"text {i}" for i in range(16)]
        records: list[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = records.append  # type: ignore[method-assign]
        logging.getLogger("asyncio").addHandler(handler)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                baseline = _open_fds()
                for _ in range(100):
                    loop = asyncio.new_event_loop()
                    vectors = loop.run_until_complete(model.aembed_documents(texts))
                    loop.close()
                    assert vectors == [expected_vector(t) for t in texts]
                del loop
                gc.collect()
                leaked = _open_fds() - baseline
                table = len(model._session.aclient._by_loop)
        finally:
            logging.getLogger("asyncio").removeHandler(handler)
    assert leaked <= 2, f"{leaked} file descriptors left open after 100 loops"
    assert table == 0, f"{table} per-loop entries kept"
    # Only this test's own connections count: sockets other tests left behind may be collected
    # during it and warn too.
    port = server.url.rsplit(":", 1)[1]
    unclosed = [r.getMessage() for r in records if "Unclosed" in r.getMessage()]
    unclosed += [str(w.message) for w in caught if "nclosed" in str(w.message) and port in str(w.message)]
    assert unclosed == []
