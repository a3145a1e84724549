"""The sparse embedding task on the shared pipeline: configuration, answers checked, pooling, the cache, both drivers."""

from __future__ import annotations

import asyncio
import json
import zlib
from typing import Any

import httpx
import pytest

from hf_infer_core import (
    AsyncSparseEmbeddingClient,
    ConfigError,
    InferenceEndpoint,
    PayloadTooLargeError,
    ResponseFormatError,
    SparseEmbeddingClient,
)
from hf_infer_core.sparse._core import sketch
from hf_infer_core.sparse._flows import max_pool
from hf_infer_core.sparse._wire import decode_sparse, encode_sparse

from .fakes import FakeClock

DRIVERS = ["sync", "async"]
BODY: dict[str, Any] = {"service": "hugging_face", "service_settings": {"url": "http://tei.test", "api_key": "k"}}


def weights_of(text: str) -> dict[int, float]:
    """The fake model: each word's crc32 (mod 30522) weighted by its count's log, as the local stand-in does."""
    counts: dict[int, int] = {}
    for word in text.split():
        index = zlib.crc32(word.encode()) % 30522
        counts[index] = counts.get(index, 0) + 1
    return {i: round(1.0 + c / 10, 6) for i, c in sorted(counts.items())}


class Fake:
    """TEI's /embed_sparse with a batch limit; records each request's inputs."""

    def __init__(self, limit: int = 1000, answer: Any = None) -> None:
        self.limit = limit
        self.answer = answer
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/info"):
            return httpx.Response(200, json={"model_id": "fake-splade", "max_client_batch_size": 16})
        assert request.url.path.endswith("/embed_sparse"), request.url.path
        body = json.loads(request.content)
        self.bodies.append(body)
        if len(body["inputs"]) > self.limit:
            return httpx.Response(413, json={"error": "batch size too large", "error_type": "validation"})
        if self.answer is not None:
            return httpx.Response(200, json=self.answer)
        return httpx.Response(
            200, json=[[{"index": i, "value": v} for i, v in weights_of(t).items()] for t in body["inputs"]]
        )


def endpoint(**settings: Any) -> InferenceEndpoint:
    return InferenceEndpoint.from_url("http://tei.test", "k", task_type="sparse_embedding", **settings)


def run(driver: str, fake: Fake, method: str, *args: Any, **options: Any) -> Any:
    async def no_wait(seconds: float) -> None:
        pass

    if driver == "sync":
        with SparseEmbeddingClient(
            endpoint(), transport=httpx.MockTransport(fake), sleep=lambda s: None, clock=FakeClock(), **options
        ) as client:
            return getattr(client, method)(*args)

    async def go() -> Any:
        async with AsyncSparseEmbeddingClient(
            endpoint(), transport=httpx.MockTransport(fake), sleep=no_wait, **options
        ) as client:
            return await getattr(client, method)(*args)

    return asyncio.run(go())


def test_the_configuration_follows_elasticsearchs_rules_for_sparse_embedding() -> None:
    parsed = InferenceEndpoint.from_request("sparse_embedding", "my-splade", BODY)
    assert parsed.task_type == "sparse_embedding" and parsed.task_settings is None
    assert parsed.to_dict()["chunking_settings"]["strategy"] == "sentence"  # read, as for text_embedding
    for dense_only in ({"similarity": "cosine"}, {"dimensions": 8}, {"max_input_tokens": 512}):
        body = {**BODY, "service_settings": {**BODY["service_settings"], **dense_only}}
        with pytest.raises(ConfigError, match=r"contains settings \[.*\] unknown to the \[hugging_face\] service"):
            InferenceEndpoint.from_request("sparse_embedding", "x", body)
    chunked = {**BODY, "chunking_settings": {"strategy": "word", "max_chunk_size": 10, "overlap": 2}}
    assert InferenceEndpoint.from_request("sparse_embedding", "x", chunked).chunking_settings.max_chunk_size == 10
    assert endpoint().url == "http://tei.test"


