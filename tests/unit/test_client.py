from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from hf_infer_core import (
    AsyncEmbeddingClient,
    AuthenticationError,
    ChunkEmbedding,
    EmbeddingClient,
    EndpointError,
    InvalidInputError,
    InvalidRequestError,
    ModelLoadingError,
    PayloadTooLargeError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    TimeoutError,
    TransportError,
)

from .fakes import SECRET, Awaited, FakeClock, FakeEndpoint, endpoint, limiter, vector_for

TEXTS = [f"text number {i}" for i in range(10)]


def retry_sleeps(clock: FakeClock) -> list[float]:
    # The test limiter allows 1e6 requests/min: its own 60 us waits are not retry waits.
    return [s for s in clock.sleeps if s > 0.001]


def sync_client(fake: FakeEndpoint, clock: FakeClock | None = None, **options: object) -> EmbeddingClient:
    clock = clock or FakeClock()
    options.setdefault("rate_limiter", limiter(clock))
    options.setdefault("discover", False)  # these tests script the embed route; discovery has its own
    return EmbeddingClient(
        options.pop("endpoint", None) or endpoint(),  # type: ignore[arg-type]
        transport=httpx.MockTransport(fake),
        clock=clock,
        sleep=clock.sleep,
        rng=random.Random(1),
        **options,
    )


DRIVERS = ["sync", "async"]


def client_for(driver: str, fake: FakeEndpoint, clock: FakeClock | None = None, **options: object) -> Any:
    """The sync client, or the async one behind :class:`Awaited`, on the same fake endpoint and clock."""
    if driver == "sync":
        return sync_client(fake, clock, **options)
    return Awaited(async_client(fake, clock, **options))


def async_client(fake: FakeEndpoint, clock: FakeClock | None = None, **options: object) -> AsyncEmbeddingClient:
    clock = clock or FakeClock()
    options.setdefault("rate_limiter", limiter(clock))
    options.setdefault("discover", False)
    return AsyncEmbeddingClient(
        options.pop("endpoint", None) or endpoint(),  # type: ignore[arg-type]
        transport=httpx.MockTransport(fake),
        clock=clock,
        sleep=clock.asleep,
        rng=random.Random(1),
        **options,
    )


