"""The rerank clients (issue #30): one test body through both drivers, against a scripted TEI ``/rerank``."""

from __future__ import annotations

import asyncio
import json
import math
import random
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from hf_infer_core import (
    AsyncEmbeddingClient,
    AsyncRerankClient,
    ConfigError,
    EmbeddingClient,
    EmbeddingOptions,
    InferenceEndpoint,
    InvalidInputError,
    InvalidRequestError,
    PayloadTooLargeError,
    RerankClient,
    RerankOptions,
    RerankResult,
    ResponseFormatError,
    ServerError,
    TimeoutError,
)

from .fakes import SECRET, FakeClock, limiter

DRIVERS = ["sync", "async"]
PASSAGES = [f"passage {i} about {'cats' if i % 3 else 'dogs'} " + "word " * (i % 7) for i in range(23)]


def score_of(query: str, text: str) -> float:
    """A deterministic score in [0, 1) per pair, so a wrong merge or order shows."""
    return (zlib.crc32(f"{query}\x00{text}".encode()) % 10_000) / 10_000


def rerank_endpoint(url: str = "http://reranker.test", **task_settings: Any) -> InferenceEndpoint:
    body: dict[str, Any] = {
        "service": "hugging_face",
        "service_settings": {"url": url, "api_key": SECRET, "rate_limit": {"requests_per_minute": 1_000_000}},
    }
    if task_settings:
        body["task_settings"] = task_settings
    return InferenceEndpoint.from_request("rerank", "test-reranker", body)


@dataclass
class FakeReranker:
    """TEI's ``/rerank``: ``[{index, score}]`` sorted by score, after a fault script; 413 above ``limit``."""

    limit: int | None = None
    info: dict[str, Any] | None = None
    script: Callable[[int, dict[str, Any]], httpx.Response | None] | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    headers: list[httpx.Headers] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/info"):
            return httpx.Response(200, json=self.info) if self.info is not None else httpx.Response(404)
        payload = json.loads(request.content)
        with self.lock:
            number = len(self.requests)
            self.requests.append(payload)
            self.paths.append(request.url.path)
            self.headers.append(request.headers)
        if self.script is not None and (scripted := self.script(number, payload)) is not None:
            return scripted
        texts = payload["texts"]
        if self.limit is not None and len(texts) > self.limit:
            message = f"batch size {len(texts)} > maximum allowed batch size {self.limit}"
            return httpx.Response(413, json={"error": message, "error_type": "validation"})
        ranks = [{"index": i, "score": score_of(payload["query"], t)} for i, t in enumerate(texts)]
        return httpx.Response(200, json=sorted(ranks, key=lambda r: -r["score"]))

    @property
    def sizes(self) -> list[int]:
        return [len(r["texts"]) for r in self.requests]


