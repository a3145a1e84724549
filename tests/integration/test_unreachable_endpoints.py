"""Nothing there: a refusing Redis or a host that does not resolve is one typed error within the connect deadline."""

from __future__ import annotations

import time

import pytest

from hf_infer_core import (
    AsyncEmbeddingClient,
    EmbeddingClient,
    InferenceEndpoint,
    RateLimitBackendError,
    TransportError,
)

from .drive import DRIVERS, free_port, make_client, run_call

# ------------------------------------------------------------------ nothing there: reported soon


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_redis_that_refuses_is_reported_within_the_connect_deadline(driver: str) -> None:
    url = f"redis://:redis-pass-123@127.0.0.1:{free_port()}/0"
    endpoint = InferenceEndpoint.from_url("http://127.0.0.1:1/embed", "k", requests_per_minute=600)
    client = (EmbeddingClient if driver == "sync" else AsyncEmbeddingClient)(
        endpoint, rate_limit_backend=url, connect_retry_deadline=2.0, discover=False
    )
    started = time.monotonic()
    with pytest.raises(RateLimitBackendError) as info:
        run_call(client, "embed", ["x"])
    assert time.monotonic() - started < 20  # was 119.8 s (the whole retry_deadline)
    assert "refused" in str(info.value) and "redis-pass-123" not in str(info.value)


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_host_that_does_not_resolve_is_one_typed_error_within_the_connect_deadline(driver: str) -> None:
    client = make_client(driver, "http://no-such-host.invalid/embed", connect_retry_deadline=2.0)
    started = time.monotonic()
    with pytest.raises(TransportError) as info:
        run_call(client, "embed", ["x"])
    assert type(info.value) is TransportError and info.value.unresolved  # not TimeoutError in one driver
    assert "does not resolve" in str(info.value)
    assert time.monotonic() - started < 20  # was 6-10 s of retries