def answer(status: int, body: object = None, text: str | None = None, headers: dict[str, str] | None = None):
    def script(number: int, inputs: list[str]) -> httpx.Response:
        if text is not None:
            return httpx.Response(status, text=text, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return script


def fail_first(n: int, response: httpx.Response | Exception):
    def script(number: int, inputs: list[str]) -> httpx.Response | None:
        if number < n:
            if isinstance(response, Exception):
                raise response
            return response
        return None

    return script


# ------------------------------------------------------------------ requests and batching


@pytest.mark.parametrize("driver", DRIVERS)
def test_embed_batches_in_order_with_auth_and_plain_floats(driver: str) -> None:
    fake = FakeEndpoint()
    with client_for(driver, fake, batch_size=3, max_concurrency=1) as client:
        vectors = client.embed(TEXTS)
    assert vectors == [vector_for(t) for t in TEXTS]
    assert all(type(x) is float for v in vectors for x in v)
    assert fake.batches == [TEXTS[0:3], TEXTS[3:6], TEXTS[6:9], TEXTS[9:10]]
    assert {h["authorization"] for h in fake.headers} == {f"Bearer {SECRET}"}
    assert {h["content-type"] for h in fake.headers} == {"application/json"}
    assert fake.requests[0] == {"inputs": TEXTS[0:3]}


async def test_async_embed_batches_in_order() -> None:
    fake = FakeEndpoint()
    async with async_client(fake, batch_size=3) as client:
        vectors = await client.embed(TEXTS)
    assert vectors == [vector_for(t) for t in TEXTS]
    assert sorted(map(tuple, fake.batches)) == sorted(map(tuple, [TEXTS[0:3], TEXTS[3:6], TEXTS[6:9], TEXTS[9:10]]))


@pytest.mark.parametrize("driver", DRIVERS)
def test_request_extras_only_when_set(driver: str) -> None:
    fake = FakeEndpoint()
    with client_for(
        driver, fake, normalize=True, truncate=True, truncation_direction="Left", prompt_name="query"
    ) as client:
        client.embed(["a"])
    assert fake.requests[0] == {
        "inputs": ["a"],
        "normalize": True,
        "truncate": True,
        "truncation_direction": "Left",
        "prompt_name": "query",
    }


@pytest.mark.parametrize("driver", DRIVERS)
def test_integer_values_become_floats(driver: str) -> None:
    fake = FakeEndpoint(script=lambda n, inputs: httpx.Response(200, text="[[1, 0, 2.5]]"))
    with client_for(driver, fake) as client:
        assert client.embed(["a"]) == [[1.0, 0.0, 2.5]]
        assert all(type(x) is float for x in client.embed(["a"])[0])


@pytest.mark.parametrize("driver", DRIVERS)
def test_object_response_shape(driver: str) -> None:
    fake = FakeEndpoint(script=lambda n, inputs: httpx.Response(200, json={"embeddings": [[0.5, 0.25]] * len(inputs)}))
    with client_for(driver, fake) as client:
        assert client.embed(["a", "b"]) == [[0.5, 0.25], [0.5, 0.25]]


def test_sync_runs_batches_concurrently_and_keeps_order() -> None:
    barrier = threading.Barrier(4, timeout=10)
    release_first = threading.Event()

    def script(number: int, inputs: list[str]) -> None:
        if number < 4:
            barrier.wait()  # fails unless four requests are in flight at once
        if inputs[0] == TEXTS[0]:
            release_first.wait(10)  # the first batch finishes last
        elif number >= 4:
            release_first.set()
        return None

    fake = FakeEndpoint(script=script)
    with sync_client(fake, batch_size=1, max_concurrency=4) as client:
        assert client.embed(TEXTS) == [vector_for(t) for t in TEXTS]
    assert len(fake.requests) == 10


async def test_async_runs_batches_concurrently_and_keeps_order() -> None:
    in_flight = 0
    peak = 0
    gate = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        inputs = json.loads(request.content)["inputs"]
        in_flight += 1
        peak = max(peak, in_flight)
        if peak >= 4:
            gate.set()
        await asyncio.wait_for(gate.wait(), 10)
        if inputs[0] == TEXTS[0]:
            await asyncio.sleep(0)  # yield so later batches finish first
        in_flight -= 1
        return httpx.Response(200, json=[vector_for(t) for t in inputs])

    clock = FakeClock()
    client = AsyncEmbeddingClient(
        endpoint(),
        transport=httpx.MockTransport(handler),
        rate_limiter=limiter(clock),
        batch_size=1,
        max_concurrency=4,
        discover=False,
    )
    assert await client.embed(TEXTS) == [vector_for(t) for t in TEXTS]
    assert peak == 4


# ------------------------------------------------------------------ input rules


@pytest.mark.parametrize("driver", DRIVERS)
def test_empty_list_makes_no_request_and_empty_string_is_sent(driver: str) -> None:
    fake = FakeEndpoint()
    with client_for(driver, fake) as client:
        assert client.embed([]) == []
        assert fake.requests == []
        assert client.embed([""]) == [vector_for("")]
        assert fake.requests == [{"inputs": [""]}]


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        (["a", None], r"texts\[1\] must be a str, got NoneType"),
        (["a", 3], r"texts\[1\]"),
        ("abc", "not a single str"),
        (None, "got NoneType"),
    ],
)
@pytest.mark.parametrize("driver", DRIVERS)
def test_bad_inputs_are_type_errors(driver: str, texts: object, message: str) -> None:
    fake = FakeEndpoint()
    with client_for(driver, fake) as client, pytest.raises(TypeError, match=message):
        client.embed(texts)  # type: ignore[arg-type]
    assert fake.requests == []


@pytest.mark.parametrize("driver", DRIVERS)
def test_lone_surrogate_names_its_index(driver: str) -> None:
    with client_for(driver, FakeEndpoint()) as client, pytest.raises(InvalidInputError, match=r"texts\[2\]") as info:
        client.embed(["a", "b", "bad \ud800 text"])
    assert info.value.index == 2


