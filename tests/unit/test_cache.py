"""The chunk-level embedding cache (issue #29): only what changed is sent, and nothing it gives is wrong."""

from __future__ import annotations

import json
import logging
import multiprocessing
import sqlite3
import struct
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from langchain_core.stores import InMemoryByteStore

from hf_infer_core import AsyncEmbeddingClient, ConfigError, EmbeddingClient
from hf_infer_core.cache import SQLiteStore
from hf_infer_core.cache._cache import unseal
from hf_infer_core.cache._identity import PROBE_TEXT
from hf_infer_core.cache._keys import decode_vector, encode_vector

from .fakes import Awaited, FakeClock, endpoint, limiter, vector_for
from .test_wire import openai_answer

WORDS = {"strategy": "word", "max_chunk_size": 10, "overlap": 0}


class Tei:
    """/info naming ``model``, /embed and the base64 route; counts the texts each route was sent."""

    def __init__(self, model: str = "model-a") -> None:
        self.model = model
        self.sent: Counter[str] = Counter()
        self.paths: Counter[str] = Counter()
        self.probes = 0

    def vector(self, text: str) -> list[float]:
        # Values that are not exact in float32, so a JSON/base64 or float32/float64 mix-up shows.
        base = vector_for(text)
        return [v / 3.0 + (0.1 if self.model == "model-a" else 0.7) for v in base]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.paths[request.url.path] += 1
        if request.url.path.endswith("/info"):
            return httpx.Response(200, json={"model_id": self.model, "model_sha": "rev1"})
        body = json.loads(request.content)
        texts = body.get("inputs", body.get("input"))
        # The identity probe (cache/_identity.py) is counted apart: the tests count the texts a user sent.
        self.probes += texts.count(PROBE_TEXT)
        self.sent.update(t for t in texts if t != PROBE_TEXT)
        if request.url.path.endswith("/v1/embeddings"):
            return httpx.Response(200, json=openai_answer([self.vector(t) for t in texts]))
        return httpx.Response(200, json=[self.vector(t) for t in texts])


def make(tei: Tei, cache: Any, driver: str = "sync", url: str = "http://tei.test/embed", **options: Any) -> Any:
    clock = FakeClock()
    cls = EmbeddingClient if driver == "sync" else AsyncEmbeddingClient
    client = cls(
        endpoint(url=url, chunking=WORDS),
        transport=httpx.MockTransport(tei),
        rate_limiter=limiter(clock),
        sleep=clock.sleep if driver == "sync" else clock.asleep,
        clock=clock,
        cache=cache,
        **options,
    )
    return client if driver == "sync" else Awaited(client)


def documents(count: int = 20) -> list[str]:
    return [" ".join(f"doc{d}word{w}" for w in range(35)) for d in range(count)]


@pytest.mark.parametrize("driver", ["sync", "async"])
@pytest.mark.parametrize("wire_format", ["json", "base64"])
def test_a_second_run_sends_only_what_changed_and_gives_the_same_bits(
    tmp_path: Path, driver: str, wire_format: str
) -> None:
    path = tmp_path / "vectors.sqlite"
    docs = documents()
    uncached = make(Tei(), None, driver, wire_format=wire_format)
    expected = uncached.embed_documents(docs)
    expected_array = uncached.embed_documents(docs, as_numpy=True)
    expected_chunks = uncached.embed_chunks(docs)

    first = Tei()
    client = make(first, path, driver, wire_format=wire_format)
    assert client.embed_documents(docs) == expected
    chunks_sent = sum(first.sent.values())
    assert client.cache_stats.misses == chunks_sent and client.cache_stats.hits == 0

    edited = list(docs)
    edited[3] = edited[3].replace("doc3word12", "doc3word12 inserted")  # one chunk of one document
    again = Tei()
    client = make(again, path, driver, wire_format=wire_format)
    vectors = client.embed_documents(edited)
    assert sum(again.sent.values()) <= 3  # the chunks the word moved (35 words: 4 chunks, from the 2nd on)
    # 19 documents answered whole (never chunked again); the edited one's 4 chunks looked up.
    assert client.cache_stats.documents == 19
    assert client.cache_stats.hits + client.cache_stats.misses == 4 and client.cache_stats.misses <= 3
    assert vectors[:3] == expected[:3] and vectors[4:] == expected[4:]  # bit for bit
    assert np.array_equal(client.embed_documents(docs, as_numpy=True), expected_array)
    assert client.embed_chunks(docs) == expected_chunks
    assert sum(again.sent.values()) <= 3  # the original document's chunks were all still cached


