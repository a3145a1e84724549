"""11. One 5,000-word text through hf-infer and each peer, against the real model (issue #31).

What each returns for it, and the cosine of that vector to the vector of the text's first 150
words: 1.0000 means everything past the model's 256 tokens was cut silently; an error is
what the peer raised. hf-infer chunks the text as Elasticsearch does, fits the chunks to the
token limit and pools their vectors.

Run alone: ``python -m benchmarks.long_document``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

from hf_infer_core import EmbeddingClient, InferenceEndpoint
from hf_infer_server import run_local_server

from .corpus import prose

KEY = "bench-long-document"
WORDS = 5000


def long_text() -> str:
    words = prose(0.2).split()
    return " ".join((words * (WORDS // len(words) + 1))[:WORDS])


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def _peers(url: str) -> list[tuple[str, Callable[[str], list[float]]]]:
    from huggingface_hub import InferenceClient
    from llama_index.embeddings.text_embeddings_inference import TextEmbeddingsInference

    from langchain_hf_infer import HFInferEmbeddings
    from llama_index_hf_infer import HFInferEmbedding

    hub = InferenceClient(base_url=url + "/embed", api_key=KEY)
    tei = TextEmbeddingsInference(base_url=url, model_name="minilm", auth_token=KEY)  # it adds "Bearer "

    def langchain_huggingface(text: str) -> list[float]:
        from langchain_huggingface import HuggingFaceEndpointEmbeddings

        return HuggingFaceEndpointEmbeddings(model=url + "/embed", huggingfacehub_api_token=KEY).embed_query(text)

    return [
        (
            "hf-infer HFInferEmbeddings.embed_documents",
            lambda t: HFInferEmbeddings(url=url + "/embed", api_key=KEY).embed_documents([t])[0],
        ),
        (
            "hf-infer HFInferEmbedding.get_text_embedding",
            lambda t: HFInferEmbedding(url=url + "/embed", api_key=KEY).get_text_embedding(t),
        ),
        ("langchain-huggingface HuggingFaceEndpointEmbeddings", langchain_huggingface),
        ("llama-index TextEmbeddingsInference", tei.get_text_embedding),
        ("llama-index TextEmbeddingsInference (async)", lambda t: asyncio.run(tei.aget_text_embedding(t))),
        (
            "huggingface_hub InferenceClient.feature_extraction",
            lambda t: list(map(float, hub.feature_extraction(t)[0])),
        ),
    ]


Row = tuple[str, str, str, str]


def run() -> list[Row]:
    text = long_text()
    head = " ".join(text.split()[:150])
    rows: list[Row] = []
    with run_local_server(KEY) as server:
        with EmbeddingClient(InferenceEndpoint.from_url(server.embed_url, KEY)) as client:
            first_words = client.embed([head])[0]
        with EmbeddingClient(InferenceEndpoint.from_url(server.embed_url, KEY), truncate=True) as client:
            cut = client.embed([text])[0]  # the text as a truncating endpoint sees it: its first 256 tokens
        for name, embed in _peers(server.url):
            try:
                vector: Any = embed(text)
            except Exception as err:  # what a user sees
                rows.append((name, f"{type(err).__name__}: {' '.join(str(err).split())[:90]}", "-", "-"))
                continue
            what = f"one {len(vector)}-d vector"
            rows.append((name, what, f"{cosine(vector, first_words):.4f}", f"{cosine(vector, cut):.4f}"))
    return rows


def render(rows: list[Row]) -> str:
    lines = [
        f"One {WORDS:,}-word text, all-MiniLM-L6-v2 (256 tokens) behind the local server. Cosines to the vector of "
        "its first 150 words, and to the vector of the text cut at 256 tokens (1.0000 there: everything after "
        "the first ~190 words was dropped, silently).",
        "",
        "| client | what it returns | cosine to the first 150 words | cosine to the text cut at 256 tokens |",
        "|---|---|---:|---:|",
    ]
    lines += [f"| {name} | {what} | {first} | {cut} |" for name, what, first, cut in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(run()))