@pytest.mark.parametrize("driver", DRIVERS)
def test_embed_sends_teis_request_and_returns_index_ordered_dicts(driver: str) -> None:
    fake = Fake()
    texts = ["error E1234 E1234", "tide rises"]
    vectors = run(driver, fake, "embed", texts, truncate=True, truncation_direction="Left", prompt_name="p")
    assert vectors == [weights_of(t) for t in texts]
    assert all(list(v) == sorted(v) for v in vectors)
    assert fake.bodies == [{"inputs": texts, "truncate": True, "truncation_direction": "Left", "prompt_name": "p"}]


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_long_document_is_chunked_and_pooled_by_the_maximum(driver: str) -> None:
    words = [f"w{i}" for i in range(60)]
    text = " ".join(words)
    chunking = {"strategy": "word", "max_chunk_size": 20, "overlap": 0}
    fake = Fake()

    async def no_wait(seconds: float) -> None:
        pass

    ep = endpoint(chunking_settings=chunking)
    if driver == "sync":
        with SparseEmbeddingClient(ep, transport=httpx.MockTransport(fake), discover=False) as client:
            (vector,) = client.embed_documents([text])
    else:

        async def go() -> Any:
            async with AsyncSparseEmbeddingClient(ep, transport=httpx.MockTransport(fake), discover=False) as client:
                return await client.embed_documents([text])

        (vector,) = asyncio.run(go())
    sent = [t for body in fake.bodies for t in body["inputs"]]
    assert len(sent) == 3  # three chunks of 20 words
    assert vector == max_pool([weights_of(chunk) for chunk in sent])
    assert set(vector) == set(weights_of(text))


def test_max_pool_takes_each_index_at_its_largest() -> None:
    assert max_pool([{1: 0.5, 3: 2.0}, {1: 1.5, 2: 0.1}]) == {1: 1.5, 2: 0.1, 3: 2.0}
    assert max_pool([{7: 1.0}]) == {7: 1.0}


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_413_halves_the_batch_and_the_vectors_stay_in_order(driver: str) -> None:
    fake = Fake(limit=3)
    texts = [f"text {i}" for i in range(10)]
    assert run(driver, fake, "embed", texts) == [weights_of(t) for t in texts]
    assert max(len(body["inputs"]) for body in fake.bodies if len(body["inputs"]) <= 3) <= 3


@pytest.mark.parametrize("driver", DRIVERS)
def test_one_input_refused_alone_is_named(driver: str) -> None:
    with pytest.raises(PayloadTooLargeError) as info:
        run(driver, Fake(limit=0), "embed", ["a", "b"], max_retries=0)
    assert info.value.index in (0, 1)


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ([[{"index": 1, "value": 0.5}]], "expected 2 sparse vectors"),
        ([[{"index": -1, "value": 0.5}], []], "is not a vocabulary id"),
        ([[{"index": True, "value": 0.5}], []], "is not a vocabulary id"),
        ([[{"index": 1, "value": -0.5}], []], "not a finite non-negative number"),
        ([[{"index": 1, "value": "NaN"}], []], "not a finite non-negative number"),
        ([[{"index": 1, "value": 0.5}, {"index": 1, "value": 0.7}], []], "appears twice"),
        ([{"index": 1}, []], "is not a list"),
    ],
)
def test_an_answer_that_is_not_one_checked_sparse_vector_per_input_is_refused(answer: Any, problem: str) -> None:
    with pytest.raises(ResponseFormatError, match=problem):
        run("sync", Fake(answer=answer), "embed", ["a", "b"], max_retries=0)


@pytest.mark.parametrize("driver", DRIVERS)
def test_queries_carry_their_prefix_and_prompt(driver: str) -> None:
    fake = Fake()
    vector = run(driver, fake, "embed_query", "E1234", query_prefix="query: ", query_prompt_name="q")
    assert vector == weights_of("query: E1234")
    assert fake.bodies[-1] == {"inputs": ["query: E1234"], "prompt_name": "q"}


