"""What the threaded driver keeps per call: abort flags, a stream's batches, a Parallel step's shared state.

The client's worker threads (``max_concurrency`` at most, reused across calls) run the flows; a
call's :class:`Abort` flag stops its flows before their next request, and is how a failure or
Ctrl-C in one place stops the rest at once.
"""

from __future__ import annotations

import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

from ..protocol._steps import Flow, Parallel

__all__ = ["IN_WORKER", "Abort", "Aborted", "Call", "Shared", "as_worker"]

T = TypeVar("T")


class Aborted(Exception):
    """Another batch of the same call failed; this one stops before its next request."""


class Abort:
    """A call's abort flag; setting it sets its children's (the flows a :class:`Parallel` step runs).

    A child's own failure sets only the child: the flow that asked for the step decides what it
    means (a missing ``/tokenize`` is no failure of the call).
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._children: weakref.WeakSet[Abort] = weakref.WeakSet()

    def child(self) -> Abort:
        child = Abort()
        self._children.add(child)
        if self.is_set():
            child.set()
        return child

    def set(self) -> None:
        self._event.set()
        for child in list(self._children):
            child.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        return self._event.wait(seconds)


class Call:
    """One public call in the sync driver: its abort flag and, for a stream, its input and batches in flight."""

    def __init__(self, texts: Iterator[str] | None = None, abort: Abort | None = None) -> None:
        self.abort = abort or Abort()
        self.texts: Iterator[str] = texts if texts is not None else iter(())
        self.started: deque[Future[Any]] = deque()

    def child(self) -> Call:
        return Call(abort=self.abort.child())

    def stop(self) -> None:
        self.abort.set()
        for future in self.started:
            future.cancel()  # not started yet: never will be


# Set in the client's worker threads: a Parallel step asked for there is run partly by the
# thread itself, so a pool of max_concurrency threads never waits on itself.
IN_WORKER = threading.local()


def as_worker(run: Callable[[], T]) -> T:
    IN_WORKER.active = True
    return run()


class Shared:
    """A Parallel step's shared state: the flows left, those running, the first failure."""

    def __init__(self, step: Parallel, call: Call) -> None:
        self.step = step
        self.call = call
        self.results: list[Any] = [None] * step.size
        self.queue = enumerate(step.flows)
        self.cond = threading.Condition()
        self.exhausted = False
        self.running = 0
        self.workers = 0  # threads working on these flows (the caller's own included, when nested)
        self.failures: list[BaseException] = []

    def more_workers(self, wanted: int) -> int:
        """How many workers to add to reach ``wanted`` (counted as added), while flows may be left."""
        with self.cond:
            more = 0 if self.exhausted or self.call.abort.is_set() else max(0, wanted - self.workers)
            self.workers += more
            return more

    def take(self) -> tuple[int, Flow[Any]] | None:
        with self.cond:
            item = None if self.exhausted or self.call.abort.is_set() else next(self.queue, None)
            if item is None:
                self.exhausted = True
                self.cond.notify_all()
            else:
                self.running += 1
            return item

    def finished(self, failure: BaseException | None = None) -> None:
        with self.cond:
            self.running -= 1
            if failure is not None:
                self.failures.append(failure)
                self.call.abort.set()
            self.cond.notify_all()

    def settled(self) -> bool:
        """Every flow done, or one failed (the others' requests in flight are not waited for)."""
        return bool(self.failures) or (self.exhausted and self.running == 0)
