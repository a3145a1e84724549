"""The one home of the adapters' lazy clients, and of what copies and pickles of them carry.

A :class:`Session` holds an endpoint and its task's options, and creates a task's
blocking and asyncio clients on first use (no network access before); an
:class:`EmbeddingSession` makes the :class:`EmbeddingClient` and :class:`AsyncEmbeddingClient`. Clients hold sockets, locks and threads, so copies and pickles of a session carry only
the endpoint (its key sealed) and the options, and make new clients when used: that is what lets
the adapters survive ``copy.deepcopy``, ``pickle`` and multiprocessing. HTTP clients injected by
the user (``http_client``, ``http_async_client``) are shared by copies and left out of pickles.

Settings are values. A call takes its client with :meth:`Session.using` (or a stream
with :meth:`Session.iterate`) and keeps it to its end; closing the session, or
replacing it after an adapter's setting changed, only detaches the clients, and each is closed
when the last call using it ends. A session that follows another of the same endpoint
(:meth:`Session.follow`) takes over what the older one's clients learnt (``/info``, the
vector size), their connections and the process's rate-limit bucket, so a changed batch size
costs no new connection, no second discovery and no fresh burst.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Self, TypeVar

from ..base._secret import shown_url
from ..cache._cache import CacheStats
from ..config import InferenceEndpoint
from ..config._options import RequestOptions, RerankOptions
from ..config._tasks import TASKS
from ..drivers._async import AsyncDriver
from ..drivers._sync import SyncDriver
from ..embeddings._async import AsyncEmbeddingClient
from ..embeddings._options import EmbeddingOptions
from ..embeddings._sync import EmbeddingClient
from ..rerank._async import AsyncRerankClient
from ..rerank._sync import RerankClient
from ..sparse._async import AsyncSparseEmbeddingClient
from ..sparse._options import SparseEmbeddingOptions
from ..sparse._sync import SparseEmbeddingClient

if TYPE_CHECKING:
    from ..drivers._httpx import AsyncHttpClient, HttpClient

__all__ = ["EmbeddingSession", "RerankSession", "Session", "SparseEmbeddingSession"]

_SESSIONS: weakref.WeakSet[Session[Any, Any]] = weakref.WeakSet()

C = TypeVar("C", bound="SyncDriver[Any] | AsyncDriver[Any]")
S = TypeVar("S", bound="SyncDriver[Any]")
A = TypeVar("A", bound="AsyncDriver[Any]")
T = TypeVar("T")


def _after_fork_in_child() -> None:
    # A lock held by another thread at the fork would stay locked in the child for ever.
    for session in list(_SESSIONS):
        session._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# Guards every call count below: a held client can pass from a session to its successor.
_CALLS_LOCK = threading.Lock()


class _Held(Generic[C]):
    """A client and the calls using it; a detached one is closed when its last call ends."""

    __slots__ = ("calls", "client", "detached")
    client: C
    calls: int
    detached: bool

    def __init__(self, client: C) -> None:
        self.client = client
        self.calls = 0
        self.detached = False

    def take(self) -> C:
        with _CALLS_LOCK:
            self.calls += 1
        return self.client

    def give_back(self) -> bool:
        """End one call; True when the client is to be closed now (detached, and this was its last call)."""
        with _CALLS_LOCK:
            self.calls -= 1
            return self.detached and self.calls == 0

    def idle(self) -> bool:
        """True when no call uses the client (one detached from its session gets no new call)."""
        with _CALLS_LOCK:
            return self.calls == 0

    def detach(self) -> bool:
        """No new call will take this client; True when none is using it (close it now)."""
        with _CALLS_LOCK:
            self.detached = True
            return self.calls == 0


class Session(Generic[S, A]):
    """Lazily created sync and async clients of one task for one endpoint; cheap to copy and to pickle.

    A task's session names its task type, whose row of the task table names the clients it makes;
    the holding, handing on and closing are the same for every task.
    """

    def __init__(
        self,
        endpoint: InferenceEndpoint,
        options: RequestOptions,
        *,
        http_client: HttpClient | None = None,
        http_async_client: AsyncHttpClient | None = None,
        client_args: Mapping[str, object] | None = None,
    ) -> None:
        self.endpoint = endpoint
        # A task's own constructor arguments of its clients (the embeddings' tokenizer).
        self.client_args: Mapping[str, object] = dict(client_args or {})
        self.options = options
        self._http_client = http_client
        self._http_async_client = http_async_client
        self._lock = threading.Lock()
        self._sync: _Held[S] | None = None
        self._async: _Held[A] | None = None
        # Called with TEI's /info fields when a client has discovered them.
        self.on_info: Callable[[dict[str, Any]], None] | None = None
        _SESSIONS.add(self)

    def same_as(
        self,
        endpoint: InferenceEndpoint,
        options: RequestOptions,
        http_client: HttpClient | None,
        http_async_client: AsyncHttpClient | None,
    ) -> bool:
        """True when a session built from these would send exactly what this one sends."""
        return (
            self.endpoint == endpoint
            and self.options == options
            and self._http_client is http_client
            and self._http_async_client is http_async_client
        )

    # The task type: its row of the task table (config/_tasks.py) names the two clients.
    task_type: ClassVar[str]

    def _new_sync(self) -> S:
        """A new blocking client of the task: the first of the table's clients."""
        task = TASKS[self.task_type]
        client: S = task.load(task.clients[0])(
            self.endpoint, options=self.options, http_client=self._http_client, **self.client_args
        )
        return client

    def _new_async(self) -> A:
        """A new asyncio client of the task: the second of the table's clients."""
        task = TASKS[self.task_type]
        client: A = task.load(task.clients[1])(
            self.endpoint, options=self.options, http_client=self._http_async_client, **self.client_args
        )
        return client

    def follow(self, predecessor: Self) -> None:
        """Replace ``predecessor``: its clients are detached, and closed when their last call ends.

        When both serve one endpoint, this session's clients are made now and take over what the
        predecessor's learnt (``/info``, the vector size), their connections and the rate-limit
        bucket, so a changed batch size costs no second discovery, connection or burst.
        """
        sync, aclient = predecessor._detach()
        if predecessor.endpoint == self.endpoint and same_args(predecessor.client_args, self.client_args):
            if sync is not None:
                self._held_sync().client.adopt(sync.client)
            if aclient is not None:
                # An asyncio client's per-loop connections move, not shared: only an idle one's.
                self._held_async().client.adopt(aclient.client, connections=aclient.idle())
        _close_unused(sync)
        if aclient is not None:
            aclient.detach()  # closed by its last call, or with its loops (those handed over are not its own)

    def _detach(self) -> tuple[_Held[S] | None, _Held[A] | None]:
        with self._lock:
            sync, aclient = self._sync, self._async
            self._sync = self._async = None
        return sync, aclient

    # ------------------------------------------------------------------ clients, held by calls

    def _held_sync(self, take: bool = False) -> _Held[S]:
        """The blocking client's holder, made on first use; ``take``: counted as in use before the lock is let go.

        Counted under the session's lock, so a ``close()`` (or a rebuild) that detaches it either
        comes first (this call gets a new client) or sees the call and leaves the closing to it.
        """
        with self._lock:
            if self._sync is None:
                client = self._new_sync()
                client.on_info = self.on_info
                self._sync = _Held(client)
            if take:
                self._sync.take()
            return self._sync

    def _held_async(self, take: bool = False) -> _Held[A]:
        """The asyncio client's holder (see :meth:`_held_sync`)."""
        with self._lock:
            if self._async is None:
                aclient = self._new_async()
                aclient.on_info = self.on_info
                self._async = _Held(aclient)
            if take:
                self._async.take()
            return self._async

    @contextlib.contextmanager
    def using(self) -> Iterator[S]:
        """The blocking client for one call: not closed before the call ends, whatever happens to the session."""
        held = self._held_sync(take=True)
        client = held.client
        try:
            yield client
        finally:
            if held.give_back():
                client.close()

    @contextlib.asynccontextmanager
    async def ausing(self) -> AsyncIterator[A]:
        """The asyncio client for one call (see :meth:`using`)."""
        held = self._held_async(take=True)
        client = held.client
        try:
            yield client
        finally:
            if held.give_back():
                await client.aclose()

    def call(self, run: Callable[[S], T]) -> T:
        """``run(client)`` with the blocking client held for the call (see :meth:`using`)."""
        with self.using() as client:
            return run(client)

    async def acall(self, run: Callable[[A], Awaitable[T]]) -> T:
        """``await run(client)`` with the asyncio client held for the call."""
        async with self.ausing() as client:
            return await run(client)

    def iterate(self, start: Callable[[S], Iterator[T]]) -> Iterator[T]:
        """A stream started now (bad arguments fail at the call), its client held until it ends."""
        held = self._held_sync(take=True)
        client = held.client
        try:
            stream = start(client)
        except BaseException:
            if held.give_back():
                client.close()
            raise
        return _held_stream(held, stream)

    def aiterate(self, start: Callable[[A], AsyncIterator[T]]) -> AsyncIterator[T]:
        """An async stream started now, its client held until it ends (see :meth:`iterate`)."""
        held = self._held_async(take=True)
        client = held.client
        try:
            stream = start(client)
        except BaseException:
            held.give_back()  # an async client is closed by its calls or its loop, not here
            raise
        return _held_astream(held, stream)

    @property
    def client(self) -> S:
        """The blocking client (created on first use); a call should hold it with :meth:`using`."""
        return self._held_sync().client

    @property
    def aclient(self) -> A:
        """The asyncio client (created on first use); a call should hold it with :meth:`ausing`."""
        return self._held_async().client

    def _clients(self) -> list[S | A]:
        """The clients made so far (none are made here)."""
        return [held.client for held in (self._sync, self._async) if held is not None]

    @property
    def cache_stats(self) -> CacheStats:
        """The cache's hits, misses and failures of this session's current clients, together."""
        return sum((client.cache_stats for client in self._clients()), CacheStats())

    @property
    def server_info(self) -> dict[str, object] | None:
        """TEI's ``/info`` fields as either client discovered them (``None`` before a first call)."""
        return next((c.server_info for c in self._clients() if c.server_info is not None), None)

    def close(self) -> None:
        """Detach the clients (the session stays usable): each is closed now, or when its last call ends.

        The async client's connections are closed by the last call that used them, or with
        their event loop (:meth:`aclose` closes those of the running loop now).
        """
        sync, aclient = self._detach()
        _close_unused(sync)
        if aclient is not None:
            aclient.detach()

    async def aclose(self) -> None:
        """Close the async client's connections for the running loop (the session stays usable)."""
        held = self._async
        if held is not None and held.calls == 0:
            await held.client.aclose()

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.endpoint, self.options, self.client_args))

    def __deepcopy__(self, memo: dict[int, object]) -> Self:
        return self.copy()

    def copy(self) -> Self:
        """A session of the same settings with clients of its own (the injected HTTP clients shared)."""
        return type(self)(
            self.endpoint,
            self.options,
            http_client=self._http_client,
            http_async_client=self._http_async_client,
            client_args=self.client_args,
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.endpoint.inference_id!r} url={shown_url(self.endpoint.url)!r}>"


