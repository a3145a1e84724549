"""Streaming: lazy input, a bounded window, results in input order, typed errors at their place."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import httpx
import numpy as np
import pytest

from hf_infer_core import AuthenticationError, ChunkEmbedding
from langchain_hf_infer import HFInferEmbeddings
from llama_index_hf_infer import HFInferEmbedding

from .fakes import FakeEndpoint, endpoint, vector_for
from .test_client import DRIVERS, async_client, client_for

WORDS = {"strategy": "word", "max_chunk_size": 10, "overlap": 0}


class Counting:
    """An iterable that counts how far it has been read."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.read = 0

    def __iter__(self) -> Iterator[str]:
        for text in self.texts:
            self.read += 1
            yield text


@pytest.mark.parametrize("driver", DRIVERS)
def test_embed_iter_yields_in_order_and_reads_lazily(driver: str) -> None:
    texts = Counting([f"text {i}" for i in range(100)])
    fake = FakeEndpoint()
    with client_for(driver, fake, batch_size=4, max_concurrency=2) as client:
        stream = client.embed_iter(texts)
        assert texts.read == 0  # nothing read before the first result is asked for
        first = next(stream)
        # the window: max_concurrency batches in flight plus the one being filled
        assert texts.read <= (2 + 1) * 4
        rest = list(stream)
    assert [first, *rest] == [vector_for(t) for t in texts.texts]
    assert all(len(batch) <= 4 for batch in fake.batches)


@pytest.mark.parametrize("driver", DRIVERS)
def test_embed_iter_chunks_and_pools_like_embed_documents(driver: str) -> None:
    long = " ".join(f"word{i}" for i in range(35))  # four chunks of at most 10 words
    texts = ["short one", long, "another", long + " tail"]
    ep = endpoint(chunking=WORDS)
    with client_for(driver, FakeEndpoint(), endpoint=ep, batch_size=3, max_concurrency=2) as client:
        streamed = list(client.embed_iter(iter(texts)))
        assert streamed == client.embed_documents(texts)
        chunks = list(client.embed_chunks_iter(texts))
        assert chunks == client.embed_chunks(texts)
    assert [len(c) for c in chunks] == [1, 4, 1, 4]
    assert all(isinstance(c, ChunkEmbedding) for cs in chunks for c in cs)


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_failed_batch_raises_after_every_earlier_result_with_resume_indices(driver: str) -> None:
    texts = [f"text {i}" for i in range(20)]
    fake = FakeEndpoint(
        script=lambda n, inputs: httpx.Response(401, json={"error": "no"}) if "text 9" in inputs else None
    )
    got: list[list[float]] = []
    with (
        client_for(driver, fake, batch_size=4, max_concurrency=2) as client,
        pytest.raises(AuthenticationError) as info,
    ):
        got.extend(client.embed_iter(texts))  # extend keeps what was yielded before the error
    assert got == [vector_for(t) for t in texts[:8]]  # batches [0..3] and [4..7] came first
    assert info.value.indices == (8, 9, 10, 11)  # the failed batch's texts: resume from 8


@pytest.mark.parametrize("driver", DRIVERS)
def test_as_numpy_arrays(driver: str) -> None:
    texts = [f"text {i}" for i in range(10)]
    with client_for(driver, FakeEndpoint(), batch_size=4, max_concurrency=2) as client:
        array = client.embed(texts, as_numpy=True)
        assert array.dtype == np.float32 and array.shape == (10, 4)
        assert np.array_equal(array, np.asarray([vector_for(t) for t in texts], dtype=np.float32))
        documents = client.embed_documents(texts, as_numpy=True)
        assert np.array_equal(documents, array)
        parts = list(client.embed_iter(texts, as_numpy=True))
    assert all(p.dtype == np.float32 and p.ndim == 2 for p in parts)
    assert np.array_equal(np.concatenate(parts), array)


def test_as_numpy_without_numpy_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['numpy'] = None\n"
        "from hf_infer_core import EmbeddingClient, InferenceEndpoint\n"
        "client = EmbeddingClient(InferenceEndpoint.from_url('http://127.0.0.1:9/embed', 'k'))\n"
        "try:\n    client.embed(['a'], as_numpy=True)\nexcept ImportError as e:\n    print(e)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert 'pip install "hf-infer[fast]"' in result.stdout, result.stderr


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_single_string_is_refused(driver: str) -> None:
    with client_for(driver, FakeEndpoint()) as client, pytest.raises(TypeError, match="not a single str"):
        client.embed_iter("one text")


async def test_async_streams_from_sync_and_async_iterables() -> None:
    texts = [f"text {i}" for i in range(30)]

    async def produce() -> AsyncIterator[str]:
        for text in texts:
            yield text

    async with async_client(FakeEndpoint(), batch_size=4, max_concurrency=3) as client:
        from_async = [v async for v in client.aembed_iter(produce())]
        from_sync = [v async for v in client.aembed_iter(texts)]
        arrays = [a async for a in client.aembed_iter(texts, as_numpy=True)]
        chunks = [c async for c in client.aembed_chunks_iter(produce())]
    expected = [vector_for(t) for t in texts]
    assert from_async == from_sync == expected
    assert np.array_equal(np.concatenate(arrays), np.asarray(expected, dtype=np.float32))
    assert [c[0].embedding for c in chunks] == expected


async def collect(stream: AsyncIterator[list[float]], into: list[list[float]]) -> None:
    async for vector in stream:
        into.append(vector)


async def test_async_failure_raises_at_its_place() -> None:
    texts = [f"text {i}" for i in range(12)]
    fake = FakeEndpoint(
        script=lambda n, inputs: httpx.Response(401, json={"error": "no"}) if "text 5" in inputs else None
    )
    got: list[list[float]] = []
    async with async_client(fake, batch_size=2, max_concurrency=2) as client:
        with pytest.raises(AuthenticationError) as info:
            await collect(client.aembed_iter(texts), got)
    assert got == [vector_for(t) for t in texts[:4]]
    assert info.value.indices == (4, 5)


@pytest.mark.parametrize("cls", [HFInferEmbeddings, HFInferEmbedding])
async def test_both_adapters_stream(cls: type) -> None:
    texts = [f"text {i}" for i in range(9)]
    fake = FakeEndpoint()
    model = cls(
        url="http://endpoint.test/embed",
        api_key="k",
        requests_per_minute=10**7,
        batch_size=2,
        http_client=httpx.Client(transport=httpx.MockTransport(fake)),
        http_async_client=httpx.AsyncClient(transport=httpx.MockTransport(fake)),
    )
    expected = [vector_for(t) for t in texts]
    assert list(model.embed_iter(texts)) == expected
    assert [c[0].embedding for c in model.embed_chunks_iter(texts)] == expected
    assert [v async for v in model.aembed_iter(texts)] == expected
    assert [c[0].embedding async for c in model.aembed_chunks_iter(texts)] == expected
    assert np.array_equal(
        np.concatenate(list(model.embed_iter(texts, as_numpy=True))), np.asarray(expected, np.float32)
    )
