"""Helpers shared by the benchmark scripts: start/stop a server process, time a run."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator

HERE = os.path.dirname(os.path.abspath(__file__))


@contextlib.contextmanager
def fake_endpoint(latency: float = 0.025, slots: int = 8, dims: int = 384) -> Iterator[str]:
    """Run benchmarks/fake_endpoint.py in its own process; yield its base URL."""
    proc = subprocess.Popen(
        [
            sys.executable,
            os.path.join(HERE, "fake_endpoint.py"),
            "--latency",
            str(latency),
            "--slots",
            str(slots),
            "--dims",
            str(dims),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("READY"):
            raise RuntimeError(f"fake endpoint did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        proc.terminate()
        proc.wait(10)


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
