"""wire_format='base64': TEI's OpenAI route, float32 bytes on the wire, the same vectors."""

from __future__ import annotations

import base64
import contextlib
import json
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from hf_infer_core import AsyncEmbeddingClient, EmbeddingClient, InvalidRequestError, ResponseFormatError

from .fakes import Awaited, FakeClock, endpoint, limiter


def b64(values: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def openai_answer(vectors: list[list[float]], shuffle: bool = False) -> dict[str, object]:
    data = [{"object": "embedding", "embedding": b64(v), "index": i} for i, v in enumerate(vectors)]
    return {"object": "list", "data": data[::-1] if shuffle else data, "model": "m", "usage": {}}


def client(
    handler: object, cls: type[Any] | str = EmbeddingClient, chunking: dict[str, Any] | None = None, **options: object
) -> Any:
    """A base64 client (``cls``: sync or async) over ``handler``, on a fake clock."""
    clock = FakeClock()
    if cls == "async":  # the async driver behind the sync facade: the same test body
        return Awaited(client(handler, AsyncEmbeddingClient, chunking, **options))
    if cls == "sync":
        cls = EmbeddingClient
    return cls(
        endpoint(url="http://tei.test/embed", chunking=chunking),
        transport=httpx.MockTransport(handler),  # type: ignore[arg-type]
        rate_limiter=limiter(clock),
        sleep=clock.sleep if cls is EmbeddingClient else clock.asleep,
        clock=clock,
        wire_format="base64",
        **{"discover": False, **options},
    )


@contextlib.contextmanager
def python_floats_forbidden() -> Iterator[None]:
    """Make every way base64 vectors become Python floats fail."""
    import hf_infer_core.embeddings._wire as core

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the list-of-Python-floats path was taken")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(core, "_float_lists", fail)
        patch.setattr(core.array, "array", fail)
        yield


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_base64_requests_go_to_v1_embeddings_and_decode_exactly(driver: str) -> None:
    seen: list[httpx.Request] = []
    vectors = [[0.1, -2.5, 3.25], [1e-8, 0.0, 7.0]]

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=openai_answer(vectors, shuffle=True))  # index order is restored

    with client(handler, driver) as c:
        got = c.embed(["a", "b"])
    assert seen[0].url.path == "/v1/embeddings"
    assert json.loads(seen[0].content) == {"input": ["a", "b"], "encoding_format": "base64", "model": "test-endpoint"}
    expected = [list(struct.unpack("<3f", struct.pack("<3f", *v))) for v in vectors]  # float32 values, exactly
    assert got == expected


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"data": [{"index": 0, "embedding": "not base64!"}]}, "not with base64 vectors"),
        ({"data": [{"index": 0, "embedding": base64.b64encode(b"abc").decode()}]}, "not whole float32"),
        ({"data": [{"index": 0, "embedding": b64([float("nan"), 1.0])}]}, "NaN"),
        ({"data": []}, "received 0 vectors"),
        ({"data": [{"index": 0, "embedding": 1.5}]}, "not with base64 vectors"),
        # Two unpadded 18-character pieces are invalid alone but would join into valid base64.
        ({"data": [{"index": i, "embedding": "A" * 18} for i in range(2)]}, "not with base64 vectors"),
        ({"data": [{"index": 0, "embedding": b64([1.0, 2.0, 3.0])}, {"index": 1, "embedding": b64([1.0])}]}, "ragged"),
    ],
)
def test_bad_base64_answers_are_typed(answer: dict[str, object], message: str) -> None:
    count = len(answer["data"]) or 1  # type: ignore[arg-type]
    with (
        client(lambda r: httpx.Response(200, json=answer), max_retries=0) as c,
        pytest.raises(ResponseFormatError, match=message),
    ):
        c.embed(["a", "b"][:count])


