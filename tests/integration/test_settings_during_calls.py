"""Settings assigned, copied or closed while calls run never fail a call and take effect on the next."""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from typing import Any

import pytest

from langchain_hf_infer import HFInferEmbeddings
from llama_index_hf_infer import HFInferEmbedding

from ..fake_endpoint import expected_vector, fake_endpoint
from .drive import DRIVERS, in_threads

# ------------------------------------------------------------------ settings are values


@pytest.mark.parametrize("driver", DRIVERS)
def test_assigning_a_setting_during_a_call_never_fails_it_and_takes_effect_next_call(driver: str) -> None:
    texts = [f"text {i}" for i in range(60)]
    with fake_endpoint(latency=0.02, slots=4) as server:
        emb = HFInferEmbeddings(
            url=server.embed_url, api_key="k", requests_per_minute=None, batch_size=2, max_concurrency=2
        )

        def call(_: int) -> Any:
            if driver == "sync":
                return emb.embed_documents(texts)
            return asyncio.run(emb.aembed_documents(texts))

        outcome: list[Any] = []
        worker = threading.Thread(target=lambda: outcome.append(call(0)))
        worker.start()
        while not server.log:  # the call is under way
            time.sleep(0.01)
        for size in [8, 3] * 10:  # every assignment rebuilds the session while the call runs
            emb.batch_size = size
            time.sleep(0.02)
        worker.join(60)
        assert outcome == [[expected_vector(t) for t in texts]]  # whole, on the settings it started with
        first = len(server.log)
        assert len(outcome[0]) == 60 and {len(entry.inputs) for entry in server.log} == {2}
        call(0)
        assert {len(entry.inputs) for entry in server.log[first:]} == {3}  # the last assignment, next call
        assert server.stats()["gets"].get("/info", 0) == 1  # discovery survived every rebuild


def test_close_and_assignments_racing_calls_on_many_threads_never_fail_one() -> None:
    """The previous main: ``AttributeError: 'NoneType' ... embed_query`` or ``ClientClosedError``."""
    with fake_endpoint(latency=0.002) as server:
        emb = HFInferEmbeddings(url=server.embed_url, api_key="k", requests_per_minute=None)
        stop = threading.Event()

        def meddle() -> None:
            sizes = [8, 16]
            while not stop.is_set():
                emb.close()
                emb.batch_size = sizes[0]
                sizes.reverse()

        meddler = threading.Thread(target=meddle)
        meddler.start()
        try:
            answers = in_threads(8, lambda t: [emb.embed_query(f"q{t}-{i}") for i in range(25)])
        finally:
            stop.set()
            meddler.join(30)
        for t, vectors in enumerate(answers):
            assert vectors == [expected_vector(f"q{t}-{i}") for i in range(25)], vectors


def test_llama_index_settings_from_many_threads_with_a_callback_manager() -> None:
    from llama_index.core import Document, Settings, VectorStoreIndex
    from llama_index.core.callbacks import CallbackManager

    with fake_endpoint(latency=0.005) as server:
        model = HFInferEmbedding(url=server.embed_url, api_key="k", requests_per_minute=None)
        previous = (Settings._embed_model, Settings._callback_manager)
        Settings.embed_model = model
        Settings.callback_manager = CallbackManager([])
        try:
            session = model._session
            answers = in_threads(
                8, lambda t: [Settings.embed_model.get_query_embedding(f"q{t}-{i}") for i in range(20)]
            )
            for t, vectors in enumerate(answers):
                assert vectors == [expected_vector(f"q{t}-{i}") for i in range(20)], vectors
            assert model._session is session  # reading Settings.embed_model assigned callback_manager: no rebuild
            stats = server.stats()
            assert stats["gets"].get("/info", 0) == 1
            assert stats["connections"] <= 8 + 2  # a connection per thread at most, not one per query

            # As an app uses it: an index built through Settings, retrievers queried from threads.
            index = VectorStoreIndex.from_documents([Document(text=f"document {i}") for i in range(20)])
            found = in_threads(8, lambda t: index.as_retriever(similarity_top_k=2).retrieve(f"document {t}"))
            assert all(isinstance(nodes, list) and len(nodes) == 2 for nodes in found), found
        finally:
            Settings._embed_model, Settings._callback_manager = previous


def test_model_copy_and_copy_use_their_own_settings() -> None:
    with fake_endpoint() as a, fake_endpoint() as b:
        emb = HFInferEmbeddings(url=a.embed_url, api_key="key-a", requests_per_minute=None)
        emb.embed_query("warm")  # a live client, which the copies must not share
        moved = emb.model_copy(update={"url": b.embed_url, "api_key": "key-b"})
        assert moved.embed_query("to b") == expected_vector("to b")
        assert "key-b" not in repr(moved) and "key-b" not in str(moved.model_dump())
        assert [e.inputs for e in b.log] == [["to b"]] and b.log[0].authorization == "Bearer key-b"
        assert emb.embed_query("to a") == expected_vector("to a")
        assert [e.inputs for e in a.log] == [["warm"], ["to a"]]

        twin = copy.copy(emb)
        twin.url = b.embed_url  # the copy changes; the original does not
        twin.embed_query("twin")
        emb.embed_query("original")
        assert [e.inputs for e in a.log][-1] == ["original"] and [e.inputs for e in b.log][-1] == ["twin"]
        assert b.log[-1].authorization == "Bearer key-a"
