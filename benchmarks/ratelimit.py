"""Rate-limit accuracy: demand far above requests_per_minute=600 for 30 s, measured at the server.

.venv/bin/python -m benchmarks.ratelimit [--seconds 30] [--rpm 600]
"""

from __future__ import annotations

import argparse

import httpx

from hf_infer_core import EmbeddingClient, InferenceEndpoint, RateLimiter
from tests.fake_endpoint import max_in_window

from .common import fake_endpoint, texts


def run(seconds: float = 30.0, rpm: int = 600) -> dict[str, float]:
    """Send one request per text, 8 at a time, for ``seconds`` at ``rpm``; measure at the server."""
    count = int(seconds * rpm / 60) + 1  # one more than the bucket lets through in `seconds`
    with fake_endpoint(latency=0.025, slots=8) as url:
        endpoint = InferenceEndpoint.from_url(url + "/embed", "bench", requests_per_minute=rpm)
        # A limiter of its own: other benchmarks in this process used the shared one for their URLs.
        with EmbeddingClient(endpoint, batch_size=1, max_concurrency=8, rate_limiter=RateLimiter(rpm)) as client:
            client.embed(texts(count))
        times = sorted(httpx.get(url + "/stats").json()["arrivals"])
    span = times[-1] - times[0]
    achieved = (len(times) - 1) / span * 60
    return {
        "rpm": rpm,
        "requests": len(times),
        "span_s": span,
        "max_10s_scaled": max_in_window(times, 10.0) * 6,
        "max_30s_scaled": max_in_window(times, 30.0) * 2,
        "achieved_rpm": achieved,
        "fraction": achieved / rpm,
    }


def render(r: dict[str, float]) -> str:
    return "\n".join(
        [
            f"requests_per_minute={r['rpm']:.0f}, demand above it (8 requests ready at all times), {r['requests']:.0f} requests over {r['span_s']:.1f} s",
            "",
            "| measure | value |",
            "|---|---:|",
            f"| largest count in any 10 s window, x6 (per minute) | {r['max_10s_scaled']:.0f} |",
            f"| largest count in any 30 s window, x2 (per minute) | {r['max_30s_scaled']:.0f} |",
            f"| achieved rate (per minute) | {r['achieved_rpm']:.1f} |",
            f"| achieved / limit | {r['fraction']:.4f} |",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rpm", type=int, default=600)
    args = parser.parse_args()
    print(render(run(args.seconds, args.rpm)))


if __name__ == "__main__":
    main()