class AwaitedRerank:
    """An AsyncRerankClient whose ``rerank`` returns its result: one test body, both drivers."""

    def __init__(self, client: AsyncRerankClient) -> None:
        self._client = client

    def rerank(self, *args: Any, **kwargs: Any) -> list[RerankResult]:
        return asyncio.run(self._client.rerank(*args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def client_for(driver: str, fake: FakeReranker, clock: FakeClock | None = None, **options: Any) -> Any:
    clock = clock or FakeClock()
    endpoint = options.pop("endpoint", None) or rerank_endpoint()
    common = {
        "rate_limiter": limiter(clock),
        "clock": clock,
        "rng": random.Random(1),
        **options,
    }
    if driver == "sync":
        return RerankClient(endpoint, transport=httpx.MockTransport(fake), sleep=clock.sleep, **common)
    return AwaitedRerank(AsyncRerankClient(endpoint, transport=httpx.MockTransport(fake), sleep=clock.asleep, **common))


def expected(query: str, texts: list[str]) -> list[tuple[int, float]]:
    scored = [(i, score_of(query, t)) for i, t in enumerate(texts)]
    return sorted(scored, key=lambda pair: (-pair[1], pair[0]))


# ------------------------------------------------------------------ ranking and batches


@pytest.mark.parametrize("driver", DRIVERS)
def test_batches_are_scored_apart_and_merged_exactly(driver: str) -> None:
    fake = FakeReranker()
    client = client_for(driver, fake, batch_size=5, max_concurrency=3)
    results = client.rerank("which animal barks?", PASSAGES)
    assert [(r.index, r.relevance_score) for r in results] == expected("which animal barks?", PASSAGES)
    assert all(r.text is None for r in results)
    assert sorted(fake.sizes) == [3, 5, 5, 5, 5]
    assert set(fake.paths) == {"/rerank"}
    assert {h["authorization"] for h in fake.headers} == {f"Bearer {SECRET}"}
    assert fake.requests[0]["return_text"] is False and fake.requests[0]["truncate"] is True
    assert set(fake.requests[0]) == {"query", "texts", "return_text", "truncate"}


@pytest.mark.parametrize("driver", DRIVERS)
def test_top_n_and_return_documents_from_the_call_then_the_task_settings(driver: str) -> None:
    fake = FakeReranker()
    best = expected("q", PASSAGES)
    plain = client_for(driver, fake)
    assert [r.index for r in plain.rerank("q", PASSAGES, top_n=3)] == [i for i, _ in best[:3]]
    assert [r.text for r in plain.rerank("q", PASSAGES, top_n=2, return_documents=True)] == [
        PASSAGES[i] for i, _ in best[:2]
    ]
    assert len(plain.rerank("q", PASSAGES, top_n=100)) == len(PASSAGES)
    configured = client_for(driver, fake, endpoint=rerank_endpoint(top_n=4, return_documents=True))
    results = configured.rerank("q", PASSAGES)
    assert [(r.index, r.text) for r in results] == [(i, PASSAGES[i]) for i, _ in best[:4]]
    overridden = configured.rerank("q", PASSAGES, top_n=1, return_documents=False)
    assert [(r.index, r.text) for r in overridden] == [(best[0][0], None)]


@pytest.mark.parametrize("driver", DRIVERS)
def test_equal_scores_keep_the_passages_order(driver: str) -> None:
    def same(number: int, payload: dict[str, Any]) -> httpx.Response:
        return httpx.Response(200, json=[{"index": i, "score": 0.5} for i in reversed(range(len(payload["texts"])))])

    client = client_for(driver, FakeReranker(script=same), batch_size=4)
    assert [r.index for r in client.rerank("q", PASSAGES[:10])] == list(range(10))


@pytest.mark.parametrize("driver", DRIVERS)
def test_info_caps_the_batch_and_a_bare_server_url_gets_the_rerank_route(driver: str) -> None:
    fake = FakeReranker(info={"model_id": "fake/reranker", "max_client_batch_size": 4, "max_input_length": 512})
    client = client_for(driver, fake, endpoint=rerank_endpoint("http://reranker.test:8080/"))
    client.rerank("q", PASSAGES[:10])
    assert sorted(fake.sizes) == [2, 4, 4]
    assert client.server_info["model_id"] == "fake/reranker"
    assert client.batch_size == 4
    other = FakeReranker()
    client_for(driver, other, endpoint=rerank_endpoint("http://proxy.test/models/bge/rerank-v1")).rerank("q", ["a"])
    assert other.paths == ["/models/bge/rerank-v1"]


@pytest.mark.parametrize("driver", DRIVERS)
def test_adaptive_concurrency_serves_the_rerank_client_too(driver: str) -> None:
    fake = FakeReranker()
    client = client_for(driver, fake, batch_size=4, max_concurrency="auto", max_concurrency_limit=6)
    results = client.rerank("q", PASSAGES)
    assert [(r.index, r.relevance_score) for r in results] == expected("q", PASSAGES)
    assert 1 <= client.concurrency <= 6 and len(fake.requests) == 6


@pytest.mark.parametrize("driver", DRIVERS)
def test_an_empty_list_sends_nothing(driver: str) -> None:
    fake = FakeReranker()
    assert client_for(driver, fake).rerank("q", []) == []
    assert fake.requests == []


# ------------------------------------------------------------------ batch-size refusals: halved and learnt


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_413_on_batch_size_halves_and_is_learnt(driver: str) -> None:
    fake = FakeReranker(limit=3)
    client = client_for(driver, fake, batch_size=16, max_concurrency=2)
    first = client.rerank("q", PASSAGES[:16])
    assert [(r.index, r.relevance_score) for r in first] == expected("q", PASSAGES[:16])
    assert 413 not in [len(r["texts"]) for r in fake.requests]  # (sizes only: every refusal was halved)
    assert client.batch_size == 3  # the limit TEI stated
    fake.requests.clear()
    second = client.rerank("q", PASSAGES[:16])
    assert second == first
    assert max(fake.sizes) == 3 and len(fake.requests) == 6  # no refusal on the next call


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_422_stating_the_batch_limit_halves_too(driver: str) -> None:
    def refuse_large(number: int, payload: dict[str, Any]) -> httpx.Response | None:
        if len(payload["texts"]) > 2:
            message = f"batch size {len(payload['texts'])} > maximum allowed batch size 2"
            return httpx.Response(422, json={"error": message, "error_type": "validation"})
        return None

    client = client_for(driver, FakeReranker(script=refuse_large), batch_size=8)
    results = client.rerank("q", PASSAGES[:8])
    assert [(r.index, r.relevance_score) for r in results] == expected("q", PASSAGES[:8])
    assert client.batch_size == 2


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_422_about_something_else_is_not_retried(driver: str) -> None:
    def tokenizer_error(number: int, payload: dict[str, Any]) -> httpx.Response:
        return httpx.Response(422, json={"error": "Tokenization error", "error_type": "tokenizer"})

    fake = FakeReranker(script=tokenizer_error)
    with pytest.raises(InvalidRequestError) as info:
        client_for(driver, fake, batch_size=8).rerank("q", PASSAGES[:8])
    assert info.value.status_code == 422 and len(fake.requests) == 1
    assert info.value.indices == tuple(range(8))


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_single_passage_refused_is_named(driver: str) -> None:
    def refuse_third(number: int, payload: dict[str, Any]) -> httpx.Response | None:
        if PASSAGES[2] in payload["texts"]:
            return httpx.Response(413, text="Failed to buffer the request body: length limit exceeded")
        return None

    with pytest.raises(PayloadTooLargeError) as info:
        client_for(driver, FakeReranker(script=refuse_third), batch_size=4).rerank("q", PASSAGES[:4])
    assert info.value.index == 2 and info.value.indices == (2,)
    assert "passage 2 alone is too large" in str(info.value)


# ------------------------------------------------------------------ retries, deadlines, answers


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize(
    "failure",
    [
        (429, {"error": "Model is overloaded", "error_type": "overloaded"}),
        (503, {"error": "Model is loading", "estimated_time": 2.0}),
        (424, {"error": "Inference failed", "error_type": "backend"}),
        (0, None),
    ],
    ids=["429", "503-loading", "424", "timeout"],
)
def test_transient_failures_are_retried(driver: str, failure: tuple[int, Any]) -> None:
    def fail_twice(number: int, payload: dict[str, Any]) -> httpx.Response | None:
        if number < 2:
            status, body = failure
            if not status:
                raise httpx.ReadTimeout("slow")
            return httpx.Response(status, json=body)
        return None

    clock = FakeClock()
    fake = FakeReranker(script=fail_twice)
    results = client_for(driver, fake, clock).rerank("q", PASSAGES[:5])
    assert [(r.index, r.relevance_score) for r in results] == expected("q", PASSAGES[:5])
    assert len(fake.requests) == 3
    assert len([s for s in clock.sleeps if s > 0.001]) == 2


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_backend_that_keeps_failing_ends_in_its_typed_error(driver: str) -> None:
    def broken(number: int, payload: dict[str, Any]) -> httpx.Response:
        return httpx.Response(424, json={"error": "Inference failed", "error_type": "backend"})

    with pytest.raises(ServerError) as info:
        client_for(driver, FakeReranker(script=broken), max_retries=2).rerank("q", PASSAGES[:3])
    assert info.value.status_code == 424 and info.value.attempts == 3


@pytest.mark.parametrize("driver", DRIVERS)
def test_the_deadline_ends_the_call(driver: str) -> None:
    def slow(number: int, payload: dict[str, Any]) -> httpx.Response:
        raise httpx.ReadTimeout("slow")

    with pytest.raises(TimeoutError):
        client_for(driver, FakeReranker(script=slow), retry_deadline=5.0, max_retries=100).rerank("q", ["a"])


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ([{"index": 0, "score": 0.5}], "no score for text 1"),
        ([{"index": 0, "score": 0.5}, {"index": 0, "score": 0.4}], "index 0 twice"),
        ([{"index": 0, "score": 0.5}, {"index": 2, "score": 0.4}], "an index out of 0..1"),
        ([{"index": 0, "score": 0.5}, {"index": 1, "score": "high"}], "not a finite number"),
        ([{"index": 0, "score": 0.5}, {"index": 1, "score": True}], "not a finite number"),
        ({"index": 0}, "not a list of ranks"),
    ],
)
def test_an_answer_that_is_not_one_score_per_text_is_refused(driver: str, answer: Any, problem: str) -> None:
    fake = FakeReranker(script=lambda number, payload: httpx.Response(200, json=answer))
    with pytest.raises(ResponseFormatError, match=problem):
        client_for(driver, fake).rerank("q", ["a", "b"])


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_nan_score_is_refused(driver: str) -> None:
    body = b'[{"index": 0, "score": NaN}]'
    fake = FakeReranker(script=lambda number, payload: httpx.Response(200, content=body))
    with pytest.raises(ResponseFormatError, match="not a finite number"):
        client_for(driver, fake).rerank("q", ["a"])