# ------------------------------------------------------------------ rate limiting


@pytest.mark.parametrize("driver", DRIVERS)
def test_rate_limit_spaces_requests_evenly_with_a_burst_of_one(driver: str) -> None:
    clock = FakeClock()
    sent_at: list[float] = []
    fake = FakeEndpoint(script=lambda n, inputs: sent_at.append(clock.now))  # type: ignore[func-returns-value]
    with client_for(
        driver, fake, clock, batch_size=1, max_concurrency=1, rate_limiter=limiter(clock, rpm=600)
    ) as client:
        client.embed(TEXTS[:5])
    assert sent_at == pytest.approx([1000.0, 1000.1, 1000.2, 1000.3, 1000.4])


def test_rate_limit_holds_across_threads() -> None:
    clock = FakeClock()
    lim = limiter(clock, rpm=60)
    waits = []
    threads = [threading.Thread(target=lambda: waits.append(lim.reserve())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(waits) == [float(i) for i in range(8)]


@pytest.mark.parametrize("driver", DRIVERS)
def test_retries_take_rate_limit_tokens(driver: str) -> None:
    clock = FakeClock()
    sent_at: list[float] = []

    def script(number: int, inputs: list[str]) -> httpx.Response | None:
        sent_at.append(clock.now)
        return httpx.Response(502, text="bad gateway") if number == 0 else None

    fake = FakeEndpoint(script=script)
    with client_for(driver, fake, clock, rate_limiter=limiter(clock, rpm=6)) as client:
        client.embed(["a"])
    assert sent_at[1] - sent_at[0] >= 10.0  # 6/min: the retry waited for its own token


# ------------------------------------------------------------------ retries


@pytest.mark.parametrize("driver", DRIVERS)
def test_honours_retry_after(driver: str) -> None:
    clock = FakeClock()
    fake = FakeEndpoint(
        script=fail_first(2, httpx.Response(429, json={"error": "slow down"}, headers={"Retry-After": "7"}))
    )
    with client_for(driver, fake, clock) as client:
        assert client.embed(["a"]) == [vector_for("a")]
    assert retry_sleeps(clock) == [7.0, 7.0]


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize(
    ("setting", "error_type", "first", "second"),
    [
        ("auto", "overloaded", (0.05, 0.1), (0.1, 0.2)),  # the adaptive limit paces it: a slot frees soon
        (4, "overloaded", (0.5, 1.0), (1.0, 2.0)),  # a fixed limit: nothing else backs off
        ("auto", None, (0.5, 1.0), (1.0, 2.0)),  # a quota's 429 is not a full queue
    ],
)
def test_a_full_tei_queue_is_retried_sooner_under_the_adaptive_limit(
    driver: str, setting: object, error_type: str | None, first: tuple[float, float], second: tuple[float, float]
) -> None:
    clock = FakeClock()
    body = {"error": "Model is overloaded", "error_type": error_type}
    fake = FakeEndpoint(script=fail_first(2, httpx.Response(429, json=body)))
    with client_for(driver, fake, clock, max_concurrency=setting) as client:
        assert client.embed(["a"]) == [vector_for("a")]
    waits = retry_sleeps(clock)
    assert len(waits) == 2
    assert first[0] <= waits[0] <= first[1] and second[0] <= waits[1] <= second[1], waits


@pytest.mark.parametrize("driver", DRIVERS)
def test_loading_honours_estimated_time_bounded(driver: str) -> None:
    clock = FakeClock()
    loading = httpx.Response(503, json={"error": "Model x is currently loading", "estimated_time": 45.0})
    fake = FakeEndpoint(script=fail_first(1, loading))
    with client_for(driver, fake, clock, max_retry_wait=20.0) as client:
        client.embed(["a"])
    assert retry_sleeps(clock) == [20.0]


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("status", [500, 502, 504, 424])
def test_server_errors_are_retried_with_backoff(driver: str, status: int) -> None:
    clock = FakeClock()
    fake = FakeEndpoint(script=fail_first(3, httpx.Response(status, json={"error": "boom", "error_type": "backend"})))
    with client_for(driver, fake, clock) as client:
        assert client.embed(["a"]) == [vector_for("a")]
    assert len(retry_sleeps(clock)) == 3
    assert 0.5 <= retry_sleeps(clock)[0] <= 1.0
    assert 1.0 <= retry_sleeps(clock)[1] <= 2.0
    assert 2.0 <= retry_sleeps(clock)[2] <= 4.0


@pytest.mark.parametrize(
    "error", [httpx.ReadTimeout("slow"), httpx.ConnectError("refused"), httpx.RemoteProtocolError("reset")]
)
@pytest.mark.parametrize("driver", DRIVERS)
def test_transport_failures_are_retried(driver: str, error: Exception) -> None:
    fake = FakeEndpoint(script=fail_first(2, error))
    with client_for(driver, fake) as client:
        assert client.embed(["a"]) == [vector_for("a")]
    assert len(fake.requests) == 3


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (401, AuthenticationError),
        (403, AuthenticationError),
        (400, InvalidRequestError),
        (422, InvalidRequestError),
        (404, EndpointError),
    ],
)
@pytest.mark.parametrize("driver", DRIVERS)
def test_permanent_errors_are_not_retried(driver: str, status: int, cls: type[Exception]) -> None:
    clock = FakeClock()
    fake = FakeEndpoint(script=answer(status, {"error": "nope", "error_type": "Validation"}))
    with client_for(driver, fake, clock, batch_size=4) as client, pytest.raises(cls) as info:
        client.embed(TEXTS[:6])
    assert len(fake.requests) <= 2  # the other batch may have been in flight
    assert retry_sleeps(clock) == []
    error = info.value
    assert error.status_code == status  # type: ignore[attr-defined]
    assert error.attempts == 1  # type: ignore[attr-defined]
    assert error.indices in ((0, 1, 2, 3), (4, 5))  # type: ignore[attr-defined]
    assert "Error message: [nope]" in str(error)
    assert SECRET not in str(error) and SECRET not in repr(error)


