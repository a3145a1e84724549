"""Uvicorn's h11 protocol with the two guards a server facing slow or refused clients needs.

- A deadline on request headers: uvicorn times out idle keep-alive connections, not slow headers;
  a client sending one byte a second holds a connection (and its memory) for ever, and a thousand
  of them exhaust the server. The deadline starts when the connection opens and again after each
  response.
- A lingering close: a request refused before its body is read (401, 413, 415, 408) is answered
  with ``connection: close``. Closing a socket that still has unread bytes makes the kernel send a
  reset, which can reach the client before it has read the answer (it then sees "connection reset"
  instead of the 413 it would split on). So the server shuts down its side after the answer, reads
  and drops what the client still sends, for up to ``LINGER_SECONDS`` and ``LINGER_BYTES``, and
  closes when the client does or either is reached (as nginx's ``lingering_close`` does): a
  client's own body is read to its end, a flood is cut off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

__all__ = ["LINGER_BYTES", "LINGER_SECONDS", "guarded_protocol"]

LINGER_SECONDS = 2.0  # the most a refused client's remaining body is read (and dropped) for
LINGER_BYTES = 8 << 20  # and the most of it read: a body a few times the payload limit


class _LingeringTransport:
    """A transport whose ``close`` lingers while the client is still sending the refused request's body."""

    def __init__(
        self,
        transport: asyncio.Transport,
        still_sending: Callable[[], bool],
        linger: Callable[[asyncio.Transport], None],
    ) -> None:
        self._transport = transport
        self._still_sending = still_sending
        self._linger = linger
        self.lingering = False
        self.dropped = 0  # bytes read and dropped while lingering

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self.lingering or self._transport.is_closing()

    def close(self) -> None:
        transport = self._transport
        if self.lingering or transport.is_closing() or not self._still_sending() or not transport.can_write_eof():
            transport.close()
            return
        self.lingering = True
        transport.write_eof()  # the answer is flushed first, then the client reads its end
        transport.resume_reading()  # flow control may have paused reading under a large body
        self._linger(transport)


def guarded_protocol(header_seconds: float, linger_seconds: float = LINGER_SECONDS) -> type[Any]:
    """Uvicorn's h11 protocol with a deadline on request headers and a lingering close (see the module)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class Guarded(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None
        _lingering_transport: _LingeringTransport | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            wrapped = _LingeringTransport(transport, self._still_sending, self._linger)
            self._lingering_transport = wrapped
            super().connection_made(cast(asyncio.Transport, wrapped))
            self._arm()

        def data_received(self, data: bytes) -> None:
            wrapped = self._lingering_transport
            if wrapped is not None and wrapped.lingering:
                # The rest of a refused body: read so the kernel does not reset, and dropped.
                wrapped.dropped += len(data)
                if wrapped.dropped > LINGER_BYTES:
                    wrapped.close()
                return
            super().data_received(data)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            super().connection_lost(exc)

        def _still_sending(self) -> bool:
            return self.conn.their_state is h11.SEND_BODY

        def _linger(self, transport: asyncio.Transport) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            self.loop.call_later(linger_seconds, transport.close)

        def _arm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            self._header_timer = self.loop.call_later(header_seconds, self._headers_late)

        def _headers_late(self) -> None:
            # Still waiting for a request's headers (h11 is IDLE until they are complete).
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return Guarded
