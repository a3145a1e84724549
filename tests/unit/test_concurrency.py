"""The adaptive concurrency limit's decisions, on an injected clock and a simulated endpoint.

The endpoint is a discrete-event model of a TEI server: ``slots`` requests served at once, each
for ``latency`` seconds, a FIFO queue of at most ``queue`` requests beyond them, a 429 for the
next. The client is closed-loop (it always has a batch to send), as a large ``embed_documents``
is. Nothing sleeps: the clock is the simulation's.
"""

from __future__ import annotations

import heapq
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from hf_infer_core.limits._concurrency import AdaptiveLimit, Signal, Ticket


@dataclass
class Endpoint:
    phases: list[tuple[float, int]]  # (start time, slots from then on)
    latency: float = 0.025
    queue: int = 1_000
    cold_until: float = 0.0  # a replica loading: every request refused (503) before then
    # The client's own time to read an answer (take it off the socket, decode it), one at a
    # time as one event loop does: answers that arrive together are seen one after another.
    client_time: float = 0.0
    client_free: float = 0.0
    reading: list[tuple[float, int, Ticket]] = field(default_factory=list)
    now: float = 0.0
    busy: int = 0
    waiting: deque[Ticket] = field(default_factory=deque)
    events: list[tuple[float, int, Ticket]] = field(default_factory=list)
    done: list[tuple[float, str]] = field(default_factory=list)  # (time, "ok" | "overload")
    in_flight_max_after: dict[float, int] = field(default_factory=dict)
    counter: int = 0

    def slots(self) -> int:
        return [slots for start, slots in self.phases if start <= self.now][-1]

    def arrive(self, ticket: Ticket) -> bool:
        """False: refused at once (429, or 503 while loading)."""
        if self.now < self.cold_until:
            return False
        if self.busy < self.slots():
            self._serve(ticket)
            return True
        if len(self.waiting) >= self.queue:
            return False
        self.waiting.append(ticket)
        return True

    def refusal(self) -> Signal:
        """What the drivers make of the last refusal: a 503 while loading, else a 429."""
        return "unavailable" if self.now < self.cold_until else "overload"

    def _serve(self, ticket: Ticket) -> None:
        self.busy += 1
        self.counter += 1
        heapq.heappush(self.events, (self.now + self.latency, self.counter, ticket))

    def finish_next(self) -> Ticket:
        self.now, _, ticket = heapq.heappop(self.events)
        self.busy -= 1
        while self.waiting and self.busy < self.slots():
            self._serve(self.waiting.popleft())
        return ticket

    def next_answer(self) -> Ticket:
        """The next answer the client has read: each one finished, then read in turn for ``client_time``."""
        while self.client_time:
            if self.reading and (not self.events or self.reading[0][0] <= self.events[0][0]):
                self.now, _, ticket = heapq.heappop(self.reading)
                return ticket
            ticket = self.finish_next()
            self.client_free = max(self.now, self.client_free) + self.client_time
            self.counter += 1
            heapq.heappush(self.reading, (self.client_free, self.counter, ticket))
        return self.finish_next()


def run(endpoint: Endpoint, until: float, limit: AdaptiveLimit | None = None) -> tuple[AdaptiveLimit, list[int]]:
    """Drive a closed-loop client against ``endpoint`` until ``until``; the limit and in-flight counts seen."""
    limit = limit or AdaptiveLimit(64, clock=lambda: endpoint.now)
    in_flight: list[int] = []

    def fill() -> None:
        while (ticket := limit.acquire()) is not None:
            if not endpoint.arrive(ticket):
                endpoint.done.append((endpoint.now, "overload"))
                limit.release(ticket, endpoint.refusal())
            in_flight.append(limit.in_flight)

    fill()
    while endpoint.now < until:
        if not endpoint.events and not endpoint.reading:  # every slot parked after overload answers
            endpoint.now += limit.retry_in() or 0.001
            fill()
            continue
        ticket = endpoint.next_answer()
        limit.release(ticket, "ok")
        endpoint.done.append((endpoint.now, "ok"))
        fill()
    return limit, in_flight