@pytest.mark.parametrize(
    ("response", "cls"),
    [
        # Built per request: a response's stream is sync or async once read, and both drivers run.
        (lambda: httpx.Response(429, json={"error": "busy"}), RateLimitError),
        (
            lambda: httpx.Response(503, json={"error": "Model is currently loading", "estimated_time": 1}),
            ModelLoadingError,
        ),
        (lambda: httpx.Response(500, text="oops"), ServerError),
        (lambda: httpx.Response(200, text="<html>proxy error</html>"), ResponseFormatError),
        (lambda: httpx.Response(200, text="[[0.1, 0.2"), ResponseFormatError),
    ],
)
@pytest.mark.parametrize("driver", DRIVERS)
def test_exhausted_retries_raise_the_last_error_with_its_type(
    driver: str, response: Callable[[], httpx.Response], cls: type[Exception]
) -> None:
    fake = FakeEndpoint(script=lambda n, inputs: response())
    with client_for(driver, fake, max_retries=3) as client, pytest.raises(cls) as info:
        client.embed(["a", "b"])
    assert len(fake.requests) == 4
    assert info.value.attempts == 4  # type: ignore[attr-defined]
    assert info.value.indices == (0, 1)  # type: ignore[attr-defined]
    assert "after 4 attempts; inputs [0, 1]" in str(info.value)


@pytest.mark.parametrize("driver", DRIVERS)
def test_timeouts_exhausted_raise_timeout_error_chained_to_httpx(driver: str) -> None:
    fake = FakeEndpoint(script=fail_first(99, httpx.ReadTimeout("slow")))
    with client_for(driver, fake, max_retries=2) as client, pytest.raises(TimeoutError) as info:
        client.embed(["a"])
    assert isinstance(info.value, TransportError)
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)


