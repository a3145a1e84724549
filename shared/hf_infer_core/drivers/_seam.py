"""The seam between the drivers and an HTTP library: one attempt, performed by a transport.

A driver takes the rate-limit token and the adaptive slot, then hands a :class:`~..protocol._steps.Send`
to its transport, which makes one attempt bounded by the step's deadline and hands back what it
came to: the answer read whole (:class:`~..protocol._steps.HttpResult`, within the step's body
bound) or the typed error it ended in. The drivers import no HTTP library; httpx lives behind
this seam (``_httpx.py``, with ``_deadline.py`` and ``_transports.py``), and a test double is any
object with these methods.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, Self

from ..base._errors import HFInferError
from ..protocol._steps import HttpResult, Send

__all__ = ["INHERITED", "AsyncTransport", "SyncTransport"]

# Connections, pools and clients inherited from the parent of a fork: a child must neither use
# them (the parent's requests and the child's would interleave on one socket and swap answers)
# nor close them (closing a TLS connection sends close_notify on the parent's socket). Kept
# referenced so GC never closes them.
INHERITED: list[object] = []


class SyncTransport(Protocol):
    """What the threaded driver needs of an HTTP library: one bounded attempt, on any thread."""

    def attempt(self, step: Send, headers: Mapping[str, str]) -> HttpResult | HFInferError:
        """Send ``step`` once; its answer or the typed error it ended in, within ``step.timeout``."""
        ...

    def close(self) -> None:
        """Let the connections go (closed when no client shares them any more)."""
        ...

    def adopt(self, other: Self) -> None:
        """Share ``other``'s connections where they fit (an adapter's setting changed); ``other`` keeps working."""
        ...

    def after_fork(self) -> None:
        """In a forked child: connections of its own, the parent's left untouched."""
        ...


class AsyncTransport(Protocol):
    """What the asyncio driver needs of an HTTP library: one bounded attempt in the running loop."""

    async def ready(self) -> None:
        """Make what the running loop's attempts need, before a rate-limit token is taken."""
        ...

    async def attempt(self, step: Send, headers: Mapping[str, str]) -> HttpResult | HFInferError:
        """Send ``step`` once; its answer or the typed error it ended in, within ``step.timeout``."""
        ...

    async def aclose(self) -> None:
        """Close the running loop's connections."""
        ...

    def adopt(self, other: Self, connections: bool) -> None:
        """Take ``other``'s per-loop connections where they fit, and ``connections`` allows (none in use)."""
        ...

    def after_fork(self) -> None:
        """In a forked child: forget the parent's loops and their connections."""
        ...