# ------------------------------------------------------------------ bad input: typed, before anything is sent


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize(
    ("query", "texts", "message"),
    [
        ("", ["a"], "query is empty"),
        ("  \n", ["a"], "query is empty"),
        (None, ["a"], "query must be a str, got NoneType"),
        (b"q", ["a"], "query must be a str, got bytes"),
        ("q", ["a", None], r"texts\[1\] must be a str, got NoneType"),
        ("q", ["a", 3], r"texts\[1\] must be a str, got int"),
        ("q", "a single string", "not a single str"),
        ("q", None, "must be a list of str, got NoneType"),
        ("q", ["ok", "bad \ud800"], r"texts\[1\] holds a lone surrogate"),
        ("bad \ud800", ["a"], r"query\[0\] holds a lone surrogate"),
    ],
)
def test_bad_input_is_an_invalid_input_error_before_any_request(
    driver: str, query: Any, texts: Any, message: str
) -> None:
    fake = FakeReranker()
    with pytest.raises(InvalidInputError, match=message):
        client_for(driver, fake).rerank(query, texts)
    assert fake.requests == []


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("top_n", [0, -1, 2.0, True, "3"])
def test_a_bad_top_n_is_refused(driver: str, top_n: Any) -> None:
    fake = FakeReranker()
    with pytest.raises(InvalidInputError, match="top_n must be a positive integer"):
        client_for(driver, fake).rerank("q", ["a"], top_n=top_n)
    assert fake.requests == []


