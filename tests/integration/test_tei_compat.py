"""The local server behaves like text-embeddings-inference: routes, shapes, status codes, real clients."""

from __future__ import annotations

import base64
import math
import re
import threading

import httpx
import numpy as np
import pytest

from hf_infer_server import LocalServer


def auth(server: LocalServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.api_key}"}


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(v * v for v in vector))


def test_every_route_wants_the_token_and_refuses_with_a_bare_401(local_server: LocalServer) -> None:
    for method, route in [
        ("GET", "/info"),
        ("GET", "/health"),
        ("GET", "/metrics"),
        ("POST", "/embed"),
        ("POST", "/tokenize"),
    ]:
        answer = httpx.request(method, local_server.url + route, json={"inputs": "x"})
        assert answer.status_code == 401, route
        assert answer.content == b"", route
    wrong = httpx.post(local_server.url + "/embed", json={"inputs": "x"}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401


def test_info_has_tei_fields(local_server: LocalServer) -> None:
    info = httpx.get(local_server.url + "/info", headers=auth(local_server)).json()
    for key in (
        "model_id", "model_sha", "model_dtype", "model_type", "max_concurrent_requests", "max_input_length",
        "max_batch_tokens", "max_batch_requests", "max_client_batch_size", "auto_truncate",
        "tokenization_workers", "version", "sha", "docker_label",
    ):  # fmt: skip
        assert key in info, key
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", info["version"])
    assert info["auto_truncate"] is True  # TEI 1.9's default


def test_normalize_is_honoured_and_typed(local_server: LocalServer) -> None:
    url, headers = local_server.url + "/embed", auth(local_server)
    normalised = httpx.post(url, json={"inputs": ["hello world"]}, headers=headers).json()[0]
    raw = httpx.post(url, json={"inputs": ["hello world"], "normalize": False}, headers=headers).json()[0]
    assert math.isclose(norm(normalised), 1.0, rel_tol=1e-5)
    assert not math.isclose(norm(raw), 1.0, rel_tol=1e-3)  # the pooled vector, not normalised
    assert np.allclose(np.asarray(raw) / norm(raw), normalised, atol=1e-5)
    wrong = httpx.post(url, json={"inputs": ["x"], "normalize": "yes"}, headers=headers)
    assert wrong.status_code == 422
    assert wrong.text.startswith("Failed to deserialize the JSON body")
    empty = httpx.post(url, json={"inputs": []}, headers=headers)
    assert empty.status_code == 400 and empty.json()["error_type"] == "empty"  # TEI 1.9


def test_openai_route_float_and_base64(local_server: LocalServer) -> None:
    url, headers = local_server.url + "/v1/embeddings", auth(local_server)
    floats = httpx.post(url, json={"input": ["a cat", "a dog"], "model": "x"}, headers=headers).json()
    assert floats["object"] == "list" and floats["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert [d["index"] for d in floats["data"]] == [0, 1]
    assert floats["usage"]["prompt_tokens"] > 0
    packed = httpx.post(url, json={"input": ["a cat", "a dog"], "encoding_format": "base64"}, headers=headers).json()
    for as_float, as_b64 in zip(floats["data"], packed["data"], strict=True):
        decoded = np.frombuffer(base64.b64decode(as_b64["embedding"]), dtype="<f4")
        assert np.array_equal(decoded, np.asarray(as_float["embedding"], dtype=np.float32))
    too_many = httpx.post(url, json={"input": ["x"] * 33}, headers=headers)
    assert too_many.status_code == 422
    assert set(too_many.json()) == {"message", "code", "type"}


def test_embed_all_tokenize_and_metrics(local_server: LocalServer) -> None:
    headers = auth(local_server)
    tokens = httpx.post(local_server.url + "/tokenize", json={"inputs": ["hello world"]}, headers=headers).json()
    assert [t["text"] for t in tokens[0]] == ["[CLS]", "hello", "world", "[SEP]"]
    assert tokens[0][0]["special"] is True and tokens[0][0]["start"] is None
    assert (tokens[0][1]["start"], tokens[0][1]["stop"]) == (0, 5)
    every = httpx.post(local_server.url + "/embed_all", json={"inputs": ["hello world"]}, headers=headers).json()
    assert len(every) == 1 and len(every[0]) == len(tokens[0]) and len(every[0][0]) == 384
    metrics = httpx.get(local_server.url + "/metrics", headers=headers).text
    assert "te_request_count" in metrics and "# TYPE" in metrics


def test_huggingface_hub_inference_client(local_server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants
    from huggingface_hub import InferenceClient

    # The suite runs with HF_HUB_OFFLINE=1 (no hub downloads); huggingface_hub then refuses every URL,
    # even 127.0.0.1, so it is lifted for this local call only (pytest still blocks all but loopback).
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)

    client = InferenceClient(model=local_server.url, token=local_server.api_key)
    vector = client.feature_extraction("a sentence to embed")
    assert np.asarray(vector).reshape(-1).shape == (384,)


def test_llama_index_text_embeddings_inference(local_server: LocalServer) -> None:
    tei = pytest.importorskip("llama_index.embeddings.text_embeddings_inference")
    model = tei.TextEmbeddingsInference(
        model_name="all-MiniLM-L6-v2", base_url=local_server.url, auth_token=local_server.api_key
    )
    vectors = model.get_text_embedding_batch(["one", "two"])
    assert len(vectors) == 2 and len(vectors[0]) == 384


def test_langchain_openai_embeddings(local_server: LocalServer) -> None:
    openai = pytest.importorskip("langchain_openai")
    model = openai.OpenAIEmbeddings(
        model="all-MiniLM-L6-v2",
        base_url=local_server.url + "/v1",
        api_key=local_server.api_key,
        check_embedding_ctx_length=False,
    )
    vectors = model.embed_documents(["one", "two"])
    assert len(vectors) == 2 and len(vectors[0]) == 384
    assert math.isclose(norm(vectors[0]), 1.0, rel_tol=1e-4)


def test_json_and_base64_wire_formats_give_the_same_vectors(local_server: LocalServer) -> None:
    from hf_infer_core import EmbeddingClient, InferenceEndpoint

    endpoint = InferenceEndpoint.from_url(local_server.embed_url, local_server.api_key)
    texts = [f"sentence {i} about the sea" for i in range(40)]
    with EmbeddingClient(endpoint) as as_json, EmbeddingClient(endpoint, wire_format="base64") as as_b64:
        from_json = as_json.embed(texts)
        from_b64 = as_b64.embed(texts)
        arrays = (as_json.embed(texts, as_numpy=True), as_b64.embed(texts, as_numpy=True))
    assert np.array_equal(arrays[0], arrays[1])  # bit-identical float32
    # As Python floats, JSON carries each float32's shortest decimal and base64 its exact value:
    # the same float32, different doubles below float32 precision.
    assert np.array_equal(np.asarray(from_json, np.float32), np.asarray(from_b64, np.float32))


def test_tokenize_offsets_count_utf8_bytes_as_tei_does(local_server: LocalServer) -> None:
    text = "Zürich café 🙂 naïve"
    answer = httpx.post(local_server.url + "/tokenize", json={"inputs": text}, headers=auth(local_server), timeout=30)
    tokens = answer.json()[0]
    assert tokens[0]["special"] and tokens[0]["start"] is None and tokens[-1]["stop"] is None
    data = text.encode("utf-8")
    for token in tokens[1:-1]:
        # TEI slices the input's bytes: each token's text is its bytes, decoded.
        assert data[token["start"] : token["stop"]].decode("utf-8") == token["text"]
    assert tokens[-2]["stop"] == len(data)


def test_fitting_through_tokenize_cuts_non_ascii_text_at_character_offsets(local_server: LocalServer) -> None:
    from hf_infer_core import EmbeddingClient, InferenceEndpoint

    text = " ".join(["Zürich's café served naïve résumé-writers crème brûlée; 東京 の 天気"] * 120)
    endpoint = InferenceEndpoint.from_url(local_server.embed_url, local_server.api_key, requests_per_minute=10**6)
    with EmbeddingClient(endpoint, discover=True) as client:
        (chunks,) = client.embed_chunks([text])
    assert len(chunks) > 2
    for chunk in chunks:
        assert chunk.text == text[chunk.start : chunk.end]
        assert len(chunk.embedding) == 384


def test_an_input_over_the_limit_is_refused_while_truncating_requests_run(local_server: LocalServer) -> None:
    """The length check never sees the truncation another request's encode set on the shared tokenizer."""
    url, headers = local_server.url + "/embed", auth(local_server)
    long = " ".join(f"word{i}" for i in range(400))  # ~1,200 word pieces
    stop = threading.Event()

    def truncating() -> None:
        with httpx.Client(timeout=60) as http:
            while not stop.is_set():
                http.post(url, json={"inputs": [long] * 8, "truncate": True}, headers=headers)

    workers = [threading.Thread(target=truncating) for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        with httpx.Client(timeout=60) as http:
            statuses = [
                http.post(url, json={"inputs": [long], "truncate": False}, headers=headers).status_code
                for _ in range(100)
            ]
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert statuses == [422] * 100


def test_dimensions_truncate_and_renormalise_as_tei_does(local_server: LocalServer) -> None:
    url, headers = local_server.url, auth(local_server)
    full = httpx.post(url + "/embed", json={"inputs": ["a sentence"]}, headers=headers).json()[0]
    cut = httpx.post(url + "/embed", json={"inputs": ["a sentence"], "dimensions": 128}, headers=headers).json()[0]
    assert len(cut) == 128 and abs(norm(cut) - 1) < 1e-5
    head = np.asarray(full[:128]) / np.linalg.norm(full[:128])
    assert np.allclose(cut, head, atol=1e-6)
    raw = httpx.post(
        url + "/embed", json={"inputs": ["a sentence"], "dimensions": 128, "normalize": False}, headers=headers
    ).json()[0]
    assert len(raw) == 128 and abs(norm(raw) - 1) > 1e-3  # not renormalised when not normalising
    openai = httpx.post(url + "/v1/embeddings", json={"input": ["a sentence"], "dimensions": 64}, headers=headers)
    assert len(openai.json()["data"][0]["embedding"]) == 64
    too_big = httpx.post(url + "/embed", json={"inputs": ["x"], "dimensions": 1000}, headers=headers)
    assert too_big.status_code == 422 and "larger than the model's 384" in too_big.json()["error"]
    assert httpx.post(url + "/embed", json={"inputs": ["x"], "dimensions": 0}, headers=headers).status_code == 422


def test_the_clients_dimensions_option_end_to_end(local_server: LocalServer) -> None:
    from hf_infer_core import EmbeddingClient, InferenceEndpoint, InvalidRequestError

    endpoint = InferenceEndpoint.from_url(local_server.embed_url, local_server.api_key, dimensions=128)
    with EmbeddingClient(endpoint) as client:
        (vector,) = client.embed_documents(["a sentence about the sea"])
        assert len(vector) == 128 and client.dimensions == 128
    too_big = InferenceEndpoint.from_url(local_server.embed_url, local_server.api_key, dimensions=999)
    with (
        EmbeddingClient(too_big) as c,
        pytest.raises(InvalidRequestError, match=r"the request carried dimensions=999 \(service_settings"),
    ):
        c.embed(["x"])


def test_the_access_log_has_a_line_per_request_and_never_the_key(tmp_path: object) -> None:
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    from hf_infer_server import free_port

    port, key = free_port(), "hf_access_log_canary_123"
    log = Path(str(tmp_path)) / "server.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_INFER_SERVER_API_KEY": key}
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hf_infer_server._cli", "serve", "--port", str(port)], env=env, stderr=sink
        )
        try:
            url, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {key}"}
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if httpx.get(url + "/health", headers=headers, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.3)
            httpx.post(url + "/embed", json={"inputs": ["a", "b"]}, headers=headers)
            httpx.post(url + "/rerank?token=x", json={"query": "q", "texts": ["a", "b", "c"]}, headers=headers)
            httpx.post(url + "/embed", json={"inputs": ["a"]}, headers={"Authorization": "Bearer wrong"})
            time.sleep(0.5)
        finally:
            proc.terminate()
            proc.wait(15)
    text = log.read_text()
    assert re.search(r'127\.0\.0\.1 "POST /embed" 200 2 inputs \d+\.\d ms', text), text[-2000:]
    assert re.search(r'"POST /rerank" 200 3 inputs', text)
    assert re.search(r'"POST /embed" 401 - inputs', text)
    assert key not in text and "wrong" not in text and "token=x" not in text
