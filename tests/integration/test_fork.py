"""A forked child gets connections of its own and the right vectors, over real HTTP."""

from __future__ import annotations

import logging
import multiprocessing
from typing import Any

from hf_infer_core import EmbeddingClient, InferenceEndpoint
from langchain_hf_infer import HFInferEmbeddings

from ..fake_endpoint import expected_vector, fake_endpoint

# ------------------------------------------------------------------ fork

_PARENT: dict[str, Any] = {}


def _child_round(task: tuple[int, int]) -> tuple[int, int, list[str]]:
    """Embed 40 texts no other child sends with the client inherited from the parent."""
    child, round_ = task
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("hf_infer_core").addHandler(handler)
    texts = [f"child {child} round {round_} text {i}" for i in range(40)]
    wrong = errors = 0
    for client in (_PARENT["client"], _PARENT["adapter"]):
        try:
            vectors = client.embed(texts) if isinstance(client, EmbeddingClient) else client.embed_documents(texts)
        except Exception:
            errors += 1
            continue
        wrong += sum(v != expected_vector(t) for v, t in zip(vectors, texts, strict=True))
    return wrong, errors, records


def test_forked_children_get_their_own_connections_and_right_vectors() -> None:
    with fake_endpoint() as server:
        endpoint = InferenceEndpoint.from_url(server.embed_url, "key", requests_per_minute=10**7)
        client = EmbeddingClient(endpoint, batch_size=8, max_concurrency=4)
        adapter = HFInferEmbeddings(
            url=server.embed_url,
            api_key="key",
            requests_per_minute=10**7,
            batch_size=8,
            max_concurrency=4,
            chunking_settings={"strategy": "none"},
        )
        # The parent uses both first, so their keep-alive connections exist when the children fork.
        parent_texts = [f"parent {i}" for i in range(40)]
        assert client.embed(parent_texts) == [expected_vector(t) for t in parent_texts]
        assert adapter.embed_documents(parent_texts) == [expected_vector(t) for t in parent_texts]
        _PARENT.update(client=client, adapter=adapter)
        try:
            with multiprocessing.get_context("fork").Pool(4) as pool:
                results = pool.map(_child_round, [(c, r) for r in range(5) for c in range(4)], chunksize=1)
        finally:
            _PARENT.clear()
        assert sum(r[0] for r in results) == 0, "a child got a vector of another text"
        assert sum(r[1] for r in results) == 0, "a child's call failed"
        # The parent is unaffected and keeps working on its own connections.
        assert client.embed(parent_texts) == [expected_vector(t) for t in parent_texts]
        client.close()
    warnings = [m for r in results for m in r[2] if "fork" in m]
    assert warnings, "a forked child must be told its rate limit is per process"
    # Once per child process, not once per call: 4 workers at most.
    assert len(warnings) <= 4
    assert "rate_limit_backend" in warnings[0]
