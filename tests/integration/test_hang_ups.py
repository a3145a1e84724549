"""An endpoint that hangs up without answering: a TransportError that says so, in both drivers, retried."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hf_infer_core import TimeoutError, TransportError

from .drive import DRIVERS, make_client, raw_server, run_call


@pytest.fixture
def hangs_up() -> Iterator[tuple[str, list[bytes]]]:
    """A server that reads each request and closes the connection without a word; what it read."""
    with raw_server() as (port, received):
        yield f"http://127.0.0.1:{port}/embed", received


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_server_that_hangs_up_is_a_transport_error_not_a_timeout(
    driver: str, hangs_up: tuple[str, list[bytes]]
) -> None:
    url, received = hangs_up
    client = make_client(driver, url, max_retries=2, max_retry_wait=0.05, discover=False)
    with pytest.raises(TransportError, match=r"127\.0\.0\.1.*(disconnected|Disconnected)") as failed:
        run_call(client, "embed", ["abc"])
    # httpx-aiohttp calls it a ConnectTimeout; it was not slow, and the message says what it was.
    assert not isinstance(failed.value, TimeoutError)
    assert failed.value.attempts == 3 and sum(b"POST /embed" in r for r in received) == 3  # retried: it may pass