def throughput(endpoint: Endpoint, start: float, end: float) -> float:
    """Fraction of the endpoint's capacity used between ``start`` and ``end`` (one slots value in it)."""
    ok = sum(1 for t, kind in endpoint.done if start <= t < end and kind == "ok")
    endpoint.now = start
    capacity = endpoint.slots() * (end - start) / endpoint.latency
    return ok / capacity


def test_it_finds_a_fixed_endpoints_capacity_and_keeps_a_small_queue() -> None:
    endpoint = Endpoint([(0.0, 8)])
    limit, _ = run(endpoint, 20.0)
    assert throughput(endpoint, 1.0, 20.0) >= 0.97
    assert 10 <= limit.limit <= 14  # 8 slots, and a queue of about half of them
    assert limit.base_latency == pytest.approx(0.025)


def test_it_follows_an_endpoint_that_scales_two_eight_four() -> None:
    endpoint = Endpoint([(0.0, 2), (10.0, 8), (20.0, 4)], queue=8)
    run(endpoint, 30.0)
    for start, end in [(0.0, 10.0), (10.0, 20.0), (20.0, 30.0)]:
        assert throughput(endpoint, start + 5.0, end) >= 0.9  # within 5 s of each change
        assert throughput(endpoint, start + 1.0, end) >= 0.9  # in fact within a second
    overloads = sum(1 for _, kind in endpoint.done if kind == "overload")
    assert overloads <= 0.01 * len(endpoint.done)


def test_a_cold_start_refusing_every_request_sets_no_ceiling() -> None:
    """A replica loading answers 503 to a lone request: that says nothing of how many it takes at once.

    Taken as a ceiling of one, those 503s held the limit at one and then let it climb by one
    every few rounds: on the benchmark's changing endpoint 0.87 of a fixed 8.
    """
    endpoint = Endpoint([(0.0, 2), (5.0, 8), (10.0, 4)], queue=8, cold_until=0.5)
    limit, _ = run(endpoint, 10.0)
    assert throughput(endpoint, 1.0, 5.0) >= 0.9
    assert throughput(endpoint, 6.0, 10.0) >= 0.9  # the added replicas found within a second
    assert limit.limit >= 10
    run(endpoint, 15.0, limit)
    assert throughput(endpoint, 11.0, 15.0) >= 0.9


def test_the_clients_own_time_per_answer_does_not_end_slow_start_at_the_default() -> None:
    """The client takes 3 ms to read each answer: at four in flight that reads as a queue.

    Slow start ended at the first queue it saw, and eight slots were then reached one request a
    round (0.91 of them from 0.1 s to 0.3 s); doubling while the rate of answers grows fills them
    at once, and the overshoot is given back.
    """
    endpoint = Endpoint([(0.0, 8)], client_time=0.003)
    limit, _ = run(endpoint, 0.3)
    assert throughput(endpoint, 0.1, 0.3) >= 0.95
    run(endpoint, 3.0, limit)
    assert throughput(endpoint, 1.0, 3.0) >= 0.97
    assert 10 <= limit.limit <= 16  # the slots and a queue of about half of them, not the 32 it tried


def test_in_flight_stays_under_twice_the_slots() -> None:
    endpoint = Endpoint([(0.0, 2), (10.0, 8), (20.0, 4)])
    limit = AdaptiveLimit(64, clock=lambda: endpoint.now)
    seen: list[tuple[float, int]] = []
    original = limit.acquire

    def acquire(waiter: object = None) -> Ticket | None:
        ticket = original()
        if ticket is not None:
            seen.append((endpoint.now, limit.in_flight))
        return ticket

    limit.acquire = acquire  # type: ignore[method-assign]
    run(endpoint, 30.0, limit)
    for at, in_flight in seen:
        if at < 2.0:
            continue
        endpoint.now = at
        slots = endpoint.slots()
        # a drop in capacity is seen a round later (a round is two limits' worth of answers,
        # each slower now): allow that
        before = [s for start, s in endpoint.phases if start <= at - 0.5][-1]
        assert in_flight <= 2 * max(slots, before), (at, in_flight, slots)


