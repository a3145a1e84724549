r"""The server's access log: one line per request (client, method, path, status, inputs, milliseconds).

Never a header (the key travels in one) and never the query string; the path as the client sent
it (percent-encoding kept) with every control or non-ASCII byte escaped (as ``\x0a``), so no request
writes a line or an escape sequence of its own; the inputs are what the route read (``-`` when it
read none). ``hf-infer serve --log-level info`` (the default) shows them;
``warning`` shows only problems.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from typing import Any

__all__ = ["AccessLog", "configure_logging", "record_inputs"]

logger = logging.getLogger("hf_infer_server.access")

# The request being served: the routes record how many inputs it carried (see record_inputs).
_CURRENT: contextvars.ContextVar[dict[str, int] | None] = contextvars.ContextVar("hf_infer_request", default=None)


def record_inputs(count: int) -> None:
    """Note the inputs of the request being served, for its access line."""
    current = _CURRENT.get()
    if current is not None:
        current["inputs"] = count


def configure_logging(level: str) -> None:
    """Send the server's logs to stderr at ``level`` (``debug``, ``info``, ``warning``, ``error``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("hf_infer_server")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def shown_path(scope: dict[str, Any]) -> str:
    """The request's path as sent (``raw_path``, no query), every byte outside printable ASCII escaped."""
    raw = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "surrogateescape")
    raw = bytes(raw).split(b"?", 1)[0]
    return "".join(chr(b) if 0x20 <= b < 0x7F and b != 0x5C else f"\\x{b:02x}" for b in raw)


class AccessLog:
    """ASGI middleware writing the access line when the response has been sent (or the request failed)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not logger.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state: dict[str, int] = {"status": 500}

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
            await send(message)

        token = _CURRENT.set(state)
        try:
            await self.app(scope, receive, sending)
        finally:
            _CURRENT.reset(token)
            client = scope.get("client") or ("-", 0)
            logger.info(
                '%s "%s %s" %d %s inputs %.1f ms',
                client[0],
                scope["method"],
                shown_path(scope),
                state["status"],
                state.get("inputs", "-"),
                (time.perf_counter() - started) * 1000,
            )
