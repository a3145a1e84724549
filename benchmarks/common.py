"""Helpers shared by the benchmark scripts: the fake endpoint, texts, a timer."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

from tests.fake_endpoint import fake_endpoint as run_endpoint

HERE = os.path.dirname(os.path.abspath(__file__))


@contextlib.contextmanager
def fake_endpoint(latency: float = 0.025, slots: int = 8, dims: int = 384) -> Iterator[str]:
    """Run the test suite's endpoint (tests/fake_endpoint.py) as a fixed-latency model server; yield its URL.

    Answers come from pre-serialised bytes and inputs are not logged, so the server, in its own
    process, is never what a benchmark measures.
    """
    with run_endpoint(latency=latency, slots=slots, dims=dims, vectors="fixed", log_inputs=False) as server:
        yield server.url


def texts(count: int) -> list[str]:
    """Short, distinct texts (a sentence each)."""
    return [f"Document {i}: a short text about topic {i % 97} for the throughput benchmark." for i in range(count)]


class Timer:
    """Wall and CPU time of a block."""

    wall = 0.0
    cpu = 0.0

    def __enter__(self) -> Timer:
        self.wall0 = time.perf_counter()
        self.cpu0 = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0
