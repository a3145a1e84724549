"""The I/O-free protocol: the steps, each public method's flow, batching plans, wire formats, retries.

Nothing here performs I/O or imports httpx, asyncio, threading, redis or tqdm (an import-linter
contract checks it): the drivers perform the steps.
"""

from __future__ import annotations

from ._retry import RetryDecision, RetryPolicy, decide, is_transient

__all__ = ["RetryDecision", "RetryPolicy", "decide", "is_transient"]
