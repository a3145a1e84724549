"""Chunking speed: hf-infer's ES-compatible chunkers vs LangChain's and LlamaIndex's splitters.

All run in this process on the same English-prose corpus. Peers are configured for chunks of a
comparable size (~250 words, about 1,500 characters / 330 tokens). Prints MB/s and ratios.

    .venv/bin/python -m benchmarks.chunking [--mb 5]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

from hf_infer_core import chunk_text

from .corpus import prose


def best_of(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    best = float("inf")
    result: object = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def run(megabytes: float = 5.0, repeat: int = 3) -> list[dict[str, object]]:
    """Measure every splitter on one corpus; return rows of name, MB/s and chunk count."""
    text = prose(megabytes)
    size_mb = len(text.encode("utf-8")) / 1e6
    rows: list[dict[str, object]] = []

    def add(name: str, fn: Callable[[], object], repeat: int = repeat) -> None:
        seconds, result = best_of(fn, repeat)
        rows.append({"name": name, "mb_s": size_mb / seconds, "chunks": len(result)})  # type: ignore[arg-type]

    add(
        "hf-infer word (250, overlap 100)",
        lambda: chunk_text(text, {"strategy": "word", "max_chunk_size": 250, "overlap": 100}),
    )
    add(
        "hf-infer word (250, overlap 0)",
        lambda: chunk_text(text, {"strategy": "word", "max_chunk_size": 250, "overlap": 0}),
    )
    add(
        "hf-infer sentence (250, overlap 1)",
        lambda: chunk_text(text, {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1}),
    )
    add(
        "hf-infer sentence (250, overlap 0)",
        lambda: chunk_text(text, {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 0}),
    )
    add(
        "hf-infer recursive (250, plaintext)",
        lambda: chunk_text(text, {"strategy": "recursive", "max_chunk_size": 250}),
    )

    # Fitting to all-MiniLM-L6-v2's 256 word pieces with its own tokenizer (tokenizers, local):
    # what it costs on top of the default chunking, and how many chunks it splits.
    import os as _os

    from hf_infer_core.text._fit import token_fitter
    from hf_infer_server import default_model_path

    fit = token_fitter(None, _os.path.join(default_model_path(), "tokenizer.json"), 256)
    default = {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1}
    add("hf-infer sentence (250, overlap 1), fitted to 256 tokens", lambda: fit(text, chunk_text(text, default)))
    fitted = fit(text, chunk_text(text, default))
    rows[-1]["split"] = sum(1 for c in fitted if c.source is not None)
    rows[-1]["sources"] = len({c.source for c in fitted if c.source is not None})

    from langchain_text_splitters import RecursiveCharacterTextSplitter

    lc = RecursiveCharacterTextSplitter(chunk_size=1500, chunk_overlap=100)
    add("LangChain RecursiveCharacterTextSplitter (1500 chars)", lambda: lc.split_text(text))

    from llama_index.core.node_parser import SentenceSplitter

    li = SentenceSplitter(chunk_size=330, chunk_overlap=20)
    add("LlamaIndex SentenceSplitter (330 tokens)", lambda: li.split_text(text), repeat=1)
    return rows


def render(rows: list[dict[str, object]]) -> str:
    """Format rows as a Markdown table with ratios to both peers."""
    by_name = {str(r["name"]): float(r["mb_s"]) for r in rows}  # type: ignore[arg-type]
    lc = next(v for k, v in by_name.items() if k.startswith("LangChain"))
    li = next(v for k, v in by_name.items() if k.startswith("LlamaIndex"))
    lines = [
        "| splitter | MB/s | chunks | x LangChain RCTS | x LlamaIndex SentenceSplitter |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        speed = float(row["mb_s"])  # type: ignore[arg-type]
        lines.append(f"| {row['name']} | {speed:.2f} | {row['chunks']} | {speed / lc:.2f} | {speed / li:.2f} |")
    plain = by_name.get("hf-infer sentence (250, overlap 1)")
    fitted = next((r for r in rows if "fitted" in str(r["name"])), None)
    if plain and fitted:
        per_mb = 1 / float(fitted["mb_s"]) - 1 / plain  # type: ignore[arg-type]
        lines.append("")
        lines.append(
            f"Fitting to 256 tokens (local tokenizer): {fitted['sources']} of the Elasticsearch chunks were over "
            f"the limit and became {fitted['split']} pieces; counting costs {per_mb:.2f} s per MB on top of chunking."
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=float, default=5.0, help="corpus size in MB")
    args = parser.parse_args()
    print(f"Chunking speed, {args.mb:g} MB English prose, {os.cpu_count()} CPUs, best of 3 (LlamaIndex: 1 run)")
    print(render(run(args.mb)))


if __name__ == "__main__":
    main()
