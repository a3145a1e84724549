"""The drivers' transports over httpx: one bounded attempt, its answer read whole, its failure typed.

:class:`HttpxTransport` (the threaded driver's: one ``httpx.Client`` shared by the worker
threads) and :class:`AsyncHttpxTransport` (the asyncio driver's: one ``httpx.AsyncClient`` per
event loop) implement the seam of ``_seam.py``. Everything the drivers need of httpx is here: the
key added at send time (:class:`_BearerAuth`), the connection limits, and what an attempt came to
(:func:`attempt_outcome`), decided once for both. A user's own ``httpx.Client``,
``httpx.AsyncClient`` or transport is used as given.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import logging
import socket
import ssl
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Generator, Mapping
from typing import Any, Self, TypeVar

import httpx
from pydantic import SecretStr

from ..base import _errors
from ..base._errors import ClientClosedError, HFInferError, TransportError, cause_of, caused_by
from ..config._options import RequestOptions
from ..protocol._body import BoundedBody
from ..protocol._steps import HttpResult, Send
from ._deadline import attempt_deadline, deadline_transport, watch
from ._seam import INHERITED
from ._transports import close_with_loop, fast_async_transport, proxy_mounts, release_on_close

__all__ = [
    "ATTEMPT_ERRORS",
    "AsyncHttpClient",
    "AsyncHttpxTransport",
    "HttpClient",
    "HttpxTransport",
    "attempt_outcome",
    "shown",
]

logger = logging.getLogger("hf_infer_core")

# The types of the clients and transports a user may hand the clients and adapters.
HttpClient = httpx.Client
AsyncHttpClient = httpx.AsyncClient
HttpTransport = httpx.BaseTransport
AsyncHttpTransport = httpx.AsyncBaseTransport

_CONNECT_TIMEOUT = 5.0


class _BearerAuth(httpx.Auth):
    """The one holder of the api key: adds ``Authorization: Bearer`` to each request as it is sent."""

    def __init__(self, key: SecretStr) -> None:
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._key.get_secret_value()}"
        yield request

    def __repr__(self) -> str:
        return "<BearerAuth [REDACTED]>"


def _transport_error(err: BaseException, url: httpx.URL, *, expired: bool = False) -> HFInferError:
    where = shown(url)
    error: HFInferError
    if expired:
        error = _errors.TimeoutError(f"no complete answer from {where} within the attempt's timeout")
    elif caused_by(err, socket.gaierror):
        error = TransportError(f"the host name of {where} does not resolve: is the URL right?")
        error.refused = error.unresolved = True
    elif caused_by(err, ConnectionRefusedError):
        error = TransportError(f"connection refused by {where}: is the endpoint running at that address?")
        error.refused = True
    elif (untrusted := cause_of(err, ssl.SSLCertVerificationError)) is not None:
        reason = getattr(untrusted, "verify_message", None) or untrusted
        error = TransportError(
            f"the TLS certificate of {where} was not accepted ({reason}): if your own authority signed it, "
            "set SSL_CERT_FILE (or SSL_CERT_DIR) to that authority's certificate"
        )
        error.untrusted = True
    elif isinstance(err, httpx.LocalProtocolError):
        # Its message holds the offending header whole (the Authorization one: the key).
        error = TransportError(
            f"the request to {where} could not be sent: a header or the URL is not valid HTTP ({type(err).__name__})"
        )
        error.local = True
    elif (failed := _not_slow(err)) is not None:
        # httpx-aiohttp reports every aiohttp connection error as ConnectTimeout (a plain-HTTP
        # server behind an https:// URL, a server that hung up): say what failed, not "slow".
        error = TransportError(f"the connection to {where} failed: {failed}")
    elif isinstance(err, httpx.TimeoutException):
        error = _errors.TimeoutError(f"no answer from {where} in time ({type(err).__name__})")
    else:
        error = TransportError(f"request to {where} failed: {type(err).__name__}: {err}")
    # A local protocol error's own message holds the refused header: it is not chained.
    error.__cause__ = None if isinstance(error, TransportError) and error.local else err
    return error


def _not_slow(err: BaseException) -> BaseException | None:
    """The aiohttp error behind httpx-aiohttp's ConnectTimeout, when it was not a timeout."""
    cause = err.__cause__
    if (
        isinstance(err, httpx.ConnectTimeout)
        and cause is not None
        and type(cause).__module__.startswith("aiohttp")
        and not caused_by(cause, builtins.TimeoutError)
    ):
        return cause
    return None


