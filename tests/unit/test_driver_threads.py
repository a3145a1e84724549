"""The threaded driver's threads: bounded by max_concurrency, reused across calls, none left behind."""

from __future__ import annotations

import threading
import time

import pytest

from .fakes import answer, build, vector_for

# ------------------------------------------------------------------ threads: bounded and reused


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
