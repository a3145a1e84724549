"""The I/O-free protocol: the steps, the one retry loop, discovery, batching plans, the shared wire.

Nothing here performs I/O or imports httpx, asyncio, threading, redis or tqdm (an import-linter
contract checks it): the drivers perform the steps.
"""

from __future__ import annotations

from ._retry import is_transient

__all__ = ["is_transient"]
