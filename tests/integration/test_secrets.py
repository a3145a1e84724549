"""The canary api key must appear nowhere: logs, errors (and their httpx causes), reprs, dumps, pickles, cassettes."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hf_infer_core import (
    AsyncEmbeddingClient,
    ChunkingSettings,
    EmbeddingClient,
    EmbeddingOptions,
    HFInferError,
    InferenceEndpoint,
    RateLimiter,
    RerankClient,
    chunk_text,
)
from hf_infer_core.integration._session import EmbeddingSession
from langchain_hf_infer import HFInferEmbeddings, HFInferTextSplitter
from langchain_hf_infer import HFInferRerank as LangChainRerank
from llama_index_hf_infer import HFInferEmbedding, HFInferNodeParser
from llama_index_hf_infer import HFInferRerank as LlamaIndexRerank

from ..fake_endpoint import fake_endpoint

CANARY = "hf_SECRET_canary_123"
FAST = {"timeout": 0.3, "max_retries": 1, "max_retry_wait": 0.01, "retry_deadline": 5.0}


def exception_chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack = [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def renderings(obj: Any) -> Iterator[str]:
    yield repr(obj)
    yield str(obj)
    for name in ("model_dump", "to_dict"):
        method = getattr(obj, name, None)
        if callable(method):
            yield repr(method())
    if hasattr(obj, "model_dump_json"):
        yield obj.model_dump_json()
    if hasattr(obj, "to_json"):
        yield obj.to_json()
    # live clients (sockets, locks) are not picklable; their adapters and configurations are
    with contextlib.suppress(TypeError, pickle.PicklingError, AttributeError):
        yield pickle.dumps(obj).decode("latin-1")


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)  # every logger: ours, httpx, httpcore, aiohttp, asyncio
    return caplog


async def embed_async_expecting_failure(ep: InferenceEndpoint, objects: list[Any], errors: list[BaseException]) -> None:
    async with AsyncEmbeddingClient(ep, rate_limiter=RateLimiter(10**9), **FAST) as client:
        objects.append(client)
        with pytest.raises(HFInferError) as info:
            await client.embed_documents(["a b c"])
        errors.append(info.value)


def with_settings(body: dict[str, Any], **settings: Any) -> dict[str, Any]:
    return {**body, "service_settings": {**body["service_settings"], **settings}}


def test_canary_appears_nowhere(debug_logs: pytest.LogCaptureFixture) -> None:
    texts: list[str] = []
    errors: list[BaseException] = []
    objects: list[Any] = []

    body = {
        "service": "hugging_face",
        "service_settings": {
            "api_key": CANARY,
            "url": "http://127.0.0.1:9/embed",
            "rate_limit": {"requests_per_minute": 600},
        },
        "chunking_settings": {"strategy": "word", "max_chunk_size": 20, "overlap": 5},
    }
    endpoint = InferenceEndpoint.from_request("text_embedding", "canary-endpoint", json.dumps(body))
    objects += [endpoint, endpoint.service_settings, endpoint.chunking_settings, ChunkingSettings()]
    objects += [HFInferTextSplitter(endpoint), HFInferNodeParser(endpoint)]

    # configuration errors, including a misspelt key holding the canary
    bad = json.loads(json.dumps(body))
    bad["service_settings"]["apikey"] = bad["service_settings"].pop("api_key")
    for attempt in (
        lambda: InferenceEndpoint.from_request("rerank", "x", body),
        lambda: InferenceEndpoint.from_request("text_embedding", "x", bad),
        lambda: InferenceEndpoint.from_console("PUT _inference/text_embedding/Bad\n" + json.dumps(body)),
        lambda: HFInferEmbeddings(url="not a url", api_key=CANARY),
        # the attacker's cases: the key where a value is echoed
        lambda: InferenceEndpoint.from_url(CANARY, "http://h/embed"),  # arguments swapped
        lambda: InferenceEndpoint.from_request("text_embedding", "x", with_settings(body, similarity=CANARY)),
        lambda: InferenceEndpoint.from_request("text_embedding", "x", {**body, "service": CANARY}),
        lambda: InferenceEndpoint.from_request("text_embedding", "x", {**body, "task_settings": {CANARY: 1}}),
        lambda: HFInferEmbedding(url="http://h/embed", api_key=CANARY, chunking_settings={"strategy": "x"}),
    ):
        with pytest.raises(ValueError) as info:
            attempt()
        errors.append(info.value)

    for permanent in ("401", "500", "reset", "stall", "html_200", "nan", "echo_auth"):
        with fake_endpoint(permanent=permanent) as server:
            ep = InferenceEndpoint.from_url(server.embed_url, CANARY, inference_id="canary-endpoint")
            client = EmbeddingClient(ep, rate_limiter=RateLimiter(10**9), **FAST)
            objects += [client, client.rate_limiter]
            with pytest.raises(HFInferError) as info:
                client.embed(["a", "b"])
            errors.append(info.value)
            client.close()

            asyncio.run(embed_async_expecting_failure(ep, objects, errors))
            # A route the fake answers with the fault (/embed would mean its /rerank beside it).
            rerank_ep = InferenceEndpoint.from_url(
                server.url + "/rank", CANARY, inference_id="canary", task_type="rerank"
            )
            reranker = RerankClient(rerank_ep, rate_limiter=RateLimiter(10**9), **FAST)
            objects += [rerank_ep, reranker]
            with pytest.raises(HFInferError) as info:
                reranker.rerank("q", ["a", "b"])
            errors.append(info.value)
            reranker.close()
            for kind in (LangChainRerank, LlamaIndexRerank):
                adapter = kind(url=server.url + "/rank", api_key=CANARY, requests_per_minute=10**9, **FAST)
                objects += [adapter, adapter._session, copy.deepcopy(adapter)]
                with pytest.raises(HFInferError) as info:
                    adapter.rank("q", ["a"])
                errors.append(info.value)
            for cls in (HFInferEmbeddings, HFInferEmbedding):
                model = cls(url=server.embed_url, api_key=CANARY, requests_per_minute=10**9, **FAST)
                objects += [model, model._session, copy.deepcopy(model)]
                with pytest.raises(HFInferError) as info:
                    model.embed_query("q") if cls is HFInferEmbeddings else model.get_query_embedding("q")
                errors.append(info.value)

    with fake_endpoint(fault_rate=0.3) as server:  # success paths too
        model = HFInferEmbeddings(
            url=server.embed_url,
            api_key=CANARY,
            chunking_settings={"strategy": "word", "max_chunk_size": 10, "overlap": 0},
        )
        texts.append(repr(model.embed_chunks(["one two three four five six seven eight nine ten eleven"])))
        objects.append(EmbeddingSession(model.endpoint, EmbeddingOptions(batch_size=4)))
        llama = HFInferEmbedding(url=server.embed_url, api_key=CANARY)
        texts.append(repr(llama.get_text_embedding_batch(["x", "y"])))
        objects.append(llama)

    texts.append(repr(chunk_text("some text", endpoint)))
    for obj in objects:
        texts.extend(renderings(obj))
    for error in errors:
        for linked in exception_chain(error):
            texts += [str(linked), repr(linked), repr(getattr(linked, "args", ""))]
    texts.append(debug_logs.text)
    texts += [str(r.args) for r in debug_logs.records]

    assert any("TimeoutError" in t for t in texts)  # the chained httpx errors were really looked at
    assert len(debug_logs.records) > 10
    leaks = [t for t in texts if CANARY in t]
    assert leaks == []


def test_cassettes_never_hold_the_canary() -> None:
    cassettes = list((Path(__file__).parents[1] / "cassettes").glob("*.yaml"))
    assert cassettes
    assert not [p for p in cassettes if CANARY in p.read_text()]