@pytest.mark.parametrize("numpy_installed", [True, False])
@pytest.mark.parametrize("dims", [1, 2, 3, 384])  # 1 and 2: padded base64 pieces, decoded one by one
def test_every_dimension_count_decodes_exactly_with_and_without_numpy(
    dims: int, numpy_installed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import random

    rng = random.Random(dims)
    vectors = [[rng.uniform(-1, 1) for _ in range(dims)] for _ in range(5)]
    expected = [list(struct.unpack(f"<{dims}f", struct.pack(f"<{dims}f", *v))) for v in vectors]
    if not numpy_installed:
        monkeypatch.setitem(__import__("sys").modules, "numpy", None)  # import numpy raises ImportError
    with client(lambda r: httpx.Response(200, json=openai_answer(vectors, shuffle=True))) as c:
        got = c.embed([str(i) for i in range(5)])
    assert got == expected and all(type(x) is float for v in got for x in v)
    bad = [list(v) for v in vectors]
    bad[3][0] = float("inf")
    with (
        client(lambda r: httpx.Response(200, json=openai_answer(bad)), max_retries=0) as c,
        pytest.raises(ResponseFormatError, match="vector 3 of the batch holds NaN or infinite"),
    ):
        c.embed([str(i) for i in range(5)])


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_an_endpoint_without_the_route_says_so(driver: str) -> None:
    with (
        client(lambda r: httpx.Response(404, text="Not Found"), driver) as c,
        pytest.raises(InvalidRequestError) as info,
    ):
        c.embed(["a"])
    assert "wire_format='base64' needs TEI's POST /v1/embeddings" in str(info.value)


def test_request_options_the_route_cannot_take_are_refused() -> None:
    with pytest.raises(ValueError, match="wire_format='base64'"):
        client(lambda r: None, normalize=False)


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_as_numpy_over_base64_makes_no_python_floats(driver: str) -> None:
    import numpy as np

    by_text = {"a": [0.1, -2.5, 3.25], "b": [1e-8, 0.0, 7.0], "c": [4.0, 5.0, 6.0]}

    def handler(request: httpx.Request) -> httpx.Response:
        inputs = json.loads(request.content)["input"]
        return httpx.Response(200, json=openai_answer([by_text[t] for t in inputs], shuffle=True))

    expected = np.asarray(list(by_text.values()), dtype=np.float32)
    with client(handler, driver, batch_size=2) as c:
        with python_floats_forbidden():
            got = c.embed(["a", "b", "c"], as_numpy=True)
        assert got.dtype == np.float32 and np.array_equal(got, expected)
        assert c.embed(["a", "b", "c"]) == [list(map(float, row)) for row in expected]  # the lists agree


@pytest.mark.parametrize("pooling", ["mean", "first"])
def test_documents_and_streams_as_numpy_over_base64_make_no_python_floats(pooling: str) -> None:
    """embed_documents and embed_iter with as_numpy: pooled in numpy, equal to the list path's vectors."""
    import asyncio

    import numpy as np

    from .fakes import vector_for

    def handler(request: httpx.Request) -> httpx.Response:
        inputs = json.loads(request.content)["input"]
        return httpx.Response(200, json=openai_answer([[v / 7 for v in vector_for(t)] for t in inputs], shuffle=True))

    words = [f"word{i}" for i in range(17)]
    texts = ["one", " ".join(words), "two words", " ".join(words[:11]), " ".join(reversed(words))]
    chunking = {"strategy": "word", "max_chunk_size": 10, "overlap": 5}
    options: dict[str, Any] = {"chunking": chunking, "batch_size": 3, "pooling": pooling}

    with client(handler, **options) as c:
        expected = np.asarray(c.embed_documents(texts), dtype=np.float32)  # the list path
        assert any(len(chunks) > 2 for chunks in c.embed_chunks(texts))  # texts of several chunks are pooled
        with python_floats_forbidden():
            got = c.embed_documents(texts, as_numpy=True)
            streamed = np.concatenate(list(c.embed_iter(iter(texts), as_numpy=True)))

            async def run_async() -> tuple[Any, Any]:
                async with client(handler, AsyncEmbeddingClient, **options) as a:
                    whole = await a.embed_documents(texts, as_numpy=True)
                    parts = [part async for part in a.aembed_iter(texts, as_numpy=True)]
                    return whole, np.concatenate(parts)

            async_whole, async_streamed = asyncio.run(run_async())
    for result in (got, streamed, async_whole, async_streamed):
        assert result.dtype == np.float32
        assert np.array_equal(result, expected)  # bit for bit: same order, same exact norm
