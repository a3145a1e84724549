"""What each bad input gets (the README's table), through the real client code and a mock endpoint."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from hf_infer_core import AsyncEmbeddingClient, EmbeddingClient, InvalidInputError, PayloadTooLargeError, RateLimiter

from .fakes import SECRET, Awaited, endpoint, vector_for

PAYLOAD_LIMIT = 2_000_000


def handler(request: httpx.Request) -> httpx.Response:
    if len(request.content) > PAYLOAD_LIMIT:  # like TEI: a plain-text 413 above 2 MB
        return httpx.Response(413, text="Failed to buffer the request body: length limit exceeded")
    inputs = json.loads(request.content)["inputs"]
    return httpx.Response(200, json=[vector_for(t) for t in inputs])


@pytest.fixture(params=["sync", "async"])
def client(request: pytest.FixtureRequest) -> Any:
    """Make a client of the driver under test (the async one behind :class:`Awaited`): one body, both drivers."""

    def make(**options: object) -> Any:
        config = options.pop("endpoint", None) or endpoint()
        settings: Any = {"discover": False, "rate_limiter": RateLimiter(10**9), **options}
        if request.param == "sync":
            return EmbeddingClient(config, transport=httpx.MockTransport(handler), **settings)  # type: ignore[arg-type]
        return Awaited(AsyncEmbeddingClient(config, transport=httpx.MockTransport(handler), **settings))  # type: ignore[arg-type]

    return make


@pytest.mark.parametrize(
    ("texts", "error", "message"),
    [
        (None, TypeError, "texts must be a list of str, got NoneType"),
        (["ok", None], TypeError, r"texts\[1\] must be a str, got NoneType"),
        (["ok", 42], TypeError, r"texts\[1\] must be a str, got int"),
        (["ok", b"bytes"], TypeError, r"texts\[1\] must be a str, got bytes"),
        ("a single string", TypeError, "not a single str"),
        (["ok", "bad \ud800 surrogate"], InvalidInputError, r"texts\[1\] holds a lone surrogate at position 4"),
    ],
)
@pytest.mark.parametrize("method", ["embed", "embed_documents", "embed_chunks"])
def test_rejected_before_any_request(
    client: Any, texts: object, error: type[Exception], message: str, method: str
) -> None:
    with client() as c, pytest.raises(error, match=message):
        getattr(c, method)(texts)


def test_empty_list_and_empty_string(client: Any) -> None:
    with client() as c:
        assert c.embed([]) == []
        assert c.embed_documents([]) == []
        assert c.embed([""]) == [vector_for("")]
        assert c.embed_documents([""]) == [vector_for("")]
        (chunks,) = c.embed_chunks([""])
        assert [(ch.start, ch.end, ch.text) for ch in chunks] == [(0, 0, "")]


def test_control_characters_are_sent_as_is(client: Any) -> None:
    text = "tab\tnul\x00bell\x07esc\x1b line\nsep\u2028end"
    with client() as c:
        assert c.embed([text]) == [vector_for(text)]


def test_ten_megabyte_string(client: Any) -> None:
    big = "All work and no play makes a dull text. " * 262_144  # 10.5 MB
    with client() as c, pytest.raises(PayloadTooLargeError) as info:
        c.embed(["small", big])  # as is: one input over the endpoint's 2 MB limit
    assert info.value.index == 1
    assert SECRET not in str(info.value)
    chunked = endpoint(chunking={"strategy": "word", "max_chunk_size": 250, "overlap": 0})
    with client(endpoint=chunked, batch_size=64) as c:
        (vector,) = c.embed_documents([big])  # chunked, every chunk embedded, pooled
        assert len(vector) == 4


def test_hundred_thousand_items_in_order(client: Any) -> None:
    texts = [f"item {i}" for i in range(100_000)]
    with client(batch_size=256, max_concurrency=4) as c:
        vectors = c.embed(texts)
    assert len(vectors) == 100_000
    assert vectors[0] == vector_for("item 0")
    assert vectors[54_321] == vector_for("item 54321")
    assert vectors[-1] == vector_for("item 99999")