@pytest.mark.parametrize("driver", DRIVERS)
def test_passages_are_batched_within_the_limit(driver: str) -> None:
    texts = [f"p{i}" for i in range(100_000)]
    fake = FakeReranker(limit=1000)
    results = client_for(driver, fake, batch_size=1000, max_concurrency=4).rerank("q", texts, top_n=5)
    assert [(r.index, r.relevance_score) for r in results] == expected("q", texts)[:5]
    assert len(fake.requests) == 100 and max(fake.sizes) == 1000


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_1mb_passage_is_cut_to_teis_character_cap_and_sent_for_the_endpoint_to_truncate(driver: str) -> None:
    big = "word " * 200_000
    fake = FakeReranker()
    results = client_for(driver, fake).rerank("q", ["short", big])
    assert {r.index for r in results} == {0, 1}
    # TEI's truncate cuts an input to its tokens x 250 characters anyway (512 x 250 with no /info here).
    assert fake.requests[0]["truncate"] is True
    assert sorted(fake.requests[0]["texts"], key=len) == ["short", big[: 512 * 250]]


# ------------------------------------------------------------------ long passages scored as their best chunk


@pytest.mark.parametrize("driver", DRIVERS)
def test_best_chunk_scores_a_long_passage_by_its_best_chunk(driver: str) -> None:
    sentences = [f"Sentence number {i} talks about topic {i % 5} in some detail here." for i in range(60)]
    long_text = " ".join(sentences)
    texts = ["a short passage.", long_text, "another short one."]
    fake = FakeReranker(info={"max_input_length": 128, "max_client_batch_size": 8})
    client = client_for(driver, fake, long_passages="best_chunk")
    results = client.rerank("topic 3", texts)
    sent = [t for r in fake.requests for t in r["texts"]]
    chunks = [t for t in sent if t not in ("a short passage.", "another short one.")]
    assert len(chunks) > 3 and all(chunk in long_text for chunk in chunks)
    assert all(len(chunk.split()) <= 90 for chunk in chunks)  # (128 - 5 - 3) tokens * 0.75 = 90 words at most
    by_index = {r.index: r.relevance_score for r in results}
    assert by_index[1] == max(score_of("topic 3", chunk) for chunk in chunks)
    assert by_index[0] == score_of("topic 3", texts[0])
    # Without the option the passage goes whole, for the endpoint to truncate.
    whole = FakeReranker()
    client_for(driver, whole).rerank("topic 3", texts)
    assert long_text in whole.requests[0]["texts"]


