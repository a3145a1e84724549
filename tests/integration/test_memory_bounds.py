"""Memory stays bounded: response bodies (bombs, huge answers) and the state of closed event loops."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from langchain_hf_infer import HFInferEmbeddings

from ..conftest import PEAK_RSS, run_probe
from ..fake_endpoint import expected_vector, fake_endpoint

# ------------------------------------------------------------------ bounded response memory

_MEMORY_PROBE = (
    PEAK_RSS
    + """
import asyncio, json, sys

from hf_infer_core import AsyncEmbeddingClient, EmbeddingClient, InferenceEndpoint, ResponseFormatError

url, kind, mode = sys.argv[1], sys.argv[2], sys.argv[3]
endpoint = InferenceEndpoint.from_url(url, "k", requests_per_minute=10**6)
factory = EmbeddingClient if mode == "sync" else AsyncEmbeddingClient
client = factory(endpoint, max_retries=0, timeout=60.0)

def run(texts):
    result = client.embed(texts)
    return asyncio.run(result) if mode == "async" else result

run(["warm up"])  # imports, connections and buffers exist before the baseline
before = reset_peak()
try:
    run([kind])
    outcome = "no error"
except ResponseFormatError as err:
    outcome = f"ResponseFormatError: {err}"
after = peak()
print(json.dumps({"growth": after - before, "outcome": outcome}))
"""
)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("kind", ["gzip_bomb", "huge", "huge_chunked"])
def test_response_memory_is_bounded(kind: str, mode: str) -> None:

    from hf_infer_core.protocol._body import default_response_limit

    # 1 MB inflating to 1 GiB; a 400 MB body, with and without a Content-Length.
    answers = {"gzip_bomb": "gzip_bomb", "huge": "huge", "huge_chunked": "huge_chunked"}
    with fake_endpoint(by_text=answers) as server:
        probe: dict[str, Any] = run_probe(_MEMORY_PROBE, server.embed_url, kind, mode)
    assert probe["outcome"].startswith("ResponseFormatError"), probe
    assert "max_response_bytes" in probe["outcome"]
    assert "inputs [0]" in probe["outcome"]  # the error names the batch
    limit = default_response_limit(1)
    # The limit plus a constant (interpreter, one socket read, allocator slack): 32 MiB.
    assert probe["growth"] < limit + (32 << 20), f"peak RSS grew by {probe['growth'] / 2**20:.0f} MiB"


# ------------------------------------------------------------------ per-event-loop state is freed


def _open_fds() -> int:
    import os

    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self/fd"), reason="counts file descriptors in /proc")
def test_state_for_closed_event_loops_is_released() -> None:
    import asyncio
    import gc
    import warnings

    gc.collect()  # what earlier tests left is collected now, not counted against this test
    with fake_endpoint() as server:
        model = HFInferEmbeddings(url=server.embed_url, api_key="k", requests_per_minute=10**7, max_concurrency=4)
        texts = [f"text {i}" for i in range(16)]
        records: list[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = records.append  # type: ignore[method-assign]
        logging.getLogger("asyncio").addHandler(handler)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                baseline = _open_fds()
                for _ in range(100):
                    loop = asyncio.new_event_loop()
                    vectors = loop.run_until_complete(model.aembed_documents(texts))
                    loop.close()
                    assert vectors == [expected_vector(t) for t in texts]
                del loop
                gc.collect()
                leaked = _open_fds() - baseline
                table = len(model._session.aclient._wire._by_loop)
        finally:
            logging.getLogger("asyncio").removeHandler(handler)
    assert leaked <= 2, f"{leaked} file descriptors left open after 100 loops"
    assert table == 0, f"{table} per-loop entries kept"
    # Only this test's own connections count: sockets other tests left behind may be collected
    # during it and warn too.
    port = server.url.rsplit(":", 1)[1]
    unclosed = [r.getMessage() for r in records if "Unclosed" in r.getMessage()]
    unclosed += [str(w.message) for w in caught if "nclosed" in str(w.message) and port in str(w.message)]
    assert unclosed == []