# What an attempt may end in, besides an answer: what both transports catch and hand to attempt_outcome.
ATTEMPT_ERRORS = (HFInferError, httpx.HTTPError, builtins.TimeoutError, RuntimeError)


def attempt_outcome(
    ended: HttpResult | BaseException, url: httpx.URL, deadline: float, closed: bool
) -> HttpResult | HFInferError:
    """What one attempt came to, decided once for both transports.

    ``ended``: the answer read whole, or what the attempt raised. An answer completed after the
    attempt's deadline is the deadline's (a server that drips stays within no timeout of
    httpx's); a transport error after it too. Our own errors (a body too large, bad gzip) stand.
    httpx's "client has been closed" (``closed``) is :class:`ClientClosedError`, raised.
    Anything else is not an attempt's outcome, and is raised as it is.
    """
    now = time.monotonic()
    if isinstance(ended, HttpResult):
        return _transport_error(builtins.TimeoutError(), url, expired=True) if now > deadline else ended
    if isinstance(ended, HFInferError):
        return ended
    if isinstance(ended, httpx.HTTPError):
        return _transport_error(ended, url, expired=now >= deadline)
    if isinstance(ended, builtins.TimeoutError):  # asyncio.timeout's, at the deadline
        return _transport_error(ended, url, expired=True)
    if isinstance(ended, RuntimeError) and closed:
        raise ClientClosedError("the client was closed while this call was using it") from ended
    raise ended


def shown(url: httpx.URL) -> str:
    """``scheme://host[:port]/path``: no credentials, no query string, no colon without a port."""
    host = f"[{url.host}]" if ":" in url.host else url.host
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme}://{host}{port}{url.path}"


def _reader(response: httpx.Response, step: Send) -> BoundedBody:
    if response.is_stream_consumed:
        # An in-memory response (httpx.MockTransport) that httpx has already read and decoded.
        body = BoundedBody(step.max_bytes)
        body.feed(response.content)
        return body
    headers = response.headers
    return BoundedBody(step.max_bytes, headers.get("content-encoding"), headers.get("content-length"))


@functools.lru_cache(maxsize=64)
def _url(text: str) -> httpx.URL:
    """A request URL, parsed once: httpx's parse was 5% of the client's CPU on a fast endpoint (URLs are immutable)."""
    return httpx.URL(text)


class _Cookies(httpx.Cookies):
    """A cookie jar that reads an answer's cookies only when it sets one.

    httpx hands every answer to ``http.cookiejar`` (wrapping it in urllib's request and response
    types first): a tenth of the client's CPU on a fast endpoint, for answers that set no cookie.
    """

    def extract_cookies(self, response: httpx.Response) -> None:
        if "set-cookie" in response.headers:
            super().extract_cookies(response)


ClientT = TypeVar("ClientT", httpx.Client, httpx.AsyncClient)


def _lean_cookies(client: ClientT) -> ClientT:
    """Our own client, with the jar above (a user's client is left as it is)."""
    # httpx wraps whatever ``cookies=`` it is given in a plain Cookies: set its jar in place.
    if type(getattr(client, "_cookies", None)) is httpx.Cookies:
        client._cookies = _Cookies(client._cookies.jar)
    return client


def _result(response: httpx.Response, body: bytes) -> HttpResult:
    return HttpResult(status_code=response.status_code, body=body, retry_after=response.headers.get("retry-after"))


def _log(step: Send, url: httpx.URL, outcome: HttpResult | HFInferError, started: float) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        status = outcome.status_code if isinstance(outcome, HttpResult) else type(outcome).__name__
        logger.debug(
            "POST %s -> %s attempt %d in %.1f ms (%d inputs)",
            url.path,
            status,
            step.attempt,
            (time.perf_counter() - started) * 1000,
            len(step.indices),
        )


