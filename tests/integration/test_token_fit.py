"""Chunks that fit the model: the real all-MiniLM-L6-v2 (256 word pieces) behind the local TEI server."""

from __future__ import annotations

import math
import os
import random
import re

import httpx
import pytest

from hf_infer_core import EmbeddingClient, InferenceEndpoint, PayloadTooLargeError, chunk_text
from hf_infer_server import LocalServer, default_model_path

LIMIT = 256
SENTENCES = [
    "Stratovolcanoes accumulate alternating layers of pyroclastic deposits and solidified lava flows.",
    "Hydrothermal circulation redistributes dissolved minerals throughout fractured basaltic crust.",
    "Phreatomagmatic eruptions occur when ascending magma encounters groundwater or shallow seawater.",
    "Seismologists characterise harmonic tremor using broadband instrumentation and spectral analysis.",
    "Pyroclastic density currents travel downslope at extraordinary velocities, incinerating vegetation.",
    "Geochemical fingerprinting distinguishes tholeiitic and calc-alkaline differentiation sequences.",
]
FACT = "The launch code for the Zorblax orbital station is PURPLE-ELEPHANT-42."
QUESTION = "What is the launch code for the Zorblax orbital station?"
DISTRACTOR = (
    "The Zorblax orbital station is a research outpost. Its crew of twelve studies comets, "
    "maintains the solar arrays and reports to mission control every morning."
)


