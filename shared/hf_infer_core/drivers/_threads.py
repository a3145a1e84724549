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

from ..protocol._fanout import Fanout
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
    """A Parallel step's :class:`~..protocol._fanout.Fanout` shared by threads: its lock, and a condition to wait on."""

    def __init__(self, step: Parallel[object], call: Call) -> None:
        self.fanout = Fanout(step)
        self.step = step
        self.call = call
        self.cond = threading.Condition()

    def more_workers(self, wanted: int) -> int:
        with self.cond:
            return self.fanout.more_workers(wanted, self.call.abort.is_set())

    def take(self) -> tuple[int, Flow[object]] | None:
        with self.cond:
            item = self.fanout.take(self.call.abort.is_set())
            if item is None:
                self.cond.notify_all()
            return item

    def finished(self, k: int, result: object) -> None:
        with self.cond:
            self.fanout.finished(k, result)
            self.cond.notify_all()

    def failed(self, failure: BaseException) -> None:
        with self.cond:
            self.fanout.failed(failure)
            self.call.abort.set()  # the others stop before their next request
            self.cond.notify_all()

    def wait(self) -> list[object]:
        """Wait (interruptibly) until the step is settled; its results, or its first failure raised."""
        with self.cond:
            while not self.fanout.settled():
                self.cond.wait()
            return self.fanout.outcome()
