"""Streaming over real HTTP: memory does not grow with the corpus."""

from __future__ import annotations

from typing import Any

from ..conftest import PEAK_RSS, run_probe
from ..fake_endpoint import fake_endpoint

_STREAM_PROBE = (
    PEAK_RSS
    + """
import json, sys

from hf_infer_core import EmbeddingClient, InferenceEndpoint

url, count = sys.argv[1], int(sys.argv[2])
endpoint = InferenceEndpoint.from_url(url, "k", requests_per_minute=10**7, chunking_settings={"strategy": "sentence", "max_chunk_size": 20, "sentence_overlap": 0})
client = EmbeddingClient(endpoint, batch_size=128, max_concurrency=4)

def texts():
    for i in range(count):
        yield f"Document {i} is about topic {i % 97}. It has a second sentence, and it ends here."

client.embed(["warm up"])
before = reset_peak()
seen = dims = 0
for vector in client.embed_iter(texts()):
    seen += 1
    dims = len(vector)
print(json.dumps({"seen": seen, "dims": dims, "growth": peak() - before}))
"""
)


def test_streaming_50000_texts_keeps_memory_flat() -> None:
    with fake_endpoint(vectors="fixed", dims=384, log_inputs=False) as server:
        probe: dict[str, Any] = run_probe(_STREAM_PROBE, server.embed_url, "50000", timeout=300)
    assert probe["seen"] == 50_000 and probe["dims"] == 384
    # Held as Python lists the 50,000 vectors alone would take 50,000 x 384 x 32 B = 614 MB.
    assert probe["growth"] < 64 << 20, f"peak RSS grew by {probe['growth'] / 2**20:.0f} MiB"
