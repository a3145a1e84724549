"""Ray Data on a local Ray (``ray.init(num_cpus=2)``): the same vectors, chunks, failures, one budget."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ray.data", reason="the ray extra is not installed")

import pyarrow as pa
import pyarrow.parquet as pq
import ray
import ray.data

from hf_infer_core import AuthenticationError, EmbeddingClient, InferenceEndpoint
from hf_infer_core.ray import CHUNK_COLUMNS, embed_dataset

from ..conftest import RedisServer
from ..fake_endpoint import expected_vector, fake_endpoint, max_in_window

ROWS = 20_000
WORDS = {"strategy": "word", "max_chunk_size": 10, "overlap": 2}


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield
    finally:
        ray.shutdown()


def text_of(row: int) -> str:
    # Every 50th row is long enough for several 10-word chunks.
    if row % 50 == 0:
        return " ".join(f"row{row}word{w}" for w in range(35))
    return f"row {row}: a short text about topic {row % 97}."


@pytest.fixture(scope="module")
def parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ray") / "rows.parquet"
    table = pa.table({"id": pa.array(range(ROWS), pa.int64()), "text": [text_of(i) for i in range(ROWS)]})
    pq.write_table(table, path, row_group_size=2_000)
    return path


def rows_of(ds: ray.data.Dataset) -> pa.Table:
    return pa.concat_tables([ray.get(ref) for ref in ds.to_arrow_refs()]).sort_by("id")


def test_every_row_gets_the_single_process_vector(local_ray: None, parquet: Path) -> None:
    with fake_endpoint() as server:
        endpoint = InferenceEndpoint.from_url(server.embed_url, "k", requests_per_minute=10**7)
        ds = ray.data.read_parquet(str(parquet))
        out = rows_of(embed_dataset(ds, endpoint, concurrency=2, batch_size=32, max_concurrency=4))
        texts = out.column("text").to_pylist()
        with EmbeddingClient(endpoint) as client:
            expected = client.embed_documents(texts, as_numpy=True)
    assert out.num_rows == ROWS
    assert out.column("id").to_pylist() == list(range(ROWS))  # every row once, every column kept
    column = out.column("embedding")
    assert pa.types.is_fixed_size_list(column.type) and column.type.value_type == pa.float32()
    assert np.array_equal(np.stack(column.to_numpy(zero_copy_only=False)), expected)


def test_chunks_become_rows_whose_offsets_match_their_text(local_ray: None) -> None:
    source = [text_of(i) for i in range(0, 500, 25)]
    with fake_endpoint() as server:
        body = {
            "service": "hugging_face",
            "service_settings": {"url": server.embed_url, "api_key": "k", "rate_limit": {"requests_per_minute": 10**7}},
            "chunking_settings": WORDS,
        }
        ds = ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(source)])
        out = pa.concat_tables([ray.get(r) for r in embed_dataset(ds, body, chunks=True).to_arrow_refs()])
    assert set(CHUNK_COLUMNS) <= set(out.column_names)
    rows = out.to_pylist()
    for row in rows:
        text = source[row["id"]]
        assert text[row["chunk_start"] : row["chunk_end"]] == row["chunk_text"]
        assert row["embedding"] == pytest.approx(expected_vector(row["chunk_text"]), rel=1e-6)
    per_id = {i: sorted(r["chunk_index"] for r in rows if r["id"] == i) for i in range(len(source))}
    assert all(indices == list(range(len(indices))) for indices in per_id.values())
    assert max(len(v) for v in per_id.values()) > 1  # the long texts were split


def _map_workers() -> list[int]:
    listing = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    return [int(line.split()[0]) for line in listing.splitlines() if "MapWorker" in line and "_Embedder" in line]


def test_an_actor_killed_mid_run_still_gives_each_row_once(local_ray: None, parquet: Path) -> None:
    killed: list[int] = []

    def kill_one() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not killed:
            workers = _map_workers()
            if workers:
                time.sleep(1.0)  # let it take work first
                os.kill(workers[0], signal.SIGKILL)
                killed.append(workers[0])
                return
            time.sleep(0.1)

    with fake_endpoint(latency=0.02) as server:
        endpoint = InferenceEndpoint.from_url(server.embed_url, "k", requests_per_minute=10**7)
        ds = ray.data.read_parquet(str(parquet)).limit(6_000)
        killer = threading.Thread(target=kill_one)
        killer.start()
        out = rows_of(embed_dataset(ds, endpoint, concurrency=2, batch_size=16, max_concurrency=2))
        killer.join()
    assert killed, "no actor was found to kill"
    assert out.column("id").to_pylist() == list(range(6_000))
    vectors = np.stack(out.column("embedding").to_numpy(zero_copy_only=False))
    texts = out.column("text").to_pylist()
    assert np.array_equal(vectors, np.asarray([expected_vector(t) for t in texts], dtype=np.float32))


def test_a_permanent_failure_fails_the_job_with_its_typed_error(local_ray: None) -> None:
    with fake_endpoint(permanent="401") as server:
        ds = ray.data.from_items([{"text": f"t{i}"} for i in range(10)])
        with pytest.raises(AuthenticationError) as info:
            embed_dataset(ds, server.embed_url, concurrency=1).materialize()
    assert info.value.status_code == 401
    assert info.value.indices  # the failing rows of the batch


def test_a_redis_budget_binds_every_actor(local_ray: None, redis_server: RedisServer) -> None:
    rpm = 600
    with fake_endpoint() as server:
        endpoint = InferenceEndpoint.from_url(server.embed_url, "k", requests_per_minute=rpm)
        items = [{"id": i, "text": f"budget text {i}"} for i in range(1_600)]
        ds = ray.data.from_items(items, override_num_blocks=8)  # work for both actors
        out = rows_of(embed_dataset(ds, endpoint, concurrency=2, rate_limit_backend=redis_server.url, batch_size=32))
        times = sorted(entry.at for entry in server.log)
    assert out.num_rows == 1_600
    assert len(times) >= 50
    # Redis grants the two actors' requests 0.1 s apart, but the test sees arrivals at the
    # server: a process the machine starves sends a granted request late, and the arrivals after
    # a late one come bunched (12 in a second under two CPU hogs, gaps of 0.07-0.16 s). So the
    # run's length is the assertion, with half a second for one late send at either end; each
    # actor alone at 600/min would finish in half of it (20 a second, not 10).
    interval = 60 / rpm
    assert times[-1] - times[0] >= (len(times) - 1) * interval - 0.5
    assert max_in_window(times, 1.0) <= rpm // 60 + 1 + 3  # bunched by late sends, never 20


def test_local_budget_is_split_between_actors(caplog: pytest.LogCaptureFixture, local_ray: None) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="hf_infer_core")
    ds = ray.data.from_items([{"text": "x"}])
    embed_dataset(
        ds, InferenceEndpoint.from_url("http://127.0.0.1:9/embed", "k", requests_per_minute=3000), concurrency=4
    )
    assert "4 actors x 750 requests/min each" in caplog.text


def test_endpoint_forms_and_bad_arguments(local_ray: None) -> None:
    from hf_infer_core.ray import resolve_endpoint

    body: dict[str, Any] = {"service": "hugging_face", "service_settings": {"url": "http://h/embed", "api_key": "k"}}
    import json

    assert resolve_endpoint(body).url == resolve_endpoint(json.dumps(body)).url == "http://h/embed"
    assert resolve_endpoint("http://h/embed").url == "http://h/embed"
    ds = ray.data.from_items([{"text": "x"}])
    with pytest.raises(ValueError, match="concurrency"):
        embed_dataset(ds, body, concurrency=0)
    with pytest.raises(ValueError, match="batch_size"):
        embed_dataset(ds, body, batch_size=0)


def test_the_result_loads_into_a_llama_index_vector_store(local_ray: None) -> None:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.schema import TextNode

    from llama_index_hf_infer import HFInferEmbedding

    texts = [f"document {i} about topic {i}" for i in range(50)]
    with fake_endpoint() as server:
        body = {"service": "hugging_face", "service_settings": {"url": server.embed_url, "api_key": "k"}}
        out = embed_dataset(ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(texts)]), body)
        nodes = [
            TextNode(text=row["text"], embedding=list(row["embedding"]), metadata={"id": row["id"]})
            for row in out.iter_rows()
        ]
        requests_before = len(server.log)
        index = VectorStoreIndex(nodes, embed_model=HFInferEmbedding.from_inference_endpoint(body, inference_id="x"))
        assert len(server.log) == requests_before  # nothing was embedded again
        hits = index.as_retriever(similarity_top_k=1).retrieve(texts[17])
    assert hits[0].node.metadata["id"] == 17


def test_a_missing_text_column_is_refused_when_the_job_is_planned(local_ray: None) -> None:
    from hf_infer_core import ConfigError

    ds = ray.data.from_items([{"id": 1, "body": "no text column here"}])
    with pytest.raises(ConfigError, match="no column 'text'"):
        embed_dataset(ds, "http://127.0.0.1:9/embed")