def _close_unused(held: _Held[Any] | None) -> None:
    """Detach ``held``; close a blocking client now if no call uses it (else its last call will)."""
    if held is not None and held.detach() and isinstance(held.client, SyncDriver):
        held.client.close()


def _held_stream(held: _Held[S], stream: Iterator[T]) -> Iterator[T]:
    try:
        yield from stream
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
        if held.give_back():
            held.client.close()


async def _held_astream(held: _Held[A], stream: AsyncIterator[T]) -> AsyncIterator[T]:
    try:
        async for item in stream:
            yield item
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
        if held.give_back():
            await held.client.aclose()


def same_args(old: Mapping[str, object], new: Mapping[str, object]) -> bool:
    """True when two sessions' client arguments are the same objects (a tokenizer opened once is not reopened)."""
    return old.keys() == new.keys() and all(old[name] is new[name] for name in old)


def _rebuild(
    kind: type[Session[Any, Any]],
    endpoint: InferenceEndpoint,
    options: RequestOptions,
    client_args: Mapping[str, object],
) -> Session[Any, Any]:
    return kind(endpoint, options, client_args=client_args)


class EmbeddingSession(Session[EmbeddingClient, AsyncEmbeddingClient]):
    """The embedding task's session: an :class:`EmbeddingClient` and an :class:`AsyncEmbeddingClient`."""

    task_type: ClassVar[str] = "text_embedding"
    options: EmbeddingOptions

    @property
    def tokenizer(self) -> object:
        """The opened local tokenizer the clients fit chunks with, or ``None``."""
        return self.client_args.get("tokenizer")

    @property
    def dimensions(self) -> int | None:
        """The vector size: configured, or learnt by either client (discovery or a first call)."""
        learnt = (client.dimensions for client in self._clients() if client.dimensions is not None)
        return next(learnt, self.endpoint.service_settings.dimensions)


class RerankSession(Session[RerankClient, AsyncRerankClient]):
    """The rerank task's session: a :class:`RerankClient` and an :class:`AsyncRerankClient`."""

    task_type: ClassVar[str] = "rerank"
    options: RerankOptions


class SparseEmbeddingSession(Session[SparseEmbeddingClient, AsyncSparseEmbeddingClient]):
    """The sparse task's session: a :class:`SparseEmbeddingClient` and an :class:`AsyncSparseEmbeddingClient`."""

    task_type: ClassVar[str] = "sparse_embedding"
    options: SparseEmbeddingOptions
