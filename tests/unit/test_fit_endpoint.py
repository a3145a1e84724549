"""Fitting through the endpoint's /tokenize: exact request counts, byte offsets, bounded answers."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import random
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from hf_infer_core import AsyncEmbeddingClient, EmbeddingClient
from hf_infer_core.protocol._wire import TOKENIZE_BYTES, tokenize_answer_limit

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


def client(fake: Any, **options: Any) -> EmbeddingClient:
    """An EmbeddingClient over ``fake`` on a fake clock, with the default options (discovery on)."""
    clock = FakeClock()
    return EmbeddingClient(
        endpoint(),
        transport=httpx.MockTransport(fake),
        rate_limiter=limiter(clock),
        clock=clock,
        sleep=clock.sleep,
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


def run_async(handler: Any, use: Callable[[AsyncEmbeddingClient], Awaitable[Any]], **options: Any) -> Any:
    """``use`` an AsyncEmbeddingClient over ``handler`` on a fake clock; its result."""

    async def main() -> Any:
        clock = FakeClock()
        async with AsyncEmbeddingClient(
            endpoint(),
            transport=httpx.MockTransport(handler),
            rate_limiter=limiter(clock),
            clock=clock,
            sleep=clock.asleep,
            **options,
        ) as c:
            return await use(c)

    return asyncio.run(main())


def test_async_tokenize_requests_stay_within_max_concurrency() -> None:
    fake = TeiFake(batch=1)
    docs = documents(count=8)
    run_async(fake.handle_async, lambda c: c.embed_documents(docs), discover=True, max_concurrency=2)
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
        chunks = run_async(fake.handle_async, lambda c: c.embed_chunks(docs), discover=True)
    with client(TeiFake()) as c:
        expected = c.embed_chunks(docs)
    assert [[(p.start, p.end) for p in cs] for cs in chunks] == [[(p.start, p.end) for p in cs] for cs in expected]


class Refusing:
    """An endpoint with neither /info nor /tokenize that refuses inputs over ``words`` words (413)."""

    def __init__(self, words: int = 40, tokenize: bool = False, stated: bool = False) -> None:
        self.words = words
        self.tokenize = tokenize
        self.stated = stated
        self.paths: Counter[str] = Counter()
        self.refused = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.paths[path] += 1
        if path.endswith("/tokenize") and self.tokenize:
            inputs = json.loads(request.content)["inputs"]
            return httpx.Response(200, json=[tei_tokens(t) for t in inputs])
        if not path.endswith("/embed"):
            return httpx.Response(404, text="Not Found")
        inputs = json.loads(request.content)["inputs"]
        if any(len(TOKEN.findall(t)) + 2 > self.words for t in inputs):
            self.refused += 1
            message = f"`inputs` must have less than {self.words} tokens" if self.stated else "payload too large"
            return httpx.Response(413, json={"error": message, "error_type": "validation"})
        return httpx.Response(200, json=[vector_for(t) for t in inputs])


def test_defaults_never_raise_413_for_a_text_that_can_be_split() -> None:
    fake = Refusing(words=40)
    docs = documents(count=3, words=600)
    with client(fake) as c:
        vectors = c.embed_documents(docs)
        chunks = c.embed_chunks(docs)
        streamed = list(c.embed_iter(docs))
        streamed_chunks = list(c.embed_chunks_iter(docs))
    assert len(vectors) == 3 and streamed == vectors
    assert fake.paths["/info"] == 1 and fake.refused > 0
    for doc, text_chunks, stream_chunks in zip(docs, chunks, streamed_chunks, strict=True):
        assert [(p.start, p.end) for p in text_chunks] == [(p.start, p.end) for p in stream_chunks]
        for piece in text_chunks:
            assert piece.text == doc[piece.start : piece.end]
            assert len(TOKEN.findall(piece.text)) + 2 <= 40
        # Every Elasticsearch chunk is covered by its pieces, in order, with nothing lost.
        for source in {p.source for p in text_chunks}:
            own = [p for p in text_chunks if p.source == source]
            assert own[0].start == source[0] and own[-1].end == source[1]
            assert all(a.end == b.start for a, b in itertools.pairwise(own))


def test_embed_still_raises_and_points_to_embed_documents() -> None:
    from hf_infer_core import PayloadTooLargeError

    with client(Refusing(words=40)) as c, pytest.raises(PayloadTooLargeError, match="embed_documents") as info:
        c.embed(["short", " ".join(["word"] * 100)])
    assert info.value.index == 1


def test_the_limit_a_413_states_is_learnt_and_later_texts_are_fitted_up_front() -> None:
    fake = Refusing(words=40, tokenize=True, stated=True)
    with client(fake) as c:
        c.embed_documents(documents(count=1, words=300))
        refused = fake.refused
        assert refused > 0 and c._core.token_limit == 40
        c.embed_documents(documents(count=2, words=300, seed=9))
    assert fake.refused == refused  # fitted through /tokenize: no 413 any more
    assert fake.paths["/tokenize"] >= 1


def test_a_single_character_over_the_limit_still_raises() -> None:
    from hf_infer_core import PayloadTooLargeError

    class Tiny(Refusing):
        def __call__(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/embed"):
                return httpx.Response(413, json={"error": "too large", "error_type": "validation"})
            return super().__call__(request)

    with client(Tiny()) as c, pytest.raises(PayloadTooLargeError):
        c.embed_documents(["ab"])


def test_async_splits_what_the_endpoint_refuses_like_sync() -> None:
    docs = documents(count=2, words=400)
    with client(Refusing(words=40)) as c:
        expected = c.embed_chunks(docs)
        expected_vectors = c.embed_documents(docs)

    fake = Refusing(words=40)

    async def streamed_vectors(c: AsyncEmbeddingClient) -> list[Any]:
        return [v async for v in c.aembed_iter(docs)]

    chunks = run_async(fake, lambda c: c.embed_chunks(docs))
    vectors = run_async(fake, lambda c: c.embed_documents(docs))
    streamed = run_async(fake, streamed_vectors)
    assert [[(p.start, p.end) for p in cs] for cs in chunks] == [[(p.start, p.end) for p in cs] for cs in expected]
    assert vectors == expected_vectors == streamed


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_streams_count_tokens_one_request_per_group_not_per_text(driver: str) -> None:
    """Issue #29: embed_iter and aembed_iter fitted each text alone (one /tokenize per text)."""
    fake = TeiFake()
    docs = documents(count=20, words=400)  # each over the limit: every text is counted
    if driver == "sync":
        with client(fake) as c:
            streamed = list(c.embed_iter(iter(docs)))
            whole = c.embed_documents(docs)
    else:

        async def run() -> tuple[list[list[float]], list[list[float]]]:
            clock = FakeClock()
            transport = httpx.MockTransport(fake.handle_async)
            async with AsyncEmbeddingClient(
                endpoint(), transport=transport, rate_limiter=limiter(clock), clock=clock, sleep=clock.asleep
            ) as c:
                return [v async for v in c.aembed_iter(docs)], await c.embed_documents(docs)

        streamed, whole = asyncio.run(run())
    assert streamed == whole  # the same vectors, in order
    # 20 texts of ~2.6 KB: one group each way (the stream's, then embed_documents').
    assert fake.paths["/tokenize"] == 2
    assert fake.paths["/tokenize"] / fake.paths["/embed"] <= 1.75


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_an_auto_truncating_endpoint_that_cannot_count_tokens_is_warned_of_once(
    driver: str, caplog: pytest.LogCaptureFixture
) -> None:
    """TEI 1.9 cuts an input over its limit by default (auto_truncate): chunks that cannot be fitted say so."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/info"):
            return httpx.Response(
                200, json={"model_id": "m", "max_input_length": 12, "auto_truncate": True, "version": "1.9.3"}
            )
        if request.url.path.endswith("/tokenize"):
            return httpx.Response(404)
        texts = json.loads(request.content)["inputs"]
        return httpx.Response(200, json=[vector_for(t) for t in texts])  # never refuses: it truncates

    clock = FakeClock()
    cls = EmbeddingClient if driver == "sync" else AsyncEmbeddingClient
    client = cls(
        endpoint(chunking={"strategy": "word", "max_chunk_size": 40, "overlap": 0}),
        transport=httpx.MockTransport(handler),
        rate_limiter=limiter(clock),
        clock=clock,
    )
    document = " ".join(f"w{i}" for i in range(40))
    with caplog.at_level("WARNING", logger="hf_infer_core"):
        for _ in range(2):
            call = client.embed_documents([document])
            if driver == "async":
                asyncio.run(call)
    warnings = [r.getMessage() for r in caplog.records if "auto_truncate" in r.getMessage()]
    assert len(warnings) == 1 and "12 tokens" in warnings[0] and "tokenizer=" in warnings[0]