def found(value: int, now: list[float]) -> AdaptiveLimit:
    """A limit as if it had settled at ``value`` (idle latency 25 ms), on the clock ``now[0]``."""
    limit = AdaptiveLimit(64, clock=lambda: now[0])
    limit._limit = limit._saved = value
    limit._probing = limit._slow_start = False
    limit._base = 0.025
    return limit


def test_an_overload_answer_halves_the_limit_once_per_round() -> None:
    now = [0.0]
    limit = found(16, now)
    tickets = [limit.acquire() for _ in range(16)]
    assert all(t is not None for t in tickets)
    now[0] = 0.03
    limit.release(tickets[0], "overload")  # type: ignore[arg-type]
    assert limit.limit == 8
    for ticket in tickets[1:]:  # the same burst's other refusals: sent before the cut, not counted
        limit.release(ticket, "overload")  # type: ignore[arg-type]
    assert limit.limit == 8


def test_an_overload_answer_keeps_its_slot_empty_for_a_while() -> None:
    now = [0.0]
    limit = found(2, now)
    first, second = limit.acquire(), limit.acquire()
    assert first is not None and second is not None
    limit.release(first, "overload")  # a 429 answered at once
    assert limit.limit == 1
    limit.release(second, "ok")
    assert limit.acquire() is None  # the refused slot is parked: nobody is refused in turn at once
    assert limit.retry_in() == pytest.approx(0.1)
    now[0] = 0.1
    assert limit.acquire() is not None
    assert limit.retry_in() is None


def test_a_slower_endpoint_is_learnt_by_the_next_probe() -> None:
    endpoint = Endpoint([(0.0, 8)])
    limit, _ = run(endpoint, 5.0)
    assert limit.base_latency == pytest.approx(0.025)
    endpoint.latency = 0.050  # longer texts, or a busier model: the idle latency doubles
    run(endpoint, 25.0, limit)
    assert limit.base_latency == pytest.approx(0.050)
    assert 10 <= limit.limit <= 14  # not shrunk to half by a queue it imagines
    assert throughput(endpoint, 15.0, 25.0) >= 0.95


def test_a_caller_that_does_not_fill_the_limit_does_not_grow_it() -> None:
    now = [0.0]
    limit = AdaptiveLimit(64, clock=lambda: now[0])
    for _ in range(200):  # one request at a time, answered in 25 ms
        ticket = limit.acquire()
        assert ticket is not None
        now[0] += 0.025
        limit.release(ticket, "ok")
    assert limit.limit <= 4  # the floor (the fixed default, issue #27 case 11), and no more


def test_the_maximum_bounds_the_limit() -> None:
    endpoint = Endpoint([(0.0, 100)])
    limit, in_flight = run(endpoint, 5.0, AdaptiveLimit(16, clock=lambda: endpoint.now))
    assert limit.limit == 16
    assert max(in_flight) == 16


def test_waiters_are_woken_as_slots_free_and_a_cancelled_waiter_passes_its_turn_on() -> None:
    limit = AdaptiveLimit(64, clock=lambda: 0.0)  # the first round allows one request
    first = limit.acquire()
    assert first is not None
    woken: list[str] = []

    def a() -> None:
        woken.append("a")

    def b() -> None:
        woken.append("b")

    assert limit.acquire(a) is None
    assert limit.acquire(b) is None
    limit.release(first, "none")
    assert woken == ["a"]  # one slot freed: one waiter told
    limit.cancel(a)  # "a" was cancelled after being told, before taking the slot
    assert woken == ["a", "b"]  # ... so the slot goes to the next instead of being lost


def test_changes_are_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    endpoint = Endpoint([(0.0, 8)])
    with caplog.at_level(logging.DEBUG, logger="hf_infer_core"):
        run(endpoint, 2.0)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("concurrency")]
    assert lines and "1 -> 4 (base latency 25.0 ms)" in lines[0]  # one request alone, then the old default