@pytest.mark.parametrize("driver", DRIVERS)
def test_deadline_stops_retries_early(driver: str) -> None:
    clock = FakeClock()
    fake = FakeEndpoint(script=lambda n, inputs: httpx.Response(429, headers={"Retry-After": "25"}))
    with (
        client_for(driver, fake, clock, max_retries=10, retry_deadline=60.0) as client,
        pytest.raises(RateLimitError) as info,
    ):
        client.embed(["a"])
    assert retry_sleeps(clock) == [25.0, 25.0]
    assert info.value.attempts == 3
    assert info.value.retry_after == 25.0


@pytest.mark.parametrize("driver", DRIVERS)
def test_truncated_200_body_is_retried_then_succeeds(driver: str) -> None:
    fake = FakeEndpoint(script=fail_first(1, httpx.Response(200, text="[[0.1, 0.2], [0.")))
    with client_for(driver, fake) as client:
        assert client.embed(["a", "b"]) == [vector_for("a"), vector_for("b")]


# ------------------------------------------------------------------ 413


@pytest.mark.parametrize("driver", DRIVERS)
def test_splits_the_batch_and_keeps_order(driver: str) -> None:
    def script(number: int, inputs: list[str]) -> httpx.Response | None:
        if len(inputs) > 2:
            return httpx.Response(
                413, json={"error": "batch size 8 > maximum allowed batch size 2", "error_type": "Validation"}
            )
        return None

    fake = FakeEndpoint(script=script)
    with client_for(driver, fake, batch_size=8, max_concurrency=1) as client:
        assert client.embed(TEXTS[:8]) == [vector_for(t) for t in TEXTS[:8]]
    assert [len(b) for b in fake.batches] == [8, 4, 2, 2, 4, 2, 2]


@pytest.mark.parametrize("driver", DRIVERS)
def test_plain_text_for_one_input_names_its_index(driver: str) -> None:
    def script(number: int, inputs: list[str]) -> httpx.Response | None:
        if "huge" in inputs:
            return httpx.Response(413, text="Failed to buffer the request body: length limit exceeded")
        return None

    fake = FakeEndpoint(script=script)
    with (
        client_for(driver, fake, batch_size=4, max_concurrency=1) as client,
        pytest.raises(PayloadTooLargeError) as info,
    ):
        client.embed(["a", "b", "c", "d", "e", "huge"])
    assert info.value.index == 5
    assert info.value.indices == (5,)
    assert "input 5 alone is too large" in str(info.value)


# ------------------------------------------------------------------ malformed responses


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[[0.1, 0.2]]", "sent 2 inputs but received 1 vectors"),
        ("[[0.1, NaN], [0.1, 0.2]]", "vector 0 of the batch holds NaN or infinite values"),
        ("[[0.1, Infinity], [0.1, 0.2]]", "NaN or infinite"),
        ("[[0.1, 0.2], [0.1]]", "vector 1 of the batch has 1 dimensions, the others 2"),
        ('[[0.1, "x"], [0.1, 0.2]]', "non-numeric value 'x'"),
        ("[[0.1, true], [0.1, 0.2]]", "non-numeric value True"),
        # One "." per value, as a body of floats has, yet a value is an array: caught by the count of "["
        ("[[[0.1], 0.2], [0.1, 0.2]]", r"non-numeric value \[0.1\]"),
        ("[[0.1, 1e999], [0.1, 0.2]]", "NaN or infinite"),  # too large for a double: orjson refuses it
        ("[[], [0.1]]", "vector 0 of the batch is not a non-empty array"),
        ('{"vectors": []}', "expected a JSON array of vectors"),
        ("42", "expected a JSON array of vectors"),
    ],
)
@pytest.mark.parametrize("driver", DRIVERS)
def test_wrong_but_well_formed_answers_are_not_retried(driver: str, body: str, message: str) -> None:
    fake = FakeEndpoint(script=lambda n, inputs: httpx.Response(200, text=body))
    with client_for(driver, fake) as client, pytest.raises(ResponseFormatError, match=message) as info:
        client.embed(["a", "b"])
    assert len(fake.requests) == 1
    assert info.value.transient is False
    assert info.value.indices == (0, 1)