def prose(words: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    out: list[str] = []
    while sum(len(s.split()) for s in out) < words:
        out.append(rng.choice(SENTENCES))
    return " ".join(out)


def token_counts(server: LocalServer, texts: list[str]) -> list[int]:
    counts: list[int] = []
    for start in range(0, len(texts), 32):
        answer = httpx.post(
            server.url + "/tokenize",
            json={"inputs": texts[start : start + 32]},
            headers={"Authorization": f"Bearer {server.api_key}"},
            timeout=60,
        )
        answer.raise_for_status()
        counts += [len(tokens) for tokens in answer.json()]
    return counts


def client(server: LocalServer, **options: object) -> EmbeddingClient:
    endpoint = InferenceEndpoint.from_url(server.embed_url, server.api_key, requests_per_minute=10**6)
    return EmbeddingClient(endpoint, **options)  # type: ignore[arg-type]


def test_a_5000_word_document_fits_with_elasticsearch_default_chunking(local_server: LocalServer) -> None:
    document = prose(5_000)
    # Sent as they are without truncation, TEI refuses Elasticsearch's 250-word chunks of this prose
    # (about 330 word pieces): 413 up to TEI 1.8, 422 from 1.9, the same refusal to the client.
    with client(local_server, truncate=False) as plain, pytest.raises(PayloadTooLargeError, match="embed_documents"):
        plain.embed([c.text for c in chunk_text(document, None)])
    # With no limit known and nothing counted, the refusals split the chunks until the server takes them.
    with client(local_server, fit_chunks_to_model=False, discover=False, truncate=False) as splitting:
        halved = splitting.embed_chunks([document])[0]
    assert max(token_counts(local_server, [c.text for c in halved])) <= LIMIT
    assert "".join(c.text for c in halved if c.source == halved[0].source) == document[slice(*halved[0].source)]
    with client(local_server, discover=True) as fitting:
        chunks = fitting.embed_chunks([document])[0]
        pooled = fitting.embed_documents([document])[0]
    counts = token_counts(local_server, [c.text for c in chunks])
    assert max(counts) <= LIMIT
    split = [c for c in chunks if c.source != (c.start, c.end)]
    assert split, "some Elasticsearch chunks had to be split"
    # The pieces of each Elasticsearch chunk tile it exactly, so every word of the document is still
    # in a chunk (Elasticsearch's chunks cover the text).
    by_source: dict[tuple[int, int], list[str]] = {}
    for chunk in chunks:
        by_source.setdefault(chunk.source, []).append(chunk.text)
    for (start, end), texts in by_source.items():
        assert "".join(texts) == document[start:end]
    assert set(re.findall(r"[A-Za-z-]+", " ".join(c.text for c in chunks))) == set(re.findall(r"[A-Za-z-]+", document))
    assert math.isclose(sum(v * v for v in pooled), 1.0, rel_tol=1e-6)


def test_a_fact_at_the_end_of_a_long_chunk_is_found(local_server: LocalServer) -> None:
    # One Elasticsearch chunk (under 250 words) whose prose alone nearly fills the 256 word pieces,
    # so the fact at its end is past the limit: truncation cuts it from the vector.
    filler = [prose(words, seed=7) for words in range(40, 240, 3)]
    sizes = token_counts(local_server, filler)
    base = max((text for text, n in zip(filler, sizes, strict=True) if n <= LIMIT - 40), key=len)
    padded = [base + " The lava cooled." * k for k in range(12)]
    prose_part = next(t for t, n in zip(padded, token_counts(local_server, padded), strict=True) if n >= LIMIT - 6)
    long = prose_part + " " + FACT
    documents = [long, DISTRACTOR, prose(120, seed=3)]
    assert token_counts(local_server, [long])[0] > LIMIT
    assert len(long.split()) < 250

    def top_chunk(**options: object) -> str:
        with client(local_server, **options) as c:
            chunks = [chunk for text_chunks in c.embed_chunks(documents) for chunk in text_chunks]
            question = c.embed_query(QUESTION)
        scores = [sum(q * v for q, v in zip(question, chunk.embedding, strict=True)) for chunk in chunks]
        return chunks[scores.index(max(scores))].text

    # The old behaviour: the server truncates, the fact is cut from the vector, the distractor wins.
    assert "PURPLE-ELEPHANT-42" not in top_chunk(fit_chunks_to_model=False, truncate=True)
    # Fitted: the chunk is split at word boundaries, the piece with the fact answers the question.
    assert "PURPLE-ELEPHANT-42" in top_chunk(discover=True)


def test_a_local_tokenizer_counts_like_the_endpoint(local_server: LocalServer) -> None:
    document = prose(2_000, seed=5)
    tokenizer = os.path.join(default_model_path(), "tokenizer.json")
    limits = {"max_input_tokens": LIMIT}
    remote_endpoint = InferenceEndpoint.from_url(local_server.embed_url, local_server.api_key, **limits)
    with EmbeddingClient(remote_endpoint) as remote, EmbeddingClient(remote_endpoint, tokenizer=tokenizer) as local:
        by_endpoint = [(c.start, c.end) for c in remote.embed_chunks([document])[0]]
        by_tokenizer = [(c.start, c.end) for c in local.embed_chunks([document])[0]]
    assert by_endpoint == by_tokenizer
    assert max(token_counts(local_server, [document[s:e] for s, e in by_tokenizer])) <= LIMIT


def test_splitters_and_adapters_fit_with_a_local_tokenizer(local_server: LocalServer) -> None:
    from llama_index.core.schema import Document as LIDocument

    from langchain_hf_infer import HFInferEmbeddings, HFInferTextSplitter
    from llama_index_hf_infer import HFInferEmbedding, HFInferNodeParser

    document = prose(1_500, seed=9)
    tokenizer = os.path.join(default_model_path(), "tokenizer.json")
    documents = HFInferTextSplitter(None, tokenizer=tokenizer, max_input_tokens=LIMIT).create_documents([document])
    nodes = HFInferNodeParser(None, tokenizer=tokenizer, max_input_tokens=LIMIT).get_nodes_from_documents(
        [LIDocument(text=document)]
    )
    assert [d.metadata["start_index"] for d in documents] == [n.start_char_idx for n in nodes]
    assert max(token_counts(local_server, [d.page_content for d in documents])) <= LIMIT
    assert len(documents) > len(HFInferTextSplitter(None).split_text(document))  # some chunks were split
    for cls in (HFInferEmbeddings, HFInferEmbedding):
        model = cls(
            url=local_server.embed_url, api_key=local_server.api_key, max_input_tokens=LIMIT, tokenizer=tokenizer
        )
        chunks = model.embed_chunks([document])[0]
        assert [c.start for c in chunks] == [d.metadata["start_index"] for d in documents]
    with pytest.raises(ValueError, match="tokenizer"):
        HFInferTextSplitter(None, max_input_tokens=LIMIT)


def test_the_default_adapter_embeds_the_readme_without_a_413(
    local_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #20's first case: ordinary prose with every setting left at its default."""
    from langchain_hf_infer import HFInferEmbeddings

    monkeypatch.setenv("HF_TOKEN", local_server.api_key or "")
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md")) as handle:
        readme = handle.read()
    (vector,) = HFInferEmbeddings(url=local_server.embed_url).embed_documents([readme])
    assert len(vector) == 384
