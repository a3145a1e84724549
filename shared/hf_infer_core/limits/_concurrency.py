"""How many requests to keep in flight, found and followed: ``max_concurrency="auto"``.

Nobody can know the right number in advance: an Inference Endpoint scales its replicas with
load, a TEI server queues up to ``max_concurrent_requests`` and then answers 429, a replica that
is starting answers 503. :class:`AdaptiveLimit` finds the number from the answers themselves,
and is shared by all the clients of one endpoint in the process.

The design, and why. Three established ideas, each for what it does best:

- **Capacity from delay, as BBR and TCP Vegas read it.** Each round (as many answers as the
  limit: about one latency) gives the mean latency ``rtt`` and the mean number in flight
  ``n`` (integrated over time). With the idle latency ``base``, ``busy = n * base / rtt`` is the
  slots the endpoint kept busy for us (Little's law; BBR's bandwidth-delay product) and
  ``n - busy`` waited in its queue. The limit is set to ``1.5 x busy + 1``: the slots, and a
  queue of half of them, so that a slot that frees finds the next request already there and the
  client's own pauses never leave the endpoint idle, while what is in flight stays about under
  twice the slots. The one more, as Vegas' constant queue, makes two clients of one endpoint
  converge to even shares (with a queue proportional to each one's share alone, every split
  is a fixed point), and so does the fraction rounding drops, carried to the next round
  (whole limits alone left 5 and 9 of 8 slots each at its own target). ``busy`` is
  remembered as the median of the last rounds, so one round slowed by the client itself (a
  garbage collection holds every answer in flight) does not lower it. The first round is one
  request alone, whose answer is the first idle latency, and the fixed default (4) follows at once. Then it doubles each round while the rate of answers
  (in flight / latency) grows by a quarter, as BBR's startup does, or nothing waits, and then
  grows by one while nothing waits: added replicas are found within rounds. Not the first queue
  seen: the client's own time per answer reads as one at four in flight, and eight slots were
  then reached one request a round (a fifth of a second-long call).
- **A fall in capacity, at once.** A round with more than 2.2 requests in flight per busy slot
  cuts the limit to ``1.5 x`` that round's ``busy``; if the next round confirms as few busy slots,
  the remembered ones are forgotten (after a pause of the client's own they come back at once).
- **The idle latency, as BBR's ProbeRTT measures it.** Vegas keeps the smallest latency ever
  seen, which never learns that the endpoint became slower (longer texts, a busier GPU); a
  minimum over a window slides up with its own queue. So every ``probe_interval`` seconds the
  limit drops to half the busy slots for one round, the queue drains, and that round's median
  latency is the new base. It costs about one round of throughput in ten seconds.
- **Overload answers, as TCP treats a loss, with a memory.** A 429 or a 424 (or an attempt
  that timed out) takes the limit back at once to the last limit a whole round ran at
  without a refusal (halved only when that is the one refused: the endpoint lost capacity), and
  its slot stays empty a moment: the endpoint said no. The refused limit becomes a ceiling, as
  TCP's ssthresh: the limit stays under it even when that is under the fixed floor of 4 (a TEI
  with two slots and a queue of one refuses a fourth request every time). After four rounds
  with nothing waiting just below it, or eight with a queue but no refusal (another client's
  requests may fill that queue), the ceiling is raised by one, and each raise refused again
  doubles the rounds its kind needs (4, 8, 16, ...), as a retransmission timer backs off: an
  endpoint that gained replicas is found, one that has no room pays a refusal rarely. A request
  refused alone, or a 503 (a replica loading or starting refuses one request as it does ten),
  parks its slot and teaches nothing: taken as a ceiling, a cold start's 503s held the limit at
  one for seconds. TEI's "Model is overloaded" is retried after a tenth of a second, not a
  second (``RetryPolicy.overload_backoff``): this limit already waits for room.
- **What the endpoint announces.** TEI's ``/info`` gives its ``max_concurrent_requests``, beyond
  which it answers 429. It is taken as a ceiling, as if a request beyond it had been refused, so
  the first refusal is never paid; but only rounds with nothing waiting raise it (more replicas
  behind one URL, each announcing its own maximum), never the quiet rounds that a queue shared
  with another client needs: a queue at the announced maximum is that maximum.

The alternatives weighed (Netflix's gradient limit, Vegas' own target): docs/reference.md.

Everything here is I/O-free and thread-safe: the drivers wait for a slot in their own way
(a thread on an event, a task on a future) and hand each answer back with :meth:`release`.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import SecretStr

from ._ratelimit import bucket_key

__all__ = ["AdaptiveLimit", "Signal", "Ticket", "shared_adaptive_limit"]

logger = logging.getLogger("hf_infer_core")

# What one answer says about load: "ok" (a latency to learn from), "unavailable" (503: a replica
# loading or starting, which refuses anything, however few), "overload" (429, 424,
# an attempt that timed out), "none" (a refused connection, a bad request: nothing about load).
Signal = Literal["ok", "unavailable", "overload", "none"]

# Requests kept in flight per slot the endpoint is seen to keep busy: the slots, and a queue of
# half of them, which hides the client's own pauses from the endpoint. BBR keeps twice its
# bandwidth-delay product in flight; a round's estimate of the busy slots is off by up to a
# third either way here, and twice would cross twice the slots (where TEI's queue may refuse).
GAIN = 1.5
CROWDED = 2.2  # more in flight than this per busy slot, two rounds running: capacity fell
RECENT_ROUNDS = 8
PROBE_INTERVAL = 10.0
CLEAR_ROUNDS = 4
QUIET_ROUNDS = 8
# Slow start goes on doubling while a round's rate of answers is this much over the last one's
# (BBR's startup: a quarter); one more doubling past the knee, at most, before it stops.
GROWTH = 1.25
FLOOR = 4  # the fixed default before "auto" became it: "auto" goes under it only on an overload answer


@dataclass(frozen=True, slots=True)
class Ticket:
    """One request's slot: when it was granted, and in which round."""

    started: float
    epoch: int


