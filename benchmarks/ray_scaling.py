"""Ray Data scaling: rows/s through embed_dataset with 1, 2 and 4 actors, and a binding budget.

A local Ray (``ray.init(num_cpus=2)``: this machine's two cores) and the fake endpoint (25 ms x
8 slots, 384-d vectors, its own process). Each actor holds one client (batch 32, 4 in flight).
The second table runs with ``requests_per_minute`` low enough to bind, split between 2 actors,
and reports the rate the endpoint saw as a fraction of the budget.

    .venv/bin/python -m benchmarks.ray_scaling [--rows 20000]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import httpx

from .common import fake_endpoint


def _dataset(rows: int) -> Any:
    import ray.data

    items = [
        {"id": i, "text": f"Row {i}: a short text about topic {i % 97} for the Ray benchmark."} for i in range(rows)
    ]
    return ray.data.from_items(items, override_num_blocks=32)


def run(rows: int = 20_000, budget_rpm: int = 1_200, budget_seconds: float = 20.0) -> dict[str, Any]:
    import ray

    from hf_infer_core import InferenceEndpoint
    from hf_infer_core.ray import embed_dataset

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    out: dict[str, Any] = {"rows": rows, "scaling": [], "budget_rpm": budget_rpm}
    try:
        with fake_endpoint(latency=0.025, slots=8) as url:
            endpoint = InferenceEndpoint.from_url(url + "/embed", "bench", requests_per_minute=10**9)
            for actors in (1, 2, 4):
                ds = _dataset(rows).materialize()
                started = time.perf_counter()
                count = embed_dataset(ds, endpoint, concurrency=actors, batch_size=32, max_concurrency=4).count()
                elapsed = time.perf_counter() - started
                out["scaling"].append({"actors": actors, "rows": count, "seconds": elapsed, "rows_s": count / elapsed})
            # A budget that binds: enough rows for budget_seconds at budget_rpm requests of 32 rows.
            before = len(httpx.get(url + "/stats", timeout=30).json()["arrivals"])
            limited = InferenceEndpoint.from_url(url + "/embed", "bench", requests_per_minute=budget_rpm)
            budget_rows = int(budget_rpm / 60 * budget_seconds) * 32
            embed_dataset(_dataset(budget_rows), limited, concurrency=2, batch_size=32).count()
            times = sorted(httpx.get(url + "/stats", timeout=30).json()["arrivals"])[before:]
            achieved = (len(times) - 1) / (times[-1] - times[0]) * 60
            out.update(budget_requests=len(times), budget_achieved=achieved)
    finally:
        ray.shutdown()
    return out


def render(r: dict[str, Any]) -> str:
    base = r["scaling"][0]["rows_s"]
    lines = [
        f"{r['rows']:,} rows, local Ray on 2 CPUs, 25 ms x 8-slot endpoint, batch 32, 4 requests in flight per actor.",
        "",
        "| actors | rows/s | vs 1 actor |",
        "|---:|---:|---:|",
    ]
    lines += [f"| {s['actors']} | {s['rows_s']:,.0f} | {s['rows_s'] / base:.2f} |" for s in r["scaling"]]
    lines += [
        "",
        f"Budget {r['budget_rpm']}/min split between 2 actors ({r['budget_rpm'] // 2} each, local backend): "
        f"{r['budget_requests']} requests, {r['budget_achieved']:.1f}/min achieved, "
        f"{r['budget_achieved'] / r['budget_rpm']:.3f} of the budget.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    print(render(run(args.rows)))


if __name__ == "__main__":
    main()
