"""`make bench`: every benchmark in one run, printed and written to benchmarks/RESULTS.md.

1. Throughput against a 25 ms x 8-slot fake endpoint, hf-infer and its peers (+ throughput.png).
2. Rate-limit accuracy at 600 requests/minute under excess demand for 30 s.
3. Client CPU per 1,000 384-dimensional vectors (a column of part 1).
4. Chunking speed against LangChain's and LlamaIndex's splitters; 4b. token fitting (issue #22).
5. The real model end to end: HTTP through hf-infer vs sentence-transformers in process.
6. Streaming about 1 GB of text through embed_iter: MB/s and peak RSS growth.
7. Ray Data: rows/s with 1, 2 and 4 actors; the endpoint's share of a binding budget.
8. Adaptive concurrency: max_concurrency="auto" beside fixed 4, 12 and 32 (issue #23); 8b. every
   fixed setting from 1 to 32 beside "auto" on six endpoint shapes, and two clients (issue #38).
9. Re-ingestion with the chunk-level cache beside the peers' ways (issue #29).
10. Reranking: 1,000 passages against a 25 ms x 8-slot /rerank, batch limit 32 (issue #30).
11. One 5,000-word text through hf-infer and each peer, against the real model (issue #31).
12. hf-infer embed on a 1 GB JSONL beside a 10-row one: peak RSS (issue #35).
13. Sparse embeddings through the local server's /embed_sparse beside an httpx loop (issue #37).
14. Defaults on the local CPU server beside llama-index's TextEmbeddingsInference; client CPU
    where the client is the bound, beside a bare httpx loop (issue #38).
And the README's reliability figures: 2,000 texts per client under 30% injected faults.
"""

from __future__ import annotations

import datetime
import os
import platform
import time

from . import (
    cache,
    chunking,
    concurrency,
    embed_cli,
    fitting,
    local_defaults,
    long_document,
    ratelimit,
    ray_scaling,
    real_model,
    reliability,
    rerank,
    sparse,
    streaming,
    throughput,
)

HERE = os.path.dirname(os.path.abspath(__file__))


def plot(series: dict[str, list[tuple[int, float]]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    capacity = throughput.SLOTS * throughput.BATCH / throughput.LATENCY
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, points in series.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
    ax.axhline(capacity, color="grey", linestyle="--", label=f"server capacity ({capacity:.0f} docs/s)")
    ax.set_xlabel("requests in flight (max_concurrency / threads / num_workers)")
    ax.set_ylabel("docs/s")
    ax.set_title("Throughput vs concurrency: 25 ms x 8-slot endpoint, batch 32, 384-d vectors")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    started = time.monotonic()
    header = (
        f"Run {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPUs "
        f"({platform.machine()}, Python {platform.python_version()})"
    )
    sections: list[str] = [f"# hf-infer benchmark results\n\n{header}\n"]

    def emit(title: str, body: str) -> None:
        text = f"## {title}\n\n{body}\n"
        print(text, flush=True)
        sections.append(text)

    print(header, flush=True)
    rows = throughput.run()
    emit("1. Throughput (and 3. client CPU per 1,000 vectors)", throughput.render(rows))
    emit("Issue #15 figures: wire formats, capacity, adapters", throughput.goals(rows, throughput.parse_cost()))
    series = throughput.sweep()
    plot(series, os.path.join(HERE, "throughput.png"))
    lines = ["| client | " + " | ".join(str(level) for level, _ in next(iter(series.values()))) + " |"]
    lines.append("|---|" + "---:|" * len(next(iter(series.values()))))
    for name, points in series.items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.0f}" for _, v in points) + " |")
    emit("Throughput vs concurrency (docs/s; plot: throughput.png)", "\n".join(lines))
    emit("2. Rate-limit accuracy", ratelimit.render(ratelimit.run()))
    emit(
        "4. Chunking speed (5 MB English prose)",
        chunking.render(chunking.run(5.0)),
    )
    emit(
        "4b. Token fitting: one tokenizer pass, one /tokenize round",
        fitting.render(fitting.local(), fitting.endpoint_runs()),
    )
    emit("5. Real model end to end", real_model.render(real_model.run()))
    emit("6. Streaming ingestion, about 1 GB (embed_iter)", streaming.render(streaming.run()))
    emit("7. Ray Data: rows/s by actors, and a binding budget", ray_scaling.render(ray_scaling.run()))
    emit(
        '8. Adaptive concurrency: max_concurrency="auto" beside fixed settings',
        concurrency.render(concurrency.fixed_runs(), concurrency.scaling_runs())
        + "\n\n"
        + concurrency.render_fast(concurrency.fast_runs()),
    )
    emit(
        "8b. Endpoint shapes: every fixed setting beside auto (issue #38)",
        concurrency.render_shapes(concurrency.shape_runs(), concurrency.shared_runs()),
    )
    emit("9. Re-ingestion with the chunk-level cache (issue #29)", cache.run())
    emit("10. Reranking: 1,000 passages, batch limit 32 (issue #30)", rerank.render(rerank.run()))
    emit("11. A 5,000-word text, hf-infer and the peers (issue #31)", long_document.render(long_document.run()))
    emit("12. hf-infer embed on a 1 GB JSONL: peak RSS (issue #35)", embed_cli.render(embed_cli.run()))
    emit("13. Sparse embeddings: 2,000 paragraphs, the local server (issue #37)", sparse.render(sparse.run()))
    emit(
        "14. Defaults: the local CPU server, and client CPU where the client is the bound (issue #38)",
        local_defaults.render(local_defaults.run()) + "\n\n" + throughput.render_cpu(throughput.client_cpu()),
    )
    emit("Reliability under injected faults (README figures)", reliability.render(reliability.run()))
    elapsed = time.monotonic() - started
    sections.append(f"Total benchmark time: {elapsed:.0f} s\n")
    with open(os.path.join(HERE, "RESULTS.md"), "w") as handle:
        handle.write("\n".join(sections))
    print(f"Total benchmark time: {elapsed:.0f} s; written to benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
