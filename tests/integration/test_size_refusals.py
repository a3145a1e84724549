"""Size refusals over real HTTP, as TEI 1.8 answers them (413) and as 1.9 does (422): halved and learnt alike.

TEI 1.9.0 made validation errors 422 (router/src/http/server.rs, ErrorType::Validation); the
messages did not change, and they are what the clients read. The endpoint (tests/fake_endpoint.py)
answers either way (``tei_version``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hf_infer_core import (
    AsyncEmbeddingClient,
    AsyncRerankClient,
    EmbeddingClient,
    InferenceEndpoint,
    InvalidRequestError,
    RerankClient,
)

from ..fake_endpoint import expected_vector, fake_endpoint

VERSIONS = ["1.8", "1.9"]
DRIVERS = ["sync", "async"]


def run(client: Any, method: str, *args: Any) -> Any:
    """A client method's result, whichever driver (an async client's connections end with each loop)."""
    result = getattr(client, method)(*args)
    return asyncio.run(result) if isinstance(client, AsyncEmbeddingClient | AsyncRerankClient) else result


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("driver", DRIVERS)
def test_a_batch_over_the_servers_limit_without_info_is_halved_and_the_limit_learnt(version: str, driver: str) -> None:
    texts = [f"text {i}" for i in range(100)]
    with fake_endpoint(max_batch=8, tei_version=version, info="404") as server:
        endpoint = InferenceEndpoint.from_url(server.embed_url, requests_per_minute=None)
        cls = EmbeddingClient if driver == "sync" else AsyncEmbeddingClient
        client = cls(endpoint, batch_size=32, max_concurrency=1)
        assert run(client, "embed", texts) == [expected_vector(t) for t in texts]
        assert client.batch_size == 8  # learnt from "maximum allowed batch size 8"
        kinds = {entry.answer for entry in server.log if entry.answer != "ok"}
        assert kinds <= {"size_413", "tei_413", "plain_413"} if version == "1.8" else kinds == {"size_422"}
        before = len(server.log)
        assert run(client, "embed", texts) == [expected_vector(t) for t in texts]
        assert all(entry.answer == "ok" for entry in server.log[before:])  # planned at the learnt size


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("driver", DRIVERS)
def test_a_chunk_over_the_token_limit_without_tokenize_is_split_on_the_refusal(version: str, driver: str) -> None:
    document = " ".join(f"w{i}" for i in range(60))
    chunking = {"strategy": "word", "max_chunk_size": 60, "overlap": 0}
    with fake_endpoint(max_words=20, tei_version=version, info="404") as server:  # no /info, no /tokenize
        endpoint = InferenceEndpoint.from_url(server.embed_url, requests_per_minute=None, chunking_settings=chunking)
        cls = EmbeddingClient if driver == "sync" else AsyncEmbeddingClient
        (chunks,) = run(cls(endpoint), "embed_chunks", [document])
        sent = [t for entry in server.log if entry.answer == "ok" for t in entry.inputs]
    assert " ".join(w for c in chunks for w in c.text.split()) == document  # every word, in order, none cut
    assert all(document[c.start : c.end] == c.text for c in chunks)
    assert all(len(c.text.split()) <= 20 for c in chunks) and len(chunks) >= 3
    assert [c.embedding for c in chunks] == [expected_vector(c.text) for c in chunks]
    assert all(len(t.split()) <= 20 for t in sent)


@pytest.mark.parametrize("version", VERSIONS)
def test_rerank_halves_on_either_refusal(version: str) -> None:
    passages = [f"passage {i}" for i in range(50)]
    with fake_endpoint(max_batch=8, tei_version=version, info="404") as server:
        endpoint = InferenceEndpoint.from_url(server.url + "/rerank", task_type="rerank", requests_per_minute=None)
        with RerankClient(endpoint, batch_size=32, max_concurrency=1) as client:
            results = client.rerank("query", passages)
            assert sorted(r.index for r in results) == list(range(50)) and client.batch_size == 8


def test_another_422_stays_an_invalid_request() -> None:
    with fake_endpoint(permanent="422") as server:
        endpoint = InferenceEndpoint.from_url(server.embed_url, requests_per_minute=None)
        with EmbeddingClient(endpoint) as client, pytest.raises(InvalidRequestError) as caught:
            client.embed(["a", "b"])
        assert caught.value.status_code == 422 and len([e for e in server.log if e.answer == "422"]) == 1