class AdaptiveLimit:
    """A concurrency limit that follows the endpoint's capacity (see the module docstring).

    Args:
        maximum: The largest limit (``max_concurrency_limit``).
        clock: Monotonic clock (injectable: tests drive it).
        probe_interval: Seconds between two measurements of the idle latency.
        name: Shown in the DEBUG log lines (the endpoint, never its key).
    """

    def __init__(
        self,
        maximum: int = 64,
        *,
        clock: Callable[[], float] = time.monotonic,
        probe_interval: float = PROBE_INTERVAL,
        name: str = "",
    ) -> None:
        self.maximum = maximum
        self._clock = clock
        self._probe_interval = probe_interval
        self._name = name
        self._lock = threading.Lock()
        self._waiters: deque[Callable[[], None]] = deque()
        self._in_flight = 0
        # Slots refused by an overload answer, held empty until these times (see release).
        self._parked: list[float] = []
        # The first round is one request alone: its answer is the idle latency (a first round of
        # four met a loading replica with four 503s, and queued on a server of one slot).
        self._limit = 1
        self._probing = True
        self._slow_start = True
        self._start_rate = 0.0  # the rate of answers of slow start's last round (answers per second)
        self._carry = 0.0  # the last round's target less the whole limit it became (see _learn)
        self._base: float | None = None
        self._epoch = 0
        self._samples: list[float] = []
        # The busy slots of the last rounds: their median is the capacity, so that a round the
        # client itself slowed does not lower it, nor one round's noise raise it.
        self._recent: deque[float] = deque(maxlen=RECENT_ROUNDS)
        self._over = False  # the last round was crowded beyond the capacity
        self._crowded_busy = 0.0
        # The round's requests-in-flight integrated over time, which Little's law pairs with the
        # mean latency (counted as each request starts, just after others ended, it is low).
        self._area = 0.0
        self._round_start = self._last = clock()
        self._next_probe = clock() + probe_interval
        self._saved = min(FLOOR, maximum)  # the limit to return to after a probe
        self._ceiling: int | None = None  # the last limit an overload answer refused (see _learn)
        self._good: int | None = None  # the last limit a whole round ran at without a refusal
        # Rounds just below the ceiling with nothing waiting ("clear") or a queue but no refusal
        # ("quiet"); how many of each raise it by one; which kind raised it last (None: none).
        self._clear_rounds = self._quiet_rounds = 0
        self._clear_needed, self._quiet_needed = CLEAR_ROUNDS, QUIET_ROUNDS
        self._raised: Literal["clear", "quiet"] | None = None
        self._announced: int | None = None  # the endpoint's own maximum (see announce) ...
        self._ceiling_announced = False  # ... is the ceiling, no refusal since

    @property
    def limit(self) -> int:
        """The number of requests allowed in flight now."""
        return self._limit

    @property
    def in_flight(self) -> int:
        """Requests holding a slot now."""
        return self._in_flight

    @property
    def base_latency(self) -> float | None:
        """The idle endpoint's latency as last measured (seconds), or ``None`` before the first answer."""
        return self._base

    # ------------------------------------------------------------------ slots

    def acquire(self, waiter: Callable[[], None] | None = None) -> Ticket | None:
        """A slot if one is free, else ``None`` and ``waiter`` is called once one may be (call again then).

        A waiter is not called when a parked slot frees (nothing happens then): wait at most
        :meth:`retry_in` seconds before calling again.
        """
        with self._lock:
            if self._parked:
                now = self._clock()
                self._parked = [until for until in self._parked if until > now]
            if self._in_flight + len(self._parked) < self._limit:
                self._account(self._clock())
                self._in_flight += 1
                return Ticket(self._clock(), self._epoch)
            if waiter is not None:
                self._waiters.append(waiter)
            return None

    def cancel(self, waiter: Callable[[], None]) -> None:
        """``waiter`` no longer wants a slot (aborted, cancelled); if it was woken, wake the next in its place."""
        with self._lock:
            try:
                self._waiters.remove(waiter)
                wake: list[Callable[[], None]] = []
            except ValueError:  # already woken: the slot it was told of must not be lost
                wake = self._wakeable()
        for callback in wake:
            callback()

    def retry_in(self) -> float | None:
        """Seconds until the next parked slot frees (``None``: none is parked)."""
        with self._lock:
            return max(0.0, min(self._parked) - self._clock()) if self._parked else None

    def announce(self, most: int) -> None:
        """The endpoint takes at most ``most`` at once (TEI's ``max_concurrent_requests``): a ceiling (module docstring).

        Every call tells it again: the same value changes nothing.
        """
        with self._lock:
            if most == self._announced:
                return
            self._announced = most
            if self._ceiling is None or self._ceiling > most + 1:
                self._ceiling, self._ceiling_announced = most + 1, True
                self._clear_rounds = self._quiet_rounds = 0
            if not self._probing and self._limit > self._ceiling - 1:  # a probe's return is clamped by _change
                self._change(self._ceiling - 1, f"the endpoint takes at most {most} at once")

    def release(self, ticket: Ticket, signal: Signal) -> None:
        """Give the slot back, with what its answer said about the endpoint's load.

        After an overload answer the slot stays empty a while (twice the base latency, at least
        0.1 s): the requests waiting for it would otherwise be refused in turn as fast as the
        endpoint can say no (a replica starting answers 503 in a millisecond), and the request
        refused waits out its retry anyway.
        """
        with self._lock:
            now = self._clock()
            self._account(now)
            self._in_flight -= 1
            if signal in ("overload", "unavailable"):
                self._parked.append(now + max(0.1, 2 * (self._base or 0.0)))
            self._learn(ticket, now - ticket.started, signal, now)
            wake = self._wakeable()
        for callback in wake:
            callback()

    def _account(self, now: float) -> None:
        self._area += self._in_flight * (now - self._last)
        self._last = now

    def _wakeable(self) -> list[Callable[[], None]]:
        free = self._limit - self._in_flight - len(self._parked)
        return [self._waiters.popleft() for _ in range(min(max(free, 0), len(self._waiters)))]

    # ------------------------------------------------------------------ decisions

    def _learn(self, ticket: Ticket, latency: float, signal: Signal, now: float) -> None:
        if signal in ("none", "unavailable") or ticket.epoch != self._epoch:
            return  # sent before the last change: its latency says nothing of the current limit
        if signal == "overload":
            self._refused()
            return
        self._samples.append(latency)
        if len(self._samples) < self._round_size():
            return
        if not self._probing:
            self._good = self._limit  # a round's answers, none refused (a refusal starts a new round)
        if self._probing:
            # No queue in a probe: the median is the idle latency, whatever one slow answer did
            # (the first probe's one answer may have paid for a connection: the rounds' own
            # means, the smallest of which is kept, bring that down).
            rtt = statistics.median(self._samples)
            self._base = rtt
            self._start_rate = 1 / max(rtt, 1e-9)  # one request in flight (only the first probe is in slow start)
            self._probing = False
            self._next_probe = now + self._probe_interval
            self._change(max(self._saved, 2), f"base latency {rtt * 1000:.1f} ms")
            return
        # The mean, not the median: with the in-flight mean it obeys Little's law even when
        # answers come in lockstep (a batch server's slots finishing together make latencies
        # bimodal, and a median flips between the modes).
        rtt = statistics.fmean(self._samples)
        base = self._base = min(self._base or rtt, rtt)
        elapsed = max(now - self._round_start, 1e-9)
        in_flight = self._area / elapsed
        # The slots the endpoint kept busy: its rate (in flight / latency, Little's law) times
        # the idle latency. Counting the round's answers gives the same rate, but with the
        # noise of which bursts fell inside the round.
        busy = in_flight * base / rtt
        if self._over and busy < 1.25 * self._crowded_busy:
            # The round after a crowded one found as few slots busy: the endpoint has fewer
            # slots than remembered (after the client's own pause, they come back at once).
            self._recent.clear()
        self._over = in_flight > CROWDED * busy
        self._crowded_busy = busy
        self._recent.append(busy)
        # More slots busy than remembered: follow at once (an endpoint that scales up is used
        # within rounds). Crowded once: follow this round's fewer slots now, but remember the
        # others a round longer (one crowded round is as often the client's own pause).
        remembered = statistics.median(self._recent)
        # Plus one, as Vegas' constant queue, and the fraction rounding drops carried to the next
        # round (error diffusion): both make two clients' shares converge (module docstring).
        exact = GAIN * (busy if self._over else max(busy, remembered)) + 1 + self._carry
        new = vegas = round(exact)
        rate = in_flight / max(rtt, 1e-9)
        used = in_flight >= 0.8 * self._limit
        if self._slow_start and in_flight >= 0.6 * self._limit and rate >= GROWTH * self._start_rate:
            # A quarter faster than at half the limit: the endpoint had room, whatever queue the
            # client's own time shows (which also leaves a slot empty a fifth of the time at 4).
            new = max(new, self._limit * 2)
            self._start_rate = rate
            self._unrefused_round(clear=in_flight - busy < 0.5)
        elif in_flight - busy < 0.5 and used:
            # Nothing waits and the limit was used: double it in slow start, then step up by one.
            new = max(new, self._limit * 2 if self._slow_start else self._limit + 1)
            self._start_rate = max(self._start_rate, rate)
            self._unrefused_round(clear=True)
        else:
            self._slow_start = False
            self._unrefused_round(clear=False)
        reason = (
            f"{busy:.1f} slots busy, {in_flight:.1f} in flight (latency {rtt * 1000:.1f} ms, base {base * 1000:.1f} ms)"
        )
        # Due even when the round was crowded: a crowded round at the floor is what an endpoint
        # that became slower for its own reasons (longer texts) looks like, and only a new idle
        # latency tells that apart from a queue (skipping it pinned the limit at 1 for good). The
        # probe's requests start only once those in flight fell under its limit: no queue of ours.
        if now >= self._next_probe:
            self._saved = min(new, self.maximum)
            self._probing, self._carry = True, 0.0
            # Half the slots seen busy, not half the limit: after a fall in capacity the limit
            # can still be twice the slots, and a probe with a queue would double the base.
            self._change(max(1, int(busy // 2)), "probing the base latency")
            return
        self._change(new, reason)
        self._carry = exact - vegas if self._limit == vegas else 0.0

    def _refused(self) -> None:
        """An overload answer to a request sent at the current limit."""
        current = self._saved if self._probing else self._limit
        if current <= 1 or self._base is None:
            # A request refused alone (the first is sent alone) says the endpoint takes nothing
            # now (a queue full of others' requests), not how many it takes at once: its slot
            # stays parked, and nothing is learnt.
            return
        self._probing = self._slow_start = False
        self._recent.clear()  # the capacity it remembered is gone
        # The refused limit, as TCP's ssthresh: without it, the busy slots overestimated by the
        # threaded driver's own time per request took the limit back to it every few rounds.
        # A raise refused again waits twice as long for its kind of evidence (a retransmission
        # timer's backoff): an endpoint without room pays a refusal rarely, and one that gains
        # replicas is still found within clear rounds.
        if self._raised == "clear":
            self._clear_needed *= 2
        elif self._raised == "quiet":
            self._quiet_needed *= 2
        self._ceiling = current
        self._ceiling_announced = False
        self._clear_rounds = self._quiet_rounds = 0
        self._raised = None
        # Back to the last limit a whole round ran at without a refusal, as the endpoint
        # answered it then; halved only when that is the limit refused now (the endpoint
        # lost capacity since). Halving every time took a TEI with two slots and a queue of
        # one (refusing beyond three) from four to two, then back up, round after round.
        good = self._good
        self._good = None
        self._change(good if good is not None and good < current else max(1, current // 2), "overload answer")

    def _unrefused_round(self, *, clear: bool) -> None:
        """A round without a refusal: after enough of them just below the ceiling, raise it by one.

        Not after one round: the first after a refusal runs with its slot parked, and a round
        whose answers came in step shows no queue that is there. Rounds with a queue count too,
        more slowly: another client's requests wait in it as well, and a ceiling raised only
        when nothing waits kept a client that was refused once under its share for good.
        """
        if self._ceiling is None or self._limit < self._ceiling - 1 or (self._ceiling_announced and not clear):
            return
        if clear:
            self._clear_rounds += 1
        else:
            self._clear_rounds = 0
            self._quiet_rounds += 1
        if self._clear_rounds >= self._clear_needed:
            kind: Literal["clear", "quiet"] = "clear"
        elif self._quiet_rounds >= self._quiet_needed:
            kind = "quiet"
        else:
            return
        if self._raised is not None:  # the last raise held: capacity grew
            self._clear_needed, self._quiet_needed = CLEAR_ROUNDS, QUIET_ROUNDS
        self._ceiling += 1
        self._clear_rounds = self._quiet_rounds = 0
        self._raised = kind

    def _round_size(self) -> int:
        if self._base is None:
            return 1
        return 3 if self._probing else max(4, self._limit)

    def _change(self, new: int, reason: str) -> None:
        # Only the endpoint's own "no" (an overload answer) or a probe takes the limit under the
        # fixed default: latency alone also rises when the client is the bottleneck (its own
        # pauses hold answers), and a limit that follows it down starves the endpoint.
        floor = 1 if self._probing or reason == "overload answer" else min(FLOOR, self.maximum)
        if self._ceiling is not None:
            # Under the limit the endpoint refused, even when that is under the fixed default:
            # a small TEI (two slots, a queue of one) refuses a fourth request every time.
            floor = max(1, min(floor, self._ceiling - 1))
            # The return from a probe too: it once went back over the ceiling every ten seconds.
            new = min(new, self._ceiling - 1)
        new = max(floor, min(new, self.maximum))
        if not self._probing:
            self._saved = new
        if new != self._limit and logger.isEnabledFor(logging.DEBUG):
            logger.debug("concurrency %s: %d -> %d (%s)", self._name, self._limit, new, reason)
        if new != self._limit or self._probing:
            self._epoch += 1  # requests sent before a change say nothing of the new limit
        self._limit = new
        self._samples = []
        self._area = 0.0
        self._round_start = self._last = self._clock()


_SHARED: dict[tuple[str, int], AdaptiveLimit] = {}
_SHARED_LOCK = threading.Lock()


def shared_adaptive_limit(url: str, api_key: SecretStr | None, maximum: int, name: str) -> AdaptiveLimit:
    """The process-wide adaptive limit of the endpoint ``url`` (and key) with this ``maximum``."""
    key = (bucket_key(url, api_key), maximum)
    with _SHARED_LOCK:
        limit = _SHARED.get(key)
        if limit is None:
            limit = _SHARED[key] = AdaptiveLimit(maximum, name=name)
        return limit


def after_fork_in_child() -> None:
    """A forked child starts afresh: the parent's requests in flight are not the child's."""
    global _SHARED_LOCK
    _SHARED_LOCK = threading.Lock()
    _SHARED.clear()
