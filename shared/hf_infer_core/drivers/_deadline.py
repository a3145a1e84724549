"""One hard deadline per attempt for the blocking client, from connect to the last byte.

httpx's timeouts bound each socket operation, not an attempt: a server that sends its status line
and then one header byte every 0.25 s keeps every read under the read timeout and holds a call for
ever. The async driver cancels the whole attempt with ``asyncio.timeout``; a blocking read cannot
be cancelled, so the sync driver bounds the reads themselves instead. Its own connections use a
network backend whose every connect, write and read waits at most what is left of the current
attempt (:func:`attempt_deadline`, set by the driver around each request, thread by thread), and
fails with httpcore's timeout once nothing is left. A user's own ``http_client`` or ``transport``
keeps its own backend: for those the driver's watchdog still bounds the body once headers arrived.
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import itertools
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx

from ._transports import tls_context

__all__ = ["attempt_deadline", "cut_socket", "deadline_transport", "watch"]

# The monotonic time the attempt running in this thread must end by (None: no attempt).
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("hf_infer_attempt_deadline", default=None)


@contextlib.contextmanager
def attempt_deadline(at: float) -> Iterator[None]:
    """Bound every network operation of this thread's attempt by the monotonic time ``at``."""
    token = _DEADLINE.set(at)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _left(timeout: float | None, error: type[Exception]) -> float | None:
    at = _DEADLINE.get()
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise error("the attempt's deadline passed")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    """A connection whose reads and writes wait no longer than the attempt has left."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, _left(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    """httpcore's network backend with every connection a :class:`_Stream`."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _left(timeout, httpcore.ConnectTimeout)
        return _Stream(self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        timeout = _left(timeout, httpcore.ConnectTimeout)
        return _Stream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def deadline_transport(limits: httpx.Limits, proxy: str | None = None) -> httpx.HTTPTransport:
    """Httpx's own transport (through ``proxy`` if given), its connections bounded by :func:`attempt_deadline`."""
    transport = httpx.HTTPTransport(limits=limits, proxy=proxy, verify=tls_context())
    pool = transport._pool  # httpx exposes no network_backend argument; its pool takes one
    pool._network_backend = _Backend(pool._network_backend)
    return transport


def cut_socket(response: httpx.Response) -> None:
    """Shut the response's socket down, so a read blocked on it returns now (the attempt's deadline).

    For a user's own client or transport (ours bound every read themselves: see ``_deadline``).
    Shutting down, not closing: httpx still owns the descriptor; the connection is discarded.
    """
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class _Watchdog:
    """One thread for the whole process that cuts the sockets of attempts past their deadline.

    Only attempts over a user's own client or transport are watched (ours bound every read).
    A thread per attempt (``threading.Timer``) started 2,000 threads for 2,000 requests.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, httpx.Response]] = []
        self._cancelled: set[int] = set()
        self._count = itertools.count()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def add(self, at: float, response: httpx.Response) -> int:
        with self._cond:
            if self._thread is None or self._pid != os.getpid():  # none yet, or the parent's (forked)
                self._thread = threading.Thread(target=self._run, name="hf-infer-watchdog", daemon=True)
                self._pid = os.getpid()
                self._thread.start()
            ticket = next(self._count)
            heapq.heappush(self._heap, (at, ticket, response))
            self._cond.notify()
            return ticket

    def cancel(self, ticket: int) -> None:
        with self._cond:
            self._cancelled.add(ticket)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][1] in self._cancelled:
                    self._cancelled.discard(heapq.heappop(self._heap)[1])
                if not self._heap:
                    self._cond.wait()
                    continue
                at, _, response = self._heap[0]
                left = at - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                heapq.heappop(self._heap)
            cut_socket(response)


_WATCHDOG = _Watchdog()


@contextlib.contextmanager
def watch(at: float, response: httpx.Response) -> Iterator[None]:
    """Cut ``response``'s socket at the monotonic time ``at`` unless the block has ended by then."""
    ticket = _WATCHDOG.add(at, response)
    try:
        yield
    finally:
        _WATCHDOG.cancel(ticket)