class _Settings:
    """What both transports build their clients with: the key's auth, the timeouts, the connection limits."""

    def __init__(self, options: RequestOptions, api_key: SecretStr | None) -> None:
        self.trust_env = options.trust_env
        # A keyless endpoint (a local TEI server) sends no Authorization header at all.
        self.auth: httpx.Auth | None = _BearerAuth(api_key) if api_key is not None else None
        self.timeout = httpx.Timeout(options.timeout, connect=min(_CONNECT_TIMEOUT, options.timeout))
        # As many kept alive as may be open: threads sharing the client each keep their connection
        # (a smaller pool closed one and opened another for most calls of 8 threads).
        connections = max(options.window, 10)
        self.limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)

    def request(self, step: Send, headers: Mapping[str, str]) -> dict[str, Any]:
        """The httpx request arguments of a step: body, headers, auth, its attempt's timeouts."""
        return {
            "content": step.body,
            "headers": headers,
            "auth": self.auth,
            "timeout": httpx.Timeout(step.timeout, connect=min(_CONNECT_TIMEOUT, step.timeout)),
        }


class HttpxTransport:
    """The threaded driver's transport: one ``httpx.Client`` the worker threads share.

    Our own client's connections bound every read by what is left of the attempt (``_deadline``);
    a user's client or transport is watched by the process's watchdog, which cuts its socket at
    the deadline.
    """

    def __init__(
        self,
        options: RequestOptions,
        api_key: SecretStr | None,
        http_client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = _Settings(options, api_key)
        self._owns_http = http_client is None
        self._transport = transport
        self._bounded = http_client is None and transport is None
        self.http = http_client or self._new_http()
        # Our own connections, shared with a client that adopts them (see adopt).
        self._shared = _Shared(self.http) if self._owns_http else None

    def _new_http(self) -> httpx.Client:
        limits = self.settings.limits
        transport = self._transport or deadline_transport(limits)
        # The environment's proxies, through connections as bounded as the direct ones.
        mounts = (
            {}
            if self._transport is not None
            else proxy_mounts(self.settings.trust_env, lambda proxy: deadline_transport(limits, proxy))
        )
        return _lean_cookies(
            httpx.Client(
                timeout=self.settings.timeout, limits=limits, transport=transport, mounts=mounts, follow_redirects=False
            )
        )

    def attempt(self, step: Send, headers: Mapping[str, str]) -> HttpResult | HFInferError:
        """One attempt, bounded from connect to its last byte by ``step.timeout``."""
        started = time.perf_counter()
        url = _url(step.url)
        deadline = time.monotonic() + step.timeout
        ended: HttpResult | BaseException
        try:
            with (
                attempt_deadline(deadline),
                self.http.stream(step.method, url, **self.settings.request(step, headers)) as response,
                contextlib.nullcontext() if self._bounded else watch(deadline, response),
            ):
                # Raw bytes, inflated and counted by BoundedBody: never more than max_bytes.
                body = _reader(response, step)
                for chunk in () if response.is_stream_consumed else response.iter_raw():
                    body.feed(chunk)
                ended = _result(response, body.finish())
        except ATTEMPT_ERRORS as err:
            ended = err
        outcome = attempt_outcome(ended, url, deadline, self.http.is_closed)
        _log(step, url, outcome, started)
        return outcome

    def close(self) -> None:
        """Let our connections go: closed when every client sharing them has let them go."""
        shared, self._shared = self._shared, None
        if shared is not None:
            shared.leave()

    def adopt(self, other: Self) -> None:
        """Share ``other``'s connections when both are our own with the same limits."""
        fits = self._bounded and other._bounded and self.settings.limits == other.settings.limits
        if fits and self._shared is not None and other._shared is not None and other._shared.join():
            # Shared, not handed over: ``other``'s calls in flight still read from them, so they
            # are closed when both clients have let them go, whichever closes last.
            self._shared.leave()
            self.http, self._shared = other.http, other._shared

    def after_fork(self) -> None:
        """A forked child's own client; the parent's is kept, unused and unclosed."""
        if self._owns_http:
            INHERITED.append(self.http)
            self.http = self._new_http()
            self._shared = _Shared(self.http)


class _Shared:
    """An ``httpx.Client`` and how many clients use it; closed when the last one leaves."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self._users = 1
        self._lock = threading.Lock()

    def join(self) -> bool:
        """One more client uses the connections; False when they are closed already."""
        with self._lock:
            if self._users == 0 or self.http.is_closed:
                return False
            self._users += 1
            return True

    def leave(self) -> None:
        """A client lets them go; the last one closes them."""
        with self._lock:
            self._users -= 1
            last = self._users == 0
        if last:
            self.http.close()


class AsyncHttpxTransport:
    """The asyncio driver's transport: one ``httpx.AsyncClient`` per event loop (or the user's)."""

    def __init__(
        self,
        options: RequestOptions,
        api_key: SecretStr | None,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = _Settings(options, api_key)
        self._injected = http_client
        self._transport = transport
        self._by_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[httpx.AsyncClient, AsyncGenerator[None, None]]
        ] = weakref.WeakKeyDictionary()

    def _proxies(self) -> dict[str, httpx.AsyncBaseTransport | None]:
        if self._transport is not None:
            return {}  # the user's transport is used as it is (so does httpx)
        limits = self.settings.limits
        return proxy_mounts(self.settings.trust_env, lambda proxy: fast_async_transport(limits, proxy))

    async def ready(self) -> None:
        """The running loop's client, made now (before a rate-limit token, whose slot set-up would delay)."""
        await self.http()

    async def http(self) -> httpx.AsyncClient:
        """The running loop's client: the user's, else our own, made on first use."""
        if self._injected is not None:
            return self._injected
        loop = asyncio.get_running_loop()
        entry = self._by_loop.get(loop)
        if entry is None:
            limits = self.settings.limits
            client = _lean_cookies(
                httpx.AsyncClient(
                    timeout=self.settings.timeout,
                    limits=limits,
                    transport=self._transport or fast_async_transport(limits),
                    mounts=self._proxies(),
                    follow_redirects=False,
                )
            )
            # Loops end without telling anyone, but asyncio.run (and most runners) first close
            # the loop's live async generators: this one closes the client then, so connections
            # are released inside their own loop instead of leaking past it.
            closer = close_with_loop(client)
            await closer.asend(None)

            entry = self._by_loop[loop] = (client, closer)
            release_on_close(loop, self)
        return entry[0]

    async def attempt(self, step: Send, headers: Mapping[str, str]) -> HttpResult | HFInferError:
        """One attempt; ``asyncio.timeout`` cancels it whole at its deadline, however the server drips."""
        http = await self.http()
        started = time.perf_counter()
        url = _url(step.url)
        deadline = time.monotonic() + step.timeout
        ended: HttpResult | BaseException
        try:
            async with (
                asyncio.timeout(step.timeout),
                http.stream(step.method, url, **self.settings.request(step, headers)) as response,
            ):
                body = _reader(response, step)
                if not response.is_stream_consumed:
                    async for chunk in response.aiter_raw():
                        body.feed(chunk)
                ended = _result(response, body.finish())
        except ATTEMPT_ERRORS as err:
            ended = err
        outcome = attempt_outcome(ended, url, deadline, http.is_closed)
        _log(step, url, outcome, started)
        return outcome

    async def aclose(self) -> None:
        """Close the client this transport made for the running event loop."""
        entry = self._by_loop.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[1].aclose()  # runs the closer's finally: the client is closed once

    def adopt(self, other: Self, connections: bool) -> None:
        """Take ``other``'s per-loop clients (moved, not shared: ``connections`` only when none is in use)."""
        own = connections and self._injected is None and self._transport is None
        if (
            own
            and other._injected is None
            and other._transport is None
            and self.settings.limits == other.settings.limits
        ):
            for loop, entry in list(other._by_loop.items()):
                if loop not in self._by_loop:
                    self._by_loop[loop] = entry
                    del other._by_loop[loop]
                    release_on_close(loop, self)

    def after_fork(self) -> None:
        """The parent's loops do not run in the child; their clients hold the parent's sockets."""
        INHERITED.append(dict(self._by_loop))
        self._by_loop = weakref.WeakKeyDictionary()
