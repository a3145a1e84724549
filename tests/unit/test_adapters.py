"""Adapter behaviour without a server: construction, copies, pickles, dumps, and the standard unit suite."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import httpx
import pytest
from langchain_tests.unit_tests import EmbeddingsUnitTests

from hf_infer_core import ConfigError
from langchain_hf_infer import HFInferEmbeddings
from llama_index_hf_infer import HFInferEmbedding

from .fakes import SECRET

URL = "http://127.0.0.1:9/embed"  # nothing listens there: construction must not connect
BODY = {
    "service": "hugging_face",
    "service_settings": {
        "api_key": SECRET,
        "url": URL,
        "rate_limit": {"requests_per_minute": 120},
        "similarity": "dot_product",
    },
    "chunking_settings": {"strategy": "word", "max_chunk_size": 100, "overlap": 10},
}


class TestHFInferEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[HFInferEmbeddings]:
        return HFInferEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"url": URL, "api_key": SECRET}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return ({"HF_TOKEN": "env-token", "HF_INFER_URL": URL}, {}, {"api_key": "env-token", "url": URL})


@pytest.mark.parametrize("cls", [HFInferEmbeddings, HFInferEmbedding])
def test_from_inference_endpoint(cls: Any) -> None:
    model = cls.from_inference_endpoint(BODY, inference_id="my-endpoint", batch_size=8)
    assert model.endpoint.to_dict()["service_settings"] == {
        "url": URL,
        "similarity": "dot_product",
        "rate_limit": {"requests_per_minute": 120},
    }
    assert model.endpoint.chunking_settings.to_dict() == BODY["chunking_settings"]
    assert model.batch_size == 8
    assert model.api_key.get_secret_value() == SECRET


@pytest.mark.parametrize("cls", [HFInferEmbeddings, HFInferEmbedding])
def test_hub_token_fallback(cls: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HUGGINGFACEHUB_API_TOKEN", "hub-token")
    assert cls(url=URL).api_key.get_secret_value() == "hub-token"


@pytest.mark.parametrize("cls", [HFInferEmbeddings, HFInferEmbedding])
def test_invalid_config_raises_at_construction(cls: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGINGFACEHUB_API_TOKEN", raising=False)
    monkeypatch.delenv("HF_INFER_URL", raising=False)
    with pytest.raises(ValueError, match=r"\[url\]"):
        cls(api_key="k")
    with pytest.raises(ValueError, match=r"\[api_key\]"):
        cls(url=URL)
    with pytest.raises(ValueError, match=r"max_chunk_size"):
        cls(url=URL, api_key="k", chunking_settings={"strategy": "word", "max_chunk_size": 5, "overlap": 0})
    with pytest.raises(ConfigError):
        cls.from_inference_endpoint(BODY, inference_id="Bad Id")


@pytest.mark.parametrize("cls", [HFInferEmbeddings, HFInferEmbedding])
def test_pickle_and_deepcopy_survive_and_hold_no_secret(cls: Any) -> None:
    model = cls(url=URL, api_key=SECRET, batch_size=7)
    _ = model._session.client  # a live client (sockets, locks) must not break copies
    data = pickle.dumps(model)
    assert SECRET.encode() not in data
    clone = pickle.loads(data)
    assert clone.api_key.get_secret_value() == SECRET
    assert clone.batch_size == 7
    deep = copy.deepcopy(model)
    assert deep.api_key.get_secret_value() == SECRET
    assert deep._session is not model._session
    assert deep.endpoint == model.endpoint


@pytest.mark.parametrize("cls", [HFInferEmbeddings, HFInferEmbedding])
def test_reprs_and_dumps_hold_no_secret(cls: Any) -> None:
    model = cls(url=URL, api_key=SECRET)
    for text in (repr(model), str(model), model.model_dump_json(), repr(model.model_dump()), repr(model.endpoint)):
        assert SECRET not in text


def test_llama_index_dump_round_trip_without_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    model = HFInferEmbedding(url=URL, api_key=SECRET, batch_size=5, query_prefix="query: ")
    dumped = model.to_dict()
    assert dumped["api_key"] is None
    assert SECRET not in model.to_json()
    monkeypatch.setenv("HF_TOKEN", "from-env")
    again = HFInferEmbedding.from_dict(dumped)
    assert again.batch_size == 5
    assert again.query_prefix == "query: "
    assert again.api_key.get_secret_value() == "from-env"
    assert HFInferEmbedding.class_name() == "HFInferEmbedding"


def test_llama_index_uses_real_batching(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        import json

        inputs = json.loads(request.content)["inputs"]
        seen.append(len(inputs))
        return httpx.Response(200, json=[[0.5, 0.5]] * len(inputs))

    model = HFInferEmbedding(url=URL, api_key=SECRET, batch_size=10, max_concurrency=1, requests_per_minute=10**6)
    model._session.options["transport"] = httpx.MockTransport(handler)
    assert len(model.get_text_embedding_batch([f"t{i}" for i in range(25)])) == 25
    assert seen == [10, 10, 5]


def test_langchain_serialisation_refers_to_the_key_by_env_var() -> None:
    model = HFInferEmbeddings(url=URL, api_key=SECRET)
    assert model.lc_secrets == {"api_key": "HF_TOKEN"}