@pytest.mark.parametrize("driver", DRIVERS)
def test_configured_dimensions_are_sent_and_enforced(driver: str) -> None:
    fake = FakeEndpoint()  # answers 4-dimensional vectors whatever is asked
    with (
        client_for(driver, fake, endpoint=endpoint(dimensions=8)) as client,
        pytest.raises(ResponseFormatError) as info,
    ):
        client.embed(["a"])
    assert fake.requests[0] == {"inputs": ["a"], "dimensions": 8}  # TEI's `dimensions`
    assert str(info.value).startswith(
        "dimensions=8 was asked for (sent as TEI's `dimensions`), but the endpoint returned 4-dimensional vectors"
    )
    assert "ragged" not in str(info.value)


@pytest.mark.parametrize("driver", DRIVERS)
def test_an_endpoint_refusing_dimensions_gets_an_error_naming_the_option(driver: str) -> None:
    refusal = {"error": "`dimensions` is not supported by this model", "error_type": "validation"}
    fake = FakeEndpoint(script=answer(422, refusal))
    with (
        client_for(driver, fake, endpoint=endpoint(dimensions=8)) as client,
        pytest.raises(InvalidRequestError) as info,
    ):
        client.embed(["a"])
    assert "the request carried dimensions=8 (service_settings.dimensions, sent as TEI's `dimensions`)" in str(
        info.value
    )
    plain = FakeEndpoint(script=answer(422, {"error": "Input validation error", "error_type": "validation"}))
    with (
        client_for(driver, plain, endpoint=endpoint(dimensions=8)) as client,
        pytest.raises(InvalidRequestError) as info,
    ):
        client.embed(["a"])
    assert "dimensions=8" not in str(info.value)  # a refusal that is not about it says nothing of it


@pytest.mark.parametrize("driver", DRIVERS)
def test_dimensions_ride_the_base64_route_too(driver: str) -> None:
    import base64 as b64

    import numpy as np

    seen: list[dict[str, Any]] = []

    def openai(request: httpx.Request) -> httpx.Response:
        payload = json.loads(request.content)
        seen.append(payload)
        rows = [b64.b64encode(np.ones(payload["dimensions"], "<f4").tobytes()).decode() for _ in payload["input"]]
        return httpx.Response(200, json={"data": [{"index": i, "embedding": e} for i, e in enumerate(rows)]})

    client = EmbeddingClient(
        endpoint(dimensions=3), transport=httpx.MockTransport(openai), wire_format="base64", discover=False
    )
    assert client.embed(["a", "b"]) == [[1.0, 1.0, 1.0]] * 2
    assert seen[0]["dimensions"] == 3


@pytest.mark.parametrize("driver", DRIVERS)
def test_dimensions_learnt_from_first_response(driver: str) -> None:
    with client_for(driver, FakeEndpoint()) as client:
        assert client.dimensions is None
        client.embed(["a"])
        assert client.dimensions == 4


@pytest.mark.parametrize("driver", DRIVERS)
def test_tei_error_type_is_case_insensitive(driver: str) -> None:
    fake = FakeEndpoint(
        script=lambda n, inputs: httpx.Response(400, json={"error": "queue full", "error_type": "OVERLOADED"})
    )
    with client_for(driver, fake, max_retries=1) as client, pytest.raises(RateLimitError):
        client.embed(["a"])
    assert len(fake.requests) == 2


# ------------------------------------------------------------------ chunks, documents, prefixes


@pytest.mark.parametrize("driver", DRIVERS)
def test_embed_chunks_returns_offsets_and_batches_across_texts(driver: str) -> None:
    fake = FakeEndpoint()
    texts = ["one two three four five six seven eight nine ten eleven twelve", "short", ""]
    ep = endpoint(chunking={"strategy": "word", "max_chunk_size": 10, "overlap": 0})
    with client_for(driver, fake, endpoint=ep, batch_size=32, document_prefix="passage: ") as client:
        result = client.embed_chunks(texts)
    assert [len(r) for r in result] == [2, 1, 1]
    first = result[0][0]
    assert isinstance(first, ChunkEmbedding)
    assert texts[0][first.start : first.end] == first.text
    assert first.embedding == vector_for("passage: " + first.text)
    assert result[2][0].text == ""
    assert fake.batches == [["passage: " + c.text for r in result for c in r]]
    assert first.to_dict()["offset"] == {"start": first.start, "end": first.end}


