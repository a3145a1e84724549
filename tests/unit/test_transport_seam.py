"""The transport seam: both drivers make every attempt through one small interface, and a double implements it.

The doubles here open no socket and import no HTTP library: they answer each ``Send`` from the
texts in its body, so a call's whole job (batches, retries, a 413's halves, discovery, the
cache's probe) runs through the drivers exactly as over httpx.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any, Self

import pytest

from hf_infer_core import AsyncEmbeddingClient, EmbeddingClient, PayloadTooLargeError
from hf_infer_core.base._errors import HFInferError
from hf_infer_core.drivers._seam import AsyncTransport, SyncTransport
from hf_infer_core.protocol._steps import HttpResult, Send

from .fakes import endpoint, vector_for


class Answers:
    """What the double's endpoint answers: vectors of the texts sent, a 413 over ``limit`` inputs, a 503 first."""

    def __init__(self, limit: int = 1000, unavailable: int = 0) -> None:
        self.limit = limit
        self.unavailable = unavailable
        self.sent: list[tuple[str, int]] = []
        self.headers: list[Mapping[str, str]] = []

    def __call__(self, step: Send, headers: Mapping[str, str]) -> HttpResult | HFInferError:
        self.headers.append(headers)
        if step.url.endswith("/info"):
            return HttpResult(200, json.dumps({"model_id": "double", "max_client_batch_size": 8}).encode())
        inputs = json.loads(step.body)["inputs"]
        self.sent.append((step.url, len(inputs)))
        if self.unavailable:
            self.unavailable -= 1
            return HttpResult(503, b'{"error": "starting"}', retry_after="0")
        if len(inputs) > self.limit:
            return HttpResult(413, b'{"error": "payload too large"}')
        return HttpResult(200, json.dumps([vector_for(t) for t in inputs]).encode())


class SyncDouble:
    """A :class:`SyncTransport` with no socket."""

    def __init__(self, answers: Answers) -> None:
        self.answers = answers
        self.closed = self.forked = False

    def attempt(self, step: Send, headers: Mapping[str, str]) -> HttpResult | HFInferError:
        return self.answers(step, headers)

    def close(self) -> None:
        self.closed = True

    def adopt(self, other: Self) -> None:
        self.answers = other.answers

    def after_fork(self) -> None:
        self.forked = True


class AsyncDouble:
    """An :class:`AsyncTransport` with no socket."""

    def __init__(self, answers: Answers) -> None:
        self.answers = answers
        self.readied = 0

    async def ready(self) -> None:
        self.readied += 1

    async def attempt(self, step: Send, headers: Mapping[str, str]) -> HttpResult | HFInferError:
        await asyncio.sleep(0)
        return self.answers(step, headers)

    async def aclose(self) -> None:
        pass

    def adopt(self, other: Self, connections: bool) -> None:
        pass

    def after_fork(self) -> None:
        pass


def sync_client(answers: Answers, **options: Any) -> EmbeddingClient:
    class Client(EmbeddingClient):
        def _open_transport(self, http_client: Any, transport: Any) -> SyncTransport:
            return SyncDouble(answers)

    return Client(endpoint(), sleep=lambda seconds: None, **options)


def async_client(answers: Answers, **options: Any) -> AsyncEmbeddingClient:
    async def no_wait(seconds: float) -> None:
        pass

    class Client(AsyncEmbeddingClient):
        def _open_transport(self, http_client: Any, transport: Any) -> AsyncTransport:
            return AsyncDouble(answers)

    return Client(endpoint(), sleep=no_wait, **options)


TEXTS = [f"text number {i}" for i in range(20)]


def test_the_doubles_implement_the_seams_interfaces() -> None:
    sync: SyncTransport = SyncDouble(Answers())
    async_: AsyncTransport = AsyncDouble(Answers())
    assert callable(sync.attempt) and callable(async_.attempt)


def test_the_threaded_driver_runs_a_whole_call_through_a_double() -> None:
    answers = Answers(limit=3, unavailable=1)
    with sync_client(answers, batch_size=16, max_concurrency=4) as client:
        vectors = client.embed(TEXTS)
        assert client.server_info is not None and client.server_info["model_id"] == "double"
    assert vectors == [vector_for(t) for t in TEXTS]  # in order, after a 503 and 413 halving
    sizes = [size for _, size in answers.sent]
    assert max(sizes) == 8  # /info's max_client_batch_size capped the batches first
    assert 3 in sizes or 2 in sizes  # then 413s halved them
    # The key is the transport's to add: the core's headers never carry it.
    assert all("authorization" not in {k.lower() for k in headers} for headers in answers.headers)


def test_the_asyncio_driver_runs_a_whole_call_through_a_double() -> None:
    answers = Answers(limit=3, unavailable=1)

    async def run() -> list[list[float]]:
        async with async_client(answers, batch_size=16, max_concurrency=4) as client:
            vectors = await client.embed(TEXTS)
            assert isinstance(client._wire, AsyncDouble) and client._wire.readied == len(
                answers.headers
            )  # every attempt, /info too
            return vectors

    assert asyncio.run(run()) == [vector_for(t) for t in TEXTS]


def test_a_double_that_refuses_every_size_gives_the_typed_error_naming_the_input() -> None:
    with sync_client(Answers(limit=0), max_retries=0) as client, pytest.raises(PayloadTooLargeError) as info:
        client.embed(["a", "b"])
    assert info.value.index in (0, 1)


def test_the_transport_is_closed_and_told_of_a_fork_by_its_driver() -> None:
    client = sync_client(Answers())
    double = client._wire
    assert isinstance(double, SyncDouble)
    client._reset_after_fork()
    client.close()
    assert double.forked and double.closed