def test_queries_live_in_a_namespace_of_their_own_and_models_never_cross(tmp_path: Path) -> None:
    path = tmp_path / "vectors.sqlite"
    tei_a, tei_b = Tei("model-a"), Tei("model-b")
    a = make(tei_a, path)
    a.embed_documents(["the same text"])
    a.embed_query("the same text")  # a query is never served a document's vector
    assert tei_a.sent["the same text"] == 2
    # A second endpoint on the same file, serving another model: nothing of model-a's is served.
    b = make(tei_b, path, url="http://other.test/embed")
    assert b.embed_documents(["the same text"]) == [Tei("model-b").vector("the same text")]
    assert b.cache_stats.hits == 0
    # Another option that decides the vector (normalize) is another namespace too.
    c = make(Tei("model-a"), path, normalize=False)
    c.embed_documents(["the same text"])
    assert c.cache_stats.hits == 0


def test_values_of_the_wrong_kind_or_length_are_misses_never_wrong_vectors() -> None:
    vector = [0.1, 0.2, 0.3]
    assert decode_vector(encode_vector(vector, False), False, 3, False) == vector
    assert decode_vector(encode_vector(vector, True), True, 3, False) == [float(np.float32(v)) for v in vector]
    assert decode_vector(encode_vector(vector, False), True, 3, False) is None  # float64 asked as float32
    assert decode_vector(encode_vector(vector, False), False, 4, False) is None  # another size
    assert decode_vector(encode_vector(vector, False)[:-3], False, None, False) is None  # truncated
    assert decode_vector(b"d" + struct.pack("<d", float("nan")), False, None, False) is None
    assert decode_vector(b"", False, None, False) is None and decode_vector(None, False, None, False) is None


def test_a_store_that_holds_bad_entries_costs_a_request_not_a_wrong_vector(tmp_path: Path) -> None:
    store = InMemoryByteStore()  # LangChain's ByteStore, used as it is
    tei = Tei()
    make(tei, store).embed(["short text"])
    (key,) = [k for k in store.yield_keys() if not k.startswith("identity-")]
    store.mset([(key, b"d" + b"\x00" * 5)])  # a truncated entry
    client = make(tei, store)
    assert client.embed(["short text"]) == [tei.vector("short text")]
    assert tei.sent["short text"] == 2 and client.cache_stats.misses == 1 and client.cache_stats.errors == 1
    assert decode_vector(unseal(key, store.mget([key])[0]), False, 4, False) == tei.vector("short text")  # rewritten


class Failing:
    def __init__(self) -> None:
        self.calls = 0

    def mget(self, keys: list[str]) -> list[bytes | None]:
        self.calls += 1
        raise ConnectionError("the store is down")

    def mset(self, pairs: list[tuple[str, bytes]]) -> None:
        self.calls += 1
        raise ConnectionError("the store is down")


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_failing_store_warns_once_and_the_endpoint_answers(driver: str, caplog: pytest.LogCaptureFixture) -> None:
    tei, store = Tei(), Failing()
    client = make(tei, store, driver)
    with caplog.at_level(logging.DEBUG, logger="hf_infer_core"):
        assert client.embed_documents(["a b c"]) == [tei.vector("a b c")]
        assert client.embed_documents(["a b c"]) == [tei.vector("a b c")]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "embedding cache" in r.getMessage()]
    assert len(warnings) == 1 and "ConnectionError" in warnings[0].getMessage()
    assert client.cache_stats.errors == 1 and store.calls == 1  # resting after the failure: not tried again
    assert tei.sent["a b c"] == 2


