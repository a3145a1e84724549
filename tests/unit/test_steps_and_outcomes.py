"""The drivers perform the steps as typed, refuse what is not a step, and decide an attempt's outcome once."""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from hf_infer_core import ClientClosedError, ResponseFormatError, TimeoutError
from hf_infer_core.drivers._httpx import attempt_outcome
from hf_infer_core.protocol._fanout import Fanout
from hf_infer_core.protocol._steps import Emit, Flow, HttpResult, Parallel, Sleep, ask
from langchain_hf_infer import HFInferEmbeddings

from .fakes import DRIVERS, answer, build

# ------------------------------------------------------------------ an unknown step is a TypeError


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

    def counter_request() -> Any:
        yield ["a"]

    def emit_alone() -> Any:
        yield Emit([1])
        return None

    def run(bad: Any) -> None:
        result = client._run(bad)
        if asyncio.iscoroutine(result):
            asyncio.run(result)

    with pytest.raises(TypeError, match="'not a step', which is not a step this driver performs"):
        run(flow())
    # Something that is not a step at all (a fitting counter's request, say) is named, never
    # performed as another (it once ended in IndexError).
    with pytest.raises(TypeError, match=r"\['a'\].*\(list\)"):
        run(counter_request())
    with pytest.raises(RuntimeError, match=r"outside a stream|asked for a step"):
        run(emit_alone())


# ------------------------------------------------------------------ policy decided once


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
        await old._wire.http()  # this loop's connections
        emb.batch_size = 9
        new = emb._session.aclient
        assert loop in old._wire._by_loop and loop not in new._wire._by_loop  # they move, so not from a call in flight
    idle = emb._session.aclient
    await idle._wire.http()
    emb.batch_size = 10
    assert loop in emb._session.aclient._wire._by_loop and loop not in idle._wire._by_loop  # an idle client's move
    await emb.aclose()