def test_embed_iter_streams_in_order() -> None:
    fake = Fake()
    texts = (f"streamed {i}" for i in range(40))
    with SparseEmbeddingClient(endpoint(), transport=httpx.MockTransport(fake), batch_size=8) as client:
        assert list(client.embed_iter(texts)) == [weights_of(f"streamed {i}") for i in range(40)]


def test_the_stored_form_is_exact_and_a_damaged_one_is_a_miss() -> None:
    vector = {3: 0.1, 17: 2.5, 30521: 1e-7}
    blob = encode_sparse(vector)
    assert decode_sparse(blob) == vector
    assert decode_sparse(blob[:-1]) is None and decode_sparse(b"d" + blob[1:]) is None and decode_sparse(None) is None


def test_the_identity_sketch_tells_models_apart_and_keeps_one_model_stable() -> None:
    a = {10: 1.0, 20: 0.5}
    assert sketch(a) == sketch(dict(a))
    assert sketch(a) != sketch({11: 1.0, 20: 0.5})  # the same weights on other vocabulary ids
    assert sketch(a) != sketch({10: 1.0, 20: 0.6})


@pytest.mark.parametrize("driver", DRIVERS)
def test_the_cache_answers_a_second_ingestion_without_requests(driver: str, tmp_path: Any) -> None:
    fake = Fake()
    cache = str(tmp_path / "sparse.sqlite")
    texts = ["one two", "three four four"]
    first = run(driver, fake, "embed_documents", texts, cache=cache)
    sent = sum(len(b["inputs"]) for b in fake.bodies)
    again = run(driver, fake, "embed_documents", texts, cache=cache)
    assert first == again == [weights_of(t) for t in texts]
    # The second run sends only the identity probe (the model verified), no text.
    assert sum(len(b["inputs"]) for b in fake.bodies) - sent == 1


def test_the_wrong_endpoint_and_options_are_type_errors() -> None:
    dense = InferenceEndpoint.from_url("http://tei.test", "k")
    with pytest.raises(TypeError, match=r"need a \[sparse_embedding\] one"):
        SparseEmbeddingClient(dense)
    with pytest.raises(ConfigError, match="pooling"):
        SparseEmbeddingClient(endpoint(), pooling="mean")  # type: ignore[call-arg]


def test_one_cache_shared_with_a_dense_client_of_the_same_url_never_crosses_tasks(tmp_path: Any) -> None:
    """A dense and a sparse client of one TEI (one URL, one key, one model) with one cache file: each its own vectors."""
    from hf_infer_core import EmbeddingClient

    sparse_fake = Fake()
    sent: dict[str, int] = {"dense": 0}

    def both(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and not request.url.path.endswith(
            "/embed_sparse"
        ):  # the dense client posts to the URL
            inputs = json.loads(request.content)["inputs"]
            sent["dense"] += len(inputs)
            return httpx.Response(200, json=[[float(len(t)), 1.0, 0.0] for t in inputs])
        return sparse_fake(request)

    cache = str(tmp_path / "shared.sqlite")
    texts = ["one two", "three four four"]
    dense_endpoint = InferenceEndpoint.from_url("http://tei.test", "k")
    options: dict[str, Any] = {"transport": httpx.MockTransport(both), "sleep": lambda s: None, "cache": cache}
    with EmbeddingClient(dense_endpoint, clock=FakeClock(), **options) as dense:
        dense_vectors = dense.embed_documents(texts)
    with SparseEmbeddingClient(endpoint(), clock=FakeClock(), **options) as sparse:
        sparse_vectors = sparse.embed_documents(texts)
    assert sparse_vectors == [weights_of(t) for t in texts]  # not the dense entries stored under the same URL
    assert sum(len(b["inputs"]) for b in sparse_fake.bodies) >= len(texts) + 1  # every text sent, and the probe
    dense_sent = sent["dense"]
    with EmbeddingClient(dense_endpoint, clock=FakeClock(), **options) as dense:
        assert dense.embed_documents(texts) == dense_vectors  # its own entries, after the sparse ones were stored
    assert sent["dense"] - dense_sent == 1  # only the identity probe: the texts were hits
