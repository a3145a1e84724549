"""The one home of the adapters' lazy clients, and of what copies and pickles of them carry.

An :class:`EmbeddingSession` holds an endpoint and its :class:`ClientOptions`, and creates the
:class:`EmbeddingClient` and :class:`AsyncEmbeddingClient` on first use (no network access
before). Clients hold sockets, locks and threads, so copies and pickles of a session carry only
the endpoint (its key sealed) and the options, and make new clients when used: that is what lets
the adapters survive ``copy.deepcopy``, ``pickle`` and multiprocessing. HTTP clients injected by
the user (``http_client``, ``http_async_client``) are shared by copies and left out of pickles.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

import httpx

from ._async import AsyncEmbeddingClient
from ._config import InferenceEndpoint
from ._options import ClientOptions
from ._secret import shown_url
from ._sync import EmbeddingClient

__all__ = ["EmbeddingSession"]

_SESSIONS: weakref.WeakSet[EmbeddingSession] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A lock held by another thread at the fork would stay locked in the child for ever.
    for session in list(_SESSIONS):
        session._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class EmbeddingSession:
    """Lazily created sync and async clients for one endpoint; cheap to copy and to pickle."""

    def __init__(
        self,
        endpoint: InferenceEndpoint,
        options: ClientOptions,
        *,
        http_client: httpx.Client | None = None,
        http_async_client: httpx.AsyncClient | None = None,
        tokenizer: Any = None,
    ) -> None:
        self.endpoint = endpoint
        self.tokenizer = tokenizer
        self.options = options
        self._http_client = http_client
        self._http_async_client = http_async_client
        self._lock = threading.Lock()
        self._sync: EmbeddingClient | None = None
        self._async: AsyncEmbeddingClient | None = None
        # Called with TEI's /info fields when a client has discovered them.
        self.on_info: Any = None
        _SESSIONS.add(self)

    @property
    def client(self) -> EmbeddingClient:
        """The blocking client, created on first use."""
        if self._sync is None:
            with self._lock:
                if self._sync is None:
                    client = EmbeddingClient(
                        self.endpoint, options=self.options, http_client=self._http_client, tokenizer=self.tokenizer
                    )
                    client.on_info = self.on_info
                    self._sync = client
        return self._sync

    @property
    def aclient(self) -> AsyncEmbeddingClient:
        """The asyncio client (usable from any event loop), created on first use."""
        if self._async is None:
            with self._lock:
                if self._async is None:
                    aclient = AsyncEmbeddingClient(
                        self.endpoint,
                        options=self.options,
                        http_client=self._http_async_client,
                        tokenizer=self.tokenizer,
                    )
                    aclient.on_info = self.on_info
                    self._async = aclient
        return self._async

    @property
    def dimensions(self) -> int | None:
        """The vector size: configured, or learnt by either client (discovery or a first call)."""
        for client in (self._sync, self._async):
            if client is not None and client.dimensions is not None:
                return client.dimensions
        return self.endpoint.service_settings.dimensions

    def close(self) -> None:
        """Close the blocking client's connections (the session stays usable)."""
        with self._lock:
            if self._sync is not None:
                self._sync.close()
                self._sync = None

    async def aclose(self) -> None:
        """Close the async client's connections for the running loop."""
        if self._async is not None:
            await self._async.aclose()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.endpoint, self.options, self.tokenizer))

    def __deepcopy__(self, memo: dict[int, Any]) -> EmbeddingSession:
        return EmbeddingSession(
            self.endpoint,
            self.options,
            http_client=self._http_client,
            http_async_client=self._http_async_client,
            tokenizer=self.tokenizer,
        )

    def __repr__(self) -> str:
        return f"<EmbeddingSession {self.endpoint.inference_id!r} url={shown_url(self.endpoint.url)!r}>"


def _rebuild(endpoint: InferenceEndpoint, options: ClientOptions, tokenizer: Any) -> EmbeddingSession:
    return EmbeddingSession(endpoint, options, tokenizer=tokenizer)