@pytest.mark.parametrize("driver", DRIVERS)
def test_embed_documents_pools_chunks_weighted_and_normalised(driver: str) -> None:
    def script(number: int, inputs: list[str]) -> httpx.Response:
        return httpx.Response(200, json=[[1.0, 0.0] if t.startswith("a") else [0.0, 1.0] for t in inputs])

    fake = FakeEndpoint(script=script)
    # chunk 1: ten "a" words; chunk 2: "b b b b b" (5 words) -> weights 10 and 5
    text = "a " * 10 + "b " * 5
    ep = endpoint(chunking={"strategy": "word", "max_chunk_size": 10, "overlap": 0})
    with client_for(driver, fake, endpoint=ep) as client:
        (vector,) = client.embed_documents([text])
        assert vector == pytest.approx([2 / 5**0.5, 1 / 5**0.5])
    with client_for(driver, fake, endpoint=ep, pooling="first") as client:
        assert client.embed_documents([text]) == [[1.0, 0.0]]


@pytest.mark.parametrize("driver", DRIVERS)
def test_query_prefix(driver: str) -> None:
    fake = FakeEndpoint()
    with client_for(driver, fake, query_prefix="query: ") as client:
        assert client.embed_query("what") == vector_for("query: what")
    assert fake.batches == [["query: what"]]


async def test_async_chunks_documents_and_query() -> None:
    fake = FakeEndpoint()
    ep = endpoint(chunking={"strategy": "word", "max_chunk_size": 10, "overlap": 0})
    async with async_client(fake, endpoint=ep, query_prefix="q: ") as client:
        chunks = await client.embed_chunks(["a b c d e f g h i j k l"])
        docs = await client.embed_documents(["short text"])
        query = await client.embed_query("hi")
    assert len(chunks[0]) == 2
    assert docs == [vector_for("short text")]
    assert query == vector_for("q: hi")


# ------------------------------------------------------------------ async faults


async def test_async_retries_and_413() -> None:
    clock = FakeClock()

    def script(number: int, inputs: list[str]) -> httpx.Response | None:
        if number == 0:
            return httpx.Response(429, headers={"Retry-After": "3"})
        if len(inputs) > 2:
            return httpx.Response(413, text="too big")
        return None

    fake = FakeEndpoint(script=script)
    async with async_client(fake, clock, batch_size=4, max_concurrency=1) as client:
        assert await client.embed(TEXTS[:4]) == [vector_for(t) for t in TEXTS[:4]]
    assert retry_sleeps(clock) == [3.0]


async def test_async_permanent_failure_cancels_the_rest() -> None:
    fake = FakeEndpoint(script=lambda n, inputs: httpx.Response(401, json={"error": "bad token"}))
    async with async_client(fake, batch_size=1, max_concurrency=2) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.embed(TEXTS)
    assert len(fake.requests) <= 2
    assert SECRET not in str(info.value)


# ------------------------------------------------------------------ discovery, logging, progress


@pytest.mark.parametrize("driver", DRIVERS)
def test_discovery_caps_batch_size(driver: str) -> None:
    fake = FakeEndpoint()
    with client_for(driver, fake, batch_size=32, discover=True, max_concurrency=1) as client:
        client.embed(TEXTS[:5])
        assert client.batch_size == 2
        assert client.server_info == {"model_id": "fake/model", "max_input_length": 256, "max_client_batch_size": 2}
    assert [len(b) for b in fake.batches] == [2, 2, 1]


async def test_async_discovery() -> None:
    fake = FakeEndpoint()
    async with async_client(fake, discover=True) as client:
        await client.embed(["a", "b", "c"])
        assert client.batch_size == 2