def test_what_an_answer_says_of_the_endpoints_load() -> None:
    from hf_infer_core import TimeoutError, TransportError
    from hf_infer_core.drivers._client import load_signal
    from hf_infer_core.protocol._steps import HttpResult

    assert load_signal(HttpResult(200, b"[]")) == "ok"
    for status in (429, 424):  # TEI's full queue, a failed backend
        assert load_signal(HttpResult(status, b"")) == "overload"
    assert load_signal(HttpResult(503, b"")) == "unavailable"  # a replica loading: no room for even one
    for status in (400, 401, 413, 422, 500):  # about the request, or not about load
        assert load_signal(HttpResult(status, b"")) == "none"
    assert load_signal(TimeoutError("no answer in time")) == "overload"
    assert load_signal(TransportError("connection refused")) == "none"
    assert load_signal(None) == "none"  # the attempt never finished (Ctrl-C, cancelled)
    from hf_infer_core.protocol._steps import Send

    info = Send(body=b"", indices=(), attempt=1, url="http://127.0.0.1:9/info")
    batch = Send(body=b"{}", indices=(0, 1), attempt=1, url="http://127.0.0.1:9/embed")
    assert load_signal(HttpResult(200, b"{}"), info) == "none"  # discovery: no batch's latency
    assert load_signal(HttpResult(200, b"[]"), batch) == "ok"
    assert load_signal(HttpResult(429, b""), info) == "overload"  # a refusal is one, whatever was asked


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_discovery_answers_teach_the_limit_nothing(driver: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``/info`` answers in a few milliseconds: taken as a batch's latency, it was the idle latency.

    Then every batch looked queued ten times over, and the limit stayed at its floor (4) on an
    endpoint of eight slots: 0.40 of its capacity.
    """
    import asyncio
    import json

    import httpx

    from .fakes import build, vector_for

    signals: list[tuple[str, str]] = []
    paths: list[str] = []
    original = AdaptiveLimit.release

    def release(self: AdaptiveLimit, ticket: Ticket, signal: Signal) -> None:
        signals.append((paths[-1], signal))
        original(self, ticket, signal)

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        if request.url.path.endswith("/info"):
            return httpx.Response(200, json={"model_id": "fake/model", "max_client_batch_size": 2})
        return httpx.Response(200, json=[vector_for(t) for t in json.loads(request.content)["inputs"]])

    monkeypatch.setattr(AdaptiveLimit, "release", release)
    texts = ["a", "b", "c", "d"]
    client = build(driver, handler, batch_size=2, max_concurrency="auto", max_retries=0)
    if driver == "sync":
        with client:
            assert client.embed(texts) == [vector_for(t) for t in texts]
    else:

        async def run() -> None:
            async with client:
                assert await client.embed(texts) == [vector_for(t) for t in texts]

        asyncio.run(run())
    assert ("/info", "none") in signals
    assert [signal for path, signal in signals if path.endswith("/embed")] == ["ok", "ok"]


@pytest.mark.parametrize("bad", [0, 1025, True, "4", 4.0, "AUTO", None])
def test_max_concurrency_is_a_count_or_auto(bad: object) -> None:
    from hf_infer_core import ConfigError, EmbeddingOptions
    from langchain_hf_infer import HFInferEmbeddings

    assert EmbeddingOptions(max_concurrency="auto").window == 64  # max_concurrency_limit
    assert EmbeddingOptions(max_concurrency="auto", max_concurrency_limit=8).window == 8
    assert EmbeddingOptions(max_concurrency=12).window == 12
    with pytest.raises(ConfigError, match=r"\[max_concurrency\] must be an integer from 1 to 1024, or \"auto\""):
        EmbeddingOptions.build(None, {"max_concurrency": bad})  # type: ignore[typeddict-item]
    adapter = HFInferEmbeddings(url="http://127.0.0.1:9/embed", api_key="k", max_concurrency="auto")
    assert adapter.max_concurrency == "auto"
    with pytest.raises(ConfigError, match="max_concurrency"):
        HFInferEmbeddings(url="http://127.0.0.1:9/embed", api_key="k", max_concurrency=bad)  # type: ignore[arg-type]


def test_a_slowdown_not_caused_by_load_does_not_pin_the_limit_at_one() -> None:
    """Issue #27, case 11: texts got longer (4x the latency, same slots); "auto" stuck at 1 in flight."""
    endpoint = Endpoint([(0.0, 8)])
    limit, _ = run(endpoint, 10.0)
    endpoint.latency = 0.1  # every request now takes four times as long, whatever the load
    run(endpoint, 60.0, limit)
    assert limit.limit >= 8, limit.limit  # the slots are still there, and used again
    assert throughput(endpoint, 40.0, 60.0) >= 0.85


def test_it_never_goes_below_the_default_setting_without_an_overload_answer() -> None:
    """A fast endpoint whose latency the client's own pauses inflate: never fewer in flight than the default 4."""
    endpoint = Endpoint([(0.0, 64)], latency=0.002)
    limit = AdaptiveLimit(64, clock=lambda: endpoint.now)
    limits: list[int] = []
    for step in range(5000):
        ticket = limit.acquire()
        if ticket is not None:
            endpoint.now += 0.004 if step % 3 else 0.0  # the client, not the endpoint, is the bottleneck
            limit.release(ticket, "ok")
        limits.append(limit.limit)
    below = sum(1 for value in limits[10:] if value < 4)
    assert below <= 0.05 * len(limits), below  # only the idle-latency probes' rounds


def overloads(endpoint: Endpoint) -> int:
    return sum(1 for _, kind in endpoint.done if kind == "overload")


@pytest.mark.parametrize(("slots", "queue", "best_fixed"), [(2, 1, 3), (1, 0, 1), (3, 1, 4), (4, 2, 6)])
def test_a_small_endpoint_that_sheds_load_is_filled_without_being_overloaded(
    slots: int, queue: int, best_fixed: int
) -> None:
    """TEI's --max-concurrent-requests: beyond ``slots + queue`` in flight, a 429 "Model is overloaded".

    Halving on each refusal took the limit from 4 (the fixed default) to 2 on two slots and a
    queue of one, then back up to 4 and a refusal, round after round: 0.66 of the capacity, 12% refused.
    """
    endpoint = Endpoint([(0.0, slots)], queue=queue)
    limit, _ = run(endpoint, 30.0)
    assert throughput(endpoint, 1.0, 30.0) >= 0.95
    assert overloads(endpoint) <= 0.01 * len(endpoint.done), overloads(endpoint)
    assert limit.limit <= best_fixed  # what the endpoint takes without refusing


def test_an_overload_answer_goes_back_to_the_last_limit_that_ran_a_round_clean() -> None:
    now = [0.0]
    limit = found(8, now)
    clean = []
    for _ in range(2):  # whole rounds, nothing refused, nothing waiting: the limit grows each time
        clean.append(limit.limit)
        tickets = [limit.acquire() for _ in range(limit.limit)]
        now[0] += 0.025
        for ticket in tickets:
            assert ticket is not None
            limit.release(ticket, "ok")
    grown = limit.limit
    assert grown > clean[-1] > clean[0] == 8
    tickets = [limit.acquire() for _ in range(grown)]
    now[0] += 0.01
    limit.release(tickets[0], "overload")  # type: ignore[arg-type]
    assert limit.limit == clean[-1]  # the last limit that ran clean, not half the refused one
    assert limit.limit != grown // 2


def test_a_ceiling_set_by_a_refusal_is_probed_back_up_when_replicas_are_added() -> None:
    endpoint = Endpoint([(0.0, 2), (10.0, 8), (20.0, 4)], queue=1)
    run(endpoint, 30.0)
    for start in (0.0, 10.0, 20.0):
        assert throughput(endpoint, start + 1.0, start + 10.0) >= 0.95
    assert overloads(endpoint) <= 0.01 * len(endpoint.done)


def _ceiling_of_three(limit: AdaptiveLimit) -> None:
    limit._ceiling = 3  # refused at 3 while the other client held the queue


@pytest.mark.parametrize(
    ("joins", "setup"),
    [
        (0.0, None),  # both start together
        (5.0, None),  # the second joins a client that had the whole endpoint for 5 s
        (0.0, _ceiling_of_three),  # one was refused early, while the other's requests filled the queue
    ],
)
def test_two_clients_on_one_endpoint_share_it_about_evenly(
    joins: float, setup: Callable[[AdaptiveLimit], None] | None
) -> None:
    """Two processes (two limits) on one 8-slot endpoint: each gets 0.4-0.6 of it, together all of it.

    With a queue proportional to each one's share, any split was a fixed point: one that started
    behind (or under a ceiling another's queue had set) stayed there, 0.34 and 0.66.
    """
    endpoint = Endpoint([(0.0, 8)], queue=8)
    limits = [AdaptiveLimit(64, clock=lambda: endpoint.now) for _ in range(2)]
    if setup is not None:
        setup(limits[0])
    shares = two_clients(endpoint, limits, joins, since=joins + 5.0, until=joins + 30.0)
    assert all(0.4 <= share <= 0.6 for share in shares), shares
    assert sum(shares) >= 0.95
    assert overloads(endpoint) <= 0.01 * len(endpoint.done)


def test_two_settled_clients_five_and_nine_apart_converge() -> None:
    """Whole limits had a dead zone: 5 and 9 (or 4 and 10) on 8 slots were each their own target.

    round(1.5 x 8 x 5/14) + 1 = 5 and round(1.5 x 8 x 9/14) + 1 = 9; the fraction rounding drops
    is now carried to the next round, so the Vegas constant moves them to 7 and 7.
    """
    endpoint = Endpoint([(0.0, 8)], queue=8)
    limits = []
    for value in (5, 9):
        limit = found(value, [0.0])
        limit._clock = lambda: endpoint.now
        limit._next_probe = 1e9  # the sharing alone: no probe in this test
        limit._round_start = limit._last = 0.0
        limits.append(limit)
    shares = two_clients(endpoint, limits, 0.0, since=3.0, until=10.0)
    assert all(0.45 <= share <= 0.55 for share in shares), shares
    assert overloads(endpoint) <= 0.01 * len(endpoint.done)


def two_clients(
    endpoint: Endpoint, limits: list[AdaptiveLimit], joins: float, since: float, until: float
) -> list[float]:
    """Two closed-loop clients on ``endpoint`` (the second from ``joins``): each one's share from ``since`` to ``until``."""
    owner: dict[int, int] = {}
    done: list[tuple[float, int]] = []

    def fill(i: int) -> None:
        if endpoint.now < (0.0, joins)[i]:
            return
        while (ticket := limits[i].acquire()) is not None:
            owner[id(ticket)] = i
            if not endpoint.arrive(ticket):
                endpoint.done.append((endpoint.now, "overload"))
                limits[i].release(ticket, "overload")

    fill(0)
    fill(1)
    while endpoint.now < until:
        if not endpoint.events:
            waits = (limits[0].retry_in(), limits[1].retry_in(), joins - endpoint.now if endpoint.now < joins else None)
            endpoint.now += min(x for x in (*waits, 0.001) if x is not None and x > 0)
        else:
            ticket = endpoint.finish_next()
            i = owner.pop(id(ticket))
            limits[i].release(ticket, "ok")
            endpoint.done.append((endpoint.now, "ok"))
            done.append((endpoint.now, i))
        fill(0)
        fill(1)
    capacity = 8 * (until - since) / endpoint.latency
    return [sum(1 for t, who in done if t >= since and who == i) / capacity for i in (0, 1)]


def test_a_refusal_at_one_in_flight_keeps_one_in_flight() -> None:
    now = [0.0]
    limit = found(1, now)
    ticket = limit.acquire()
    assert ticket is not None
    limit.release(ticket, "overload")
    assert limit.limit == 1
    for _ in range(20):  # rounds after it: the ceiling of 1 never takes the limit to 0
        now[0] += 1.0
        ticket = limit.acquire()
        assert ticket is not None
        now[0] += 0.025
        limit.release(ticket, "ok")
        assert limit.limit >= 1


def test_a_small_endpoint_that_announces_its_maximum_is_never_refused() -> None:
    """TEI's ``/info`` says ``max_concurrent_requests``: "auto" stays under it from the first round.

    Learnt from a refusal, the first 429 was paid in every new process, and the quiet rounds then
    tried one more after 16, 32, 64, ... rounds (1.2% of a short run's requests refused).
    """
    endpoint = Endpoint([(0.0, 2)], queue=1)
    limit = AdaptiveLimit(64, clock=lambda: endpoint.now)
    limit.announce(3)  # two slots and a queue of one
    run(endpoint, 60.0, limit)
    assert overloads(endpoint) <= 0.01 * len(endpoint.done)
    assert throughput(endpoint, 1.0, 60.0) >= 0.95
    assert limit.limit == 3


def test_an_announced_maximum_is_raised_when_nothing_waits_under_it() -> None:
    """Replicas behind one URL, each announcing its own maximum (2 here, 8 slots in all): found."""
    endpoint = Endpoint([(0.0, 8)], queue=8)
    limit = AdaptiveLimit(64, clock=lambda: endpoint.now)
    limit.announce(2)
    run(endpoint, 10.0, limit)
    assert throughput(endpoint, 5.0, 10.0) >= 0.9
    assert limit.limit >= 8


def test_an_announced_maximum_takes_the_limit_down_at_once_and_repeats_change_nothing() -> None:
    now = [0.0]
    limit = found(16, now)
    limit.announce(6)
    assert limit.limit == 6
    epoch = limit._epoch
    limit.announce(6)  # every call reads /info again: nothing moves
    assert (limit.limit, limit._epoch) == (6, epoch)
    limit.announce(100)  # a larger maximum is no ceiling over the one in force
    assert limit.limit == 6


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_the_clients_read_the_announced_maximum_from_info(driver: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import json

    import httpx

    from hf_infer_core.limits import _concurrency

    from .fakes import build, vector_for

    monkeypatch.setattr(_concurrency, "_SHARED", {})  # a limit of this test's own, as in a new process
    limits: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/info"):
            return httpx.Response(200, json={"model_id": "fake/model", "max_concurrent_requests": 2})
        return httpx.Response(200, json=[vector_for(t) for t in json.loads(request.content)["inputs"]])

    # Six batches: the first alone, then one round of four at 2. Rounds with nothing waiting raise
    # an announced maximum (replicas behind one URL), and at 32 batches four such rounds came
    # when the mock's instant answers made the idle latency the machine's noise (limit 3, not 2).
    texts = [f"text {i}" for i in range(12)]
    client = build(driver, handler, batch_size=2, max_concurrency="auto", max_retries=0)
    if driver == "sync":
        with client:
            client.embed(texts)
            limits.append(client.concurrency)
    else:

        async def run() -> None:
            async with client:
                await client.embed(texts)
                limits.append(client.concurrency)

        asyncio.run(run())
    assert limits == [2]  # the floor of 4 without it


@pytest.mark.parametrize(("said", "kept"), [(3, 3), (0, None), (-2, None), (True, None), ("8", None), (2.5, None)])
def test_only_a_positive_count_in_info_is_an_announced_maximum(said: object, kept: int | None) -> None:
    import json

    import httpx

    from .fakes import build

    client = build("sync", lambda request: httpx.Response(404), max_concurrency="auto")
    client._core.apply_info(json.dumps({"model_id": "m", "max_concurrent_requests": said}).encode())
    assert client._core.announced_concurrency == kept
    client.close()