def test_a_file_corrupted_or_truncated_mid_run_falls_back_to_the_endpoint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "vectors.sqlite"
    tei = Tei()
    client = make(tei, path)
    client.embed_documents(documents(50))
    with open(path, "r+b") as file:  # another process tramples the file under the open connection
        file.seek(0)
        file.write(b"garbage" * 1000)
    vectors = client.embed_documents(documents(50))
    uncached = make(Tei(), None).embed_documents(documents(50))
    assert vectors == uncached  # from the cache's pages still read, or the endpoint: never wrong
    client.close()
    for damage in ("truncated", "garbage"):
        with open(path, "r+b") as file:
            if damage == "truncated":  # a valid header, pages missing
                file.truncate(path.stat().st_size // 2)
            else:  # no longer a database at all
                file.write(b"garbage" * 1000)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="hf_infer_core"):
            opened = make(tei, path)  # never a ConfigError: the file is only a cache
            assert opened.embed_documents(documents(50)) == uncached
        assert any("embedding cache" in r.getMessage() for r in caplog.records), damage
        opened.close()
    assert list(tmp_path.glob("vectors.sqlite.corrupt-*"))  # moved aside, for whoever wants to look
    again = Tei()
    rebuilt = make(again, path)
    assert rebuilt.embed_documents(documents(50)) == uncached
    assert rebuilt.cache_stats.documents == 50 and sum(again.sent.values()) == 0  # made anew, and used


def test_a_locked_file_is_waited_for_briefly_then_the_endpoint_answers(tmp_path: Path) -> None:
    path = tmp_path / "vectors.sqlite"
    store = SQLiteStore(path, 1 << 30, busy_timeout=0.05)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holds the file
    try:
        tei = Tei()
        client = make(tei, store)
        assert client.embed_documents(["a b"]) == [tei.vector("a b")]
        assert client.cache_stats.errors == 1
    finally:
        holder.execute("ROLLBACK")


def test_bad_paths_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[cache\].*folder .* does not exist"):
        make(Tei(), tmp_path / "missing" / "vectors.sqlite")
    with pytest.raises(ConfigError, match=r"\[cache\].*is not a file"):
        make(Tei(), tmp_path)
    with pytest.raises(ConfigError, match=r"\[cache\].*mget"):
        make(Tei(), 42)


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_folder_where_no_file_can_be_made_warns_once_and_the_endpoint_answers(
    driver: str, caplog: pytest.LogCaptureFixture
) -> None:
    tei = Tei()
    with caplog.at_level(logging.WARNING, logger="hf_infer_core"):
        client = make(tei, "/proc/hf-infer.sqlite", driver)  # no file can be made there, even by root
        assert client.embed_documents(["a b c"]) == [tei.vector("a b c")]
        assert client.embed_documents(["a b c"]) == [tei.vector("a b c")]
    warnings = [r for r in caplog.records if "embedding cache" in r.getMessage()]
    assert (len(warnings) == 1 and "hf-infer.sqlite" not in warnings[0].getMessage()) or len(warnings) == 1
    assert client.cache_stats.errors == 1 and tei.sent["a b c"] == 2


def test_the_file_stays_within_its_bound_and_keeps_the_recently_used(tmp_path: Path) -> None:
    path = tmp_path / "vectors.sqlite"
    now = [0]

    def clock() -> int:
        now[0] += 120 * 10**9  # two minutes a step: every use is written down
        return now[0]

    store = SQLiteStore(path, 1 << 20, clock=clock)
    big = [float(i) for i in range(1000)]  # 8 KB a vector
    for round_ in range(40):  # 40 rounds of 10: 3.2 MB written in all
        store.mset([(f"k{round_}-{i}", encode_vector(big, False)) for i in range(10)])
        assert store.mget(["k0-0"])[0] is not None  # used every round: never the least recent
    db = sqlite3.connect(path)
    pages = db.execute("PRAGMA page_count").fetchone()[0] - db.execute("PRAGMA freelist_count").fetchone()[0]
    assert pages * db.execute("PRAGMA page_size").fetchone()[0] <= 1 << 20
    assert all(v is not None for v in store.mget(["k0-0", "k39-9"])) and store.mget(["k1-0"]) == [None]
    # On disk, every file of the cache (journal included), within 1.25 times the bound.
    assert sum(f.stat().st_size for f in tmp_path.glob("vectors.sqlite*")) <= 1.25 * (1 << 20)


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_the_files_on_disk_stay_within_the_bound_through_a_client(tmp_path: Path, driver: str) -> None:
    path = tmp_path / "vectors.sqlite"
    client = make(Tei(), path, driver, cache_max_bytes=1 << 20)
    for round_ in range(12):  # about 5 MB of vectors and keys through a 1 MiB cache
        client.embed([f"round {round_} text {i} " + "x" * 40 for i in range(1000)])
        on_disk = sum(f.stat().st_size for f in tmp_path.glob("vectors.sqlite*"))
        assert on_disk <= 1.25 * (1 << 20), (round_, on_disk)
    assert client.cache_stats.errors == 0