@pytest.mark.parametrize("driver", DRIVERS)
def test_one_debug_line_per_request_without_secrets(driver: str, caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeEndpoint(script=fail_first(1, httpx.Response(502, text="bad")))
    with (
        caplog.at_level(logging.DEBUG, logger="hf_infer_core"),
        client_for(driver, fake, batch_size=2, max_concurrency=1) as client,
    ):
        client.embed(["a", "b", "c"])
    lines = [r.getMessage() for r in caplog.records if r.name == "hf_infer_core"]
    assert len(lines) == 3
    assert lines[0].startswith("POST /embed -> 502 attempt 1 in ")
    assert lines[1].startswith("POST /embed -> 200 attempt 2 in ")
    assert all(SECRET not in line and "Bearer" not in line for line in caplog.text.splitlines())


@pytest.mark.parametrize("driver", DRIVERS)
def test_progress_bar_counts_texts(driver: str, capsys: pytest.CaptureFixture[str]) -> None:
    ep = endpoint(chunking={"strategy": "word", "max_chunk_size": 10, "overlap": 0})
    with client_for(driver, FakeEndpoint(), endpoint=ep, batch_size=1, show_progress=True) as client:
        client.embed_documents(["a b c d e f g h i j k l", "x", "y"])
    assert "3/3" in capsys.readouterr().err


async def test_async_progress_bar(capsys: pytest.CaptureFixture[str]) -> None:
    async with async_client(FakeEndpoint(), batch_size=2, show_progress=True) as client:
        await client.embed(TEXTS)
    assert "10/10" in capsys.readouterr().err


def test_injected_http_client_is_used_and_not_closed() -> None:
    fake = FakeEndpoint()
    http = httpx.Client(transport=httpx.MockTransport(fake))
    clock = FakeClock()
    with EmbeddingClient(endpoint(), http_client=http, rate_limiter=limiter(clock)) as client:
        client.embed(["a"])
    assert not http.is_closed
    http.close()
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("option", "value"),
    [("batch_size", 0), ("max_concurrency", -1), ("timeout", 0), ("max_retries", -1), ("pooling", "max")],
)
def test_bad_options(option: str, value: object) -> None:
    with pytest.raises(ValueError, match=option):
        EmbeddingClient(endpoint(), **{option: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("driver", DRIVERS)
def test_repr_has_no_secret(driver: str) -> None:
    with client_for(driver, FakeEndpoint()) as client:
        assert SECRET not in repr(client)
        assert "test-endpoint" in repr(client)
        assert "RateLimiter" in repr(client.rate_limiter)


@pytest.mark.parametrize("driver", DRIVERS)
def test_integers_and_exponents_take_the_exact_path(driver: str) -> None:
    # "1e-05" and "2" carry no ".": the fast proof fails and every value is checked and made a float.
    fake = FakeEndpoint(script=lambda n, inputs: httpx.Response(200, text="[[1e-05, 2, 0.5]]"))
    with client_for(driver, fake) as client:
        (vector,) = client.embed(["a"])
    assert vector == [1e-05, 2.0, 0.5]
    assert all(type(x) is float for x in vector)


@pytest.mark.parametrize("driver", DRIVERS)
def test_strings_elsewhere_in_the_body_do_not_fool_the_fast_path(driver: str) -> None:
    body = '{"embeddings": [[1, 0.5]], "note": "a."}'
    fake = FakeEndpoint(script=lambda n, inputs: httpx.Response(200, text=body))
    with client_for(driver, fake) as client:
        assert client.embed(["a"]) == [[1.0, 0.5]]
        assert type(client.embed(["a"])[0][0]) is float


@pytest.mark.parametrize("driver", DRIVERS)
def test_batches_group_similar_lengths_and_results_keep_input_order(driver: str) -> None:
    texts = ["x" * n for n in (5, 50, 6, 51, 7, 52, 8, 53)]
    fake = FakeEndpoint()
    with client_for(driver, fake, batch_size=4, max_concurrency=1) as client:
        assert client.embed(texts) == [vector_for(t) for t in texts]
    long_first, short_next = fake.batches
    assert sorted(map(len, long_first)) == [50, 51, 52, 53]  # padded by the server to 53, not to 53 and 5
    assert sorted(map(len, short_next)) == [5, 6, 7, 8]
    assert long_first == [texts[1], texts[3], texts[5], texts[7]]  # each batch in input order