@pytest.mark.parametrize("driver", DRIVERS)
def test_best_chunk_failures_name_the_passage(driver: str) -> None:
    long_text = " ".join(f"Sentence {i} of the long passage goes on for a while." for i in range(80))

    def refuse_chunks(number: int, payload: dict[str, Any]) -> httpx.Response | None:
        if any("Sentence 40 " in t for t in payload["texts"]):
            return httpx.Response(400, json={"error": "bad", "error_type": "empty"})
        return None

    with pytest.raises(InvalidRequestError) as info:
        client_for(driver, FakeReranker(script=refuse_chunks), long_passages="best_chunk", batch_size=1).rerank(
            "q", ["short", long_text]
        )
    assert info.value.indices == (1,)


def test_chunk_size_follows_elasticsearch_rerank_chunking() -> None:
    client = RerankClient(rerank_endpoint(), transport=httpx.MockTransport(FakeReranker()))
    core = client._core
    assert core.chunk_words(1) == 300  # 512 - 5 - 2 tokens is 378 words: more than sentence chunking takes
    core.server_info = {"max_input_length": 256}
    assert core.chunk_words(1) == int((256 - 5 - 2) * 0.75)  # the limit less the pair's and the query's tokens
    assert core.chunk_words(300) == int(128 * 0.75)  # never less than half the limit
    core.server_info = {"max_input_length": 20}
    assert core.chunk_words(3) == 20  # within what sentence chunking accepts


# ------------------------------------------------------------------ construction


def test_an_embedding_client_refuses_a_rerank_endpoint() -> None:
    for client in (EmbeddingClient, AsyncEmbeddingClient):
        with pytest.raises(TypeError, match=r"is a \[rerank\] endpoint; the embedding clients need"):
            client(rerank_endpoint())


def test_a_rerank_client_needs_a_rerank_endpoint() -> None:
    with pytest.raises(TypeError, match=r"is a \[text_embedding\] endpoint; the rerank clients need a \[rerank\]"):
        RerankClient(InferenceEndpoint.from_url("http://h/embed"))
    with pytest.raises(TypeError, match="options must be a RerankOptions"):
        RerankClient(rerank_endpoint(), options=EmbeddingOptions())  # type: ignore[arg-type]


def test_options_are_checked_at_construction() -> None:
    with pytest.raises(ConfigError, match="the rerank clients keep no cache"):
        RerankClient(rerank_endpoint(), cache="/tmp/x.sqlite")
    with pytest.raises(ConfigError, match="long_passages"):
        RerankClient(rerank_endpoint(), long_passages="cut")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="batch_size"):
        AsyncRerankClient(rerank_endpoint(), batch_size=0)
    assert RerankOptions().long_passages == "truncate"


@pytest.mark.parametrize("driver", DRIVERS)
def test_tei_options_are_sent_when_set(driver: str) -> None:
    fake = FakeReranker()
    client_for(driver, fake, raw_scores=True, truncation_direction="Left").rerank("q", ["a"])
    assert fake.requests[0]["raw_scores"] is True and fake.requests[0]["truncation_direction"] == "Left"


@pytest.mark.parametrize("driver", DRIVERS)
def test_the_key_is_never_shown(driver: str) -> None:
    def echo(number: int, payload: dict[str, Any]) -> httpx.Response:
        return httpx.Response(401, json={"error": f"bad token {SECRET}"})

    client = client_for(driver, FakeReranker(script=echo))
    assert SECRET not in repr(client)
    with pytest.raises(Exception) as info:
        client.rerank("q", ["a"])
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)


def test_results_are_plain_values() -> None:
    result = RerankResult(3, 0.25, "text")
    assert result == RerankResult(index=3, relevance_score=0.25, text="text")
    assert math.isclose(result.relevance_score, 0.25)
    with pytest.raises(AttributeError):
        result.index = 4  # type: ignore[misc]
