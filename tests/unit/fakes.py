"""Test doubles: a fake HF endpoint for httpx.MockTransport, a fake clock, and endpoint builders."""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from hf_infer_core import AsyncEmbeddingClient, InferenceEndpoint, RateLimiter

SECRET = "hf_SECRET_canary_123"
URL = "http://endpoint.test/embed"


def endpoint(
    url: str = URL, rpm: int = 1_000_000, chunking: dict[str, Any] | None = None, **settings: Any
) -> InferenceEndpoint:
    body: dict[str, Any] = {
        "service": "hugging_face",
        "service_settings": {"url": url, "api_key": SECRET, "rate_limit": {"requests_per_minute": rpm}, **settings},
    }
    if chunking is not None:
        body["chunking_settings"] = chunking
    return InferenceEndpoint.from_request("text_embedding", "test-endpoint", body)


def vector_for(text: str) -> list[float]:
    """A deterministic 4-d vector that identifies its text, so order mistakes show."""
    h = sum(ord(c) * (i + 1) for i, c in enumerate(text)) % 9973
    return [float(len(text)), float(h), 1.0, -0.5]


class FakeClock:
    """A clock that only moves when something sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


@dataclass
class FakeEndpoint:
    """Answers {"inputs": [...]} with one vector per input, after consulting a fault script."""

    script: Callable[[int, list[str]], httpx.Response | None] | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[httpx.Headers] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/info"):
            return httpx.Response(
                200, json={"model_id": "fake/model", "max_input_length": 256, "max_client_batch_size": 2}
            )
        payload = json.loads(request.content)
        with self.lock:
            number = len(self.requests)
            self.requests.append(payload)
            self.headers.append(request.headers)
        if self.script is not None:
            answer = self.script(number, payload["inputs"])
            if answer is not None:
                return answer
        return httpx.Response(200, json=[vector_for(t) for t in payload["inputs"]])

    @property
    def batches(self) -> list[list[str]]:
        return [r["inputs"] for r in self.requests]


def limiter(clock: FakeClock, rpm: int = 1_000_000) -> RateLimiter:
    return RateLimiter(rpm, clock=clock)


class Awaited:
    """An AsyncEmbeddingClient whose coroutine methods return their results: one test body, both drivers.

    Its streams are sync iterators that drive the async stream one item at a time on one loop, so
    a test sees the same laziness, order and partial results through either driver.
    """

    def __init__(self, client: AsyncEmbeddingClient) -> None:
        self._client = client

    def __getattr__(self, name: str) -> object:
        attribute = getattr(self._client, name)
        if inspect.iscoroutinefunction(attribute):
            return lambda *args, **kwargs: asyncio.run(attribute(*args, **kwargs))
        return attribute

    def embed_iter(self, texts: Any, **options: Any) -> Iterator[Any]:
        return self._iterate(self._client.aembed_iter(texts, **options))  # checks the arguments now

    def embed_chunks_iter(self, texts: Any) -> Iterator[Any]:
        return self._iterate(self._client.aembed_chunks_iter(texts))

    @staticmethod
    def _iterate(stream: AsyncIterator[Any]) -> Iterator[Any]:
        with asyncio.Runner() as runner:
            try:
                while True:
                    try:
                        item = runner.run(anext(stream))
                    except StopAsyncIteration:
                        return
                    yield item
            finally:
                runner.run(stream.aclose())  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return repr(self._client)

    def __enter__(self) -> Awaited:
        return self

    def __exit__(self, *exc: object) -> None:
        pass  # each asyncio.run closes its loop's HTTP client as the loop ends


DRIVERS = ["sync", "async"]


def build(driver: str, handler: Callable[[httpx.Request], httpx.Response], **options: Any) -> Any:
    """A client of ``driver`` ("sync" or "async") over ``handler`` (an httpx.MockTransport handler)."""
    from hf_infer_core import EmbeddingClient

    cls = EmbeddingClient if driver == "sync" else AsyncEmbeddingClient
    return cls(endpoint(), transport=httpx.MockTransport(handler), **options)


def call(client: Any, method: str, *args: Any) -> Any:
    """Run a client method to its result, whichever driver the client is."""
    result = getattr(client, method)(*args)
    if asyncio.iscoroutine(result):
        return asyncio.run(result)
    return result


# Shaped like a Hugging Face token (hf_ and 36 letters and digits): what redaction must catch.
TOKEN = "hf_" + "Ab1" * 12


def es_body(url: str = URL, api_key: str = "k", **service_settings: Any) -> dict[str, Any]:
    """An Elasticsearch ``PUT _inference`` body of the hugging_face service."""
    return {"service": "hugging_face", "service_settings": {"url": url, "api_key": api_key, **service_settings}}


def answer(request: httpx.Request) -> httpx.Response:
    """A plain endpoint for httpx.MockTransport: no /info, each input's vector."""
    if request.url.path.endswith("/info"):
        return httpx.Response(404)
    inputs = json.loads(request.content)["inputs"]
    return httpx.Response(200, json=[vector_for(t) for t in inputs])