def _process(path: str, start: int) -> list[bool]:
    tei = Tei()
    client = make(tei, path)
    docs = documents(30)[start : start + 20]  # overlapping shares of one corpus
    expected = make(Tei(), None).embed_documents(docs)
    return [v == e for v, e in zip(client.embed_documents(docs), expected, strict=True)] + [
        client.cache_stats.errors == 0
    ]


def test_four_processes_share_one_file(tmp_path: Path) -> None:
    path = str(tmp_path / "vectors.sqlite")
    SQLiteStore(path, 1 << 30)  # made before the fork
    with multiprocessing.get_context("fork").Pool(4) as pool:
        results = pool.starmap(_process, [(path, start) for start in (0, 5, 10, 0)])
    assert all(all(r) for r in results)
    db = sqlite3.connect(path)
    # Every chunk once, and every document's pooled vector once.
    # The namespace's identity anchors are one more entry.
    assert db.execute("SELECT COUNT(*) FROM vectors WHERE key NOT LIKE 'identity-%'").fetchone()[0] == 30 * 4 + 30


def test_a_failure_among_the_texts_not_cached_names_the_callers_text(tmp_path: Path) -> None:
    path = tmp_path / "vectors.sqlite"
    tei = Tei()
    make(tei, path).embed_documents(["first text", "second text"])

    def refusing(request: httpx.Request) -> httpx.Response:
        if b"broken" in request.content:
            return httpx.Response(400, json={"error": "no", "error_type": "validation"})
        return tei(request)

    with pytest.raises(Exception) as raised:
        make(refusing, path, max_retries=0).embed_documents(["first text", "second text", "broken text"])  # type: ignore[arg-type]
    assert getattr(raised.value, "indices", None) == (2,)  # the caller's position, not the third miss's 0


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_failure_among_the_chunks_not_cached_names_the_callers_text(tmp_path: Path, driver: str) -> None:
    """The same through embed and embed_chunks: a miss's failure is named by the caller's position."""
    path = tmp_path / "vectors.sqlite"
    tei = Tei()
    make(tei, path, driver).embed(["first text", "second text"])

    def refusing(request: httpx.Request) -> httpx.Response:
        if b"broken" in request.content:
            return httpx.Response(400, json={"error": "no", "error_type": "validation"})
        return tei(request)

    texts = ["first text", "second text", "broken text"]
    with pytest.raises(Exception) as raised:
        make(refusing, path, driver, max_retries=0).embed(texts)  # type: ignore[arg-type]
    assert getattr(raised.value, "indices", None) == (2,)  # not 0, its place among the misses
    with pytest.raises(Exception) as chunked:
        make(refusing, path, driver, max_retries=0).embed_chunks(texts)  # type: ignore[arg-type]
    assert getattr(chunked.value, "indices", None) == (2,)


def test_progress_bars_count_the_hits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "vectors.sqlite"
    tei = Tei()
    make(tei, path).embed_chunks(documents(5))
    capsys.readouterr()
    make(tei, path, show_progress=True).embed_chunks(documents(5))  # every chunk a hit: nothing sent
    assert "5/5" in capsys.readouterr().err  # the bar counts texts, the cached ones too


def test_the_llama_index_adapters_dict_is_stable_across_calls(tmp_path: Path) -> None:
    from llama_index_hf_infer import HFInferEmbedding

    tei = Tei()
    transport = httpx.MockTransport(tei)
    model = HFInferEmbedding(
        url="http://tei.test/embed",
        api_key="hf_x",
        requests_per_minute=None,
        cache=str(tmp_path / "vectors.sqlite"),
        http_client=httpx.Client(transport=transport),
    )
    before = model.to_dict()
    model.get_text_embedding_batch(["a text", "another text"])
    assert model.to_dict() == before  # an IngestionCache keyed on it hits on the next run
    assert model.discovered_model == "model-a" and model.cache_stats.misses == 2
