"""Optional probes (/info): a failure never fails the job, and concurrent first callers wait for one attempt."""

from __future__ import annotations

import logging
import time

import pytest

from ..fake_endpoint import expected_vector, fake_endpoint
from .drive import DRIVERS, in_threads, make_client, run_call

# ------------------------------------------------------------------ optional probes


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("info", ["500", "501", "502", "403", "hang"])
def test_a_failing_info_never_fails_the_job(driver: str, info: str, caplog: pytest.LogCaptureFixture) -> None:
    with fake_endpoint(info=info) as server:
        client = make_client(driver, server.embed_url, connect_retry_deadline=1.0)
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="hf_infer_core"):
            assert run_call(client, "embed_documents", ["a", "b"]) == [expected_vector("a"), expected_vector("b")]
            assert run_call(client, "embed_documents", ["c"]) == [expected_vector("c")]
        # One attempt, bounded by connect_retry_deadline (a hang was 120 s, a 500 up to 31 attempts).
        assert time.monotonic() - started < 30
        assert server.stats()["gets"]["/info"] == 1
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "/info" in warnings[0] and "going on without it" in warnings[0], warnings


def test_concurrent_first_callers_wait_for_one_failed_probe() -> None:
    with fake_endpoint(info="hang") as server:
        client = make_client("sync", server.embed_url, connect_retry_deadline=1.0)
        results = in_threads(8, lambda k: client.embed([f"t{k}"]))
        assert results == [[expected_vector(f"t{k}")] for k in range(8)]
        assert server.stats()["gets"]["/info"] == 1  # the N-th caller waited for one probe, not N
