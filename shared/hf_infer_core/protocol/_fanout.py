"""A :class:`~._steps.Parallel` step's bookkeeping, decided once for both drivers.

Which flow runs next, where its result goes, when the step is over and what it comes to: the
results in order, or the first failure (after which no flow starts). The threaded driver wraps
it in a lock and a condition, the asyncio driver uses it as it is; each only decides how to wait
and how to stop the requests in flight (an abort flag, or task cancellation).
"""

from __future__ import annotations

from typing import Generic, TypeVar

from ._steps import Flow, Parallel

__all__ = ["Fanout"]

T = TypeVar("T")


class Fanout(Generic[T]):
    """The flows of one Parallel step: handed out one at a time, their results kept in order."""

    def __init__(self, step: Parallel[T]) -> None:
        self.step = step
        self._results: dict[int, T] = {}
        self._queue = enumerate(step.flows)
        self.exhausted = False
        self.running = 0
        self.workers = 0  # workers on these flows (a nested caller's own thread included)
        self.failures: list[BaseException] = []

    def more_workers(self, wanted: int, stopped: bool = False) -> int:
        """How many workers to add to reach ``wanted`` (counted as added); none once over or ``stopped``."""
        more = 0 if self.exhausted or stopped or self.failures else max(0, wanted - self.workers)
        self.workers += more
        return more

    def take(self, stopped: bool = False) -> tuple[int, Flow[T]] | None:
        """The next flow and its position, or ``None``: none left, one failed, or the caller ``stopped``."""
        item = None if self.exhausted or stopped or self.failures else next(self._queue, None)
        if item is None:
            self.exhausted = True
        else:
            self.running += 1
        return item

    def finished(self, k: int, result: T) -> None:
        """Flow ``k`` returned ``result`` (progress is told)."""
        self.running -= 1
        self._results[k] = result
        if self.step.done is not None:
            self.step.done(k)

    def failed(self, failure: BaseException) -> None:
        """A flow ended with ``failure``: no flow starts after it, and the step raises the first."""
        self.running -= 1
        self.failures.append(failure)

    def settled(self) -> bool:
        """Every flow done, or one failed (the others' requests in flight are not waited for)."""
        return bool(self.failures) or (self.exhausted and self.running == 0)

    def outcome(self) -> list[T]:
        """The results in the flows' order; raises the first failure."""
        if self.failures:
            raise self.failures[0]
        if not self.exhausted or self.running or len(self._results) != self.step.size:
            raise RuntimeError("a Parallel step's outcome was asked for before its flows ended")
        return [self._results[k] for k in range(self.step.size)]
