"""Fitting through the endpoint's /tokenize: exact request counts, byte offsets, bounded answers."""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
from collections import Counter
from typing import Any

import httpx
import pytest

from hf_infer_core import AsyncEmbeddingClient, EmbeddingClient
from hf_infer_core._core import TOKENIZE_BYTES, tokenize_answer_limit

from .fakes import FakeClock, endpoint, limiter, vector_for

TOKEN = re.compile(r"\w+|[^\w\s]")
LIMIT = 256


def tei_tokens(text: str) -> list[dict[str, Any]]:
    """TEI's /tokenize shape for a word-level tokenizer: byte offsets, [CLS]/[SEP] without offsets."""
    data = text.encode("utf-8")
    byte_at = [len(text[:i].encode("utf-8")) for i in range(len(text) + 1)] if len(data) != len(text) else None
    tokens: list[dict[str, Any]] = [{"id": 101, "text": "[CLS]", "special": True, "start": None, "stop": None}]
    for match in TOKEN.finditer(text):
        start, stop = match.span()
        if byte_at is not None:
            start, stop = byte_at[start], byte_at[stop]
        tokens.append({"id": 7, "text": data[start:stop].decode(), "special": False, "start": start, "stop": stop})
    tokens.append({"id": 102, "text": "[SEP]", "special": True, "start": None, "stop": None})
    return tokens


class TeiFake:
    """/info, /tokenize and /embed; /embed answers 413 for an input over the limit, as TEI does."""

    def __init__(self, batch: int = 32) -> None:
        self.paths: Counter[str] = Counter()
        self.batch = batch
        self.in_flight = 0
        self.most_in_flight = 0
        self.embedded: list[str] = []

    def route(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.paths[path] += 1
        if path.endswith("/info"):
            return httpx.Response(
                200, json={"model_id": "fake", "max_input_length": LIMIT, "max_client_batch_size": self.batch}
            )
        payload = json.loads(request.content)
        if path.endswith("/tokenize"):
            return httpx.Response(200, json=[tei_tokens(t) for t in payload["inputs"]])
        for text in payload["inputs"]:
            if len(tei_tokens(text)) > LIMIT:
                return httpx.Response(413, json={"error": "must have less than 256 tokens", "error_type": "validation"})
        self.embedded += payload["inputs"]
        return httpx.Response(200, json=[vector_for(t) for t in payload["inputs"]])

    def __call__(self, request: httpx.Request) -> httpx.Response:
        return self.route(request)

    async def handle_async(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            for _ in range(3):
                await asyncio.sleep(0)  # let the other tasks start theirs
            return self.route(request)
        finally:
            self.in_flight -= 1


def documents(count: int = 20, words: int = 1060, seed: int = 3) -> list[str]:
    rng = random.Random(seed)
    vocabulary = ["the", "river", "delta", "carries", "silt", "seaward", "while", "Zürich", "café", "tides"]
    docs = []
    for _ in range(count):
        sentences = []
        while sum(len(s.split()) for s in sentences) < words:
            sentences.append(" ".join(rng.choice(vocabulary) for _ in range(rng.randint(8, 24))).capitalize() + ".")
        docs.append(" ".join(sentences))
    return docs


def client(fake: TeiFake, **options: Any) -> EmbeddingClient:
    clock = FakeClock()
    return EmbeddingClient(
        endpoint(),
        transport=httpx.MockTransport(fake),
        rate_limiter=limiter(clock),
        clock=clock,
        sleep=clock.sleep,
        discover=True,
        **options,
    )


def test_twenty_documents_take_one_tokenize_request() -> None:
    fake = TeiFake()
    docs = documents()
    assert sum(len(d.encode()) for d in docs) <= TOKENIZE_BYTES  # one group of text
    with client(fake) as c:
        chunks = c.embed_chunks(docs)
    pieces = sum(len(text_chunks) for text_chunks in chunks)
    assert fake.paths == {"/info": 1, "/tokenize": 1, "/embed": math.ceil(pieces / 32)}
    for doc, text_chunks in zip(docs, chunks, strict=True):
        for chunk in text_chunks:
            assert chunk.text == doc[chunk.start : chunk.end]  # character offsets, from byte offsets
            assert len(tei_tokens(chunk.text)) <= LIMIT
    # Every piece of every Elasticsearch chunk is sent, none repeated: fitting loses no word.
    assert sorted(fake.embedded) == sorted(c.text for cs in chunks for c in cs)
    total = fake.paths["/info"] + fake.paths["/tokenize"] + fake.paths["/embed"]
    assert total / fake.paths["/embed"] <= 1.75


def test_tokenize_requests_are_grouped_by_size_and_batch() -> None:
    fake = TeiFake(batch=4)
    docs = documents(count=10)
    with client(fake) as c:
        c.embed_documents(docs)
    assert fake.paths["/tokenize"] == 3  # 10 documents, 4 a request


def test_a_dense_tokenize_answer_is_bounded_by_what_was_sent() -> None:
    """A 113 kB markdown table of numbers: a 1.6 MB answer, over the default 1 MiB + 256 KiB."""
    rows = "\n".join("| " + " | ".join(f"{r * c:.3f}" for c in range(1, 12)) + " |" for r in range(1500))
    body = json.dumps({"inputs": [rows], "add_special_tokens": True}).encode()
    answer = json.dumps([tei_tokens(rows)]).encode()
    assert len(answer) > (1 << 20) + (256 << 10)
    assert len(answer) < tokenize_answer_limit(len(body))
    fake = TeiFake()
    with client(fake) as c:
        (vector,) = c.embed_documents([rows])
    assert fake.paths["/tokenize"] == 1 and vector


def test_async_tokenize_requests_stay_within_max_concurrency() -> None:
    fake = TeiFake(batch=1)
    docs = documents(count=8)

    async def main() -> None:
        clock = FakeClock()
        async with AsyncEmbeddingClient(
            endpoint(),
            transport=httpx.MockTransport(fake.handle_async),
            rate_limiter=limiter(clock),
            clock=clock,
            sleep=clock.asleep,
            discover=True,
            max_concurrency=2,
        ) as c:
            await c.embed_documents(docs)

    asyncio.run(main())
    assert fake.paths["/tokenize"] == 8
    assert fake.most_in_flight == 2


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_sync_and_async_fit_alike(driver: str) -> None:
    docs = documents(count=3)
    fake = TeiFake()
    if driver == "sync":
        with client(fake) as c:
            chunks = c.embed_chunks(docs)
    else:

        async def main() -> Any:
            clock = FakeClock()
            async with AsyncEmbeddingClient(
                endpoint(),
                transport=httpx.MockTransport(fake.handle_async),
                rate_limiter=limiter(clock),
                clock=clock,
                sleep=clock.asleep,
                discover=True,
            ) as c:
                return await c.embed_chunks(docs)

        chunks = asyncio.run(main())
    with client(TeiFake()) as c:
        expected = c.embed_chunks(docs)
    assert [[(p.start, p.end) for p in cs] for cs in chunks] == [[(p.start, p.end) for p in cs] for cs in expected]
