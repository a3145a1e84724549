"""The drivers' HTTP plumbing: the environment's proxies, TLS, the fast async transport, and closing with a loop.

httpx honours ``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` only for the
transport it builds itself; the clients build their own (deadline-bounded connections, aiohttp),
so :func:`proxy_mounts` reads the same variables, with httpx's rules, and routes each proxied
URL pattern through a transport of the same kind with that proxy (``trust_env=False`` turns
it off, as httpx's own option does). A transport given by the user is used as it is (as
httpx does then).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import ssl
import threading
import urllib.request
import weakref
from collections.abc import AsyncGenerator, Callable
from typing import Any, Protocol, TypeVar

import httpx

from ..base._errors import ConfigError

__all__ = [
    "close_with_loop",
    "environment_proxies",
    "fast_async_transport",
    "proxy_mounts",
    "release_on_close",
    "tls_context",
]

T = TypeVar("T")


def environment_proxies() -> dict[str, str | None]:
    """Httpx's mount patterns for the environment's proxy variables: a proxy URL, or ``None`` (go direct).

    The same reading as httpx's ``trust_env``: ``http``, ``https`` and ``all`` proxies, and each
    ``NO_PROXY`` entry (a host, ``.domain``, an IP address or network, ``localhost``, or ``*``).
    """
    found = urllib.request.getproxies()
    mounts: dict[str, str | None] = {}
    for scheme in ("http", "https", "all"):
        if proxy := found.get(scheme):
            mounts[f"{scheme}://"] = proxy if "://" in proxy else f"http://{proxy}"
    for entry in (host.strip() for host in found.get("no", "").split(",")):
        if entry == "*":
            return {}
        if entry:
            mounts[_direct_pattern(entry)] = None
    return mounts


def _direct_pattern(host: str) -> str:
    if "://" in host:
        return host
    try:
        address = ipaddress.ip_address(host.split("/")[0])
    except ValueError:
        # A domain: itself and its subdomains ("*" matches both in httpx's patterns).
        return f"all://{host}" if host.lower() == "localhost" else f"all://*{host}"
    return f"all://[{host}]" if address.version == 6 else f"all://{host}"


def proxy_mounts(trust_env: bool, make: Callable[[str], T]) -> dict[str, T | None]:
    """Mounts routing proxied URLs through ``make(proxy_url)`` (``{}`` when ``trust_env`` is off).

    Raises:
        ConfigError: a proxy variable names a proxy httpx cannot use (socks without ``socksio``, a bad URL).
    """
    if not trust_env:
        return {}
    mounts: dict[str, T | None] = {}
    for pattern, proxy in environment_proxies().items():
        try:
            mounts[pattern] = make(proxy) if proxy is not None else None
        except (ImportError, ValueError, httpx.InvalidURL) as err:
            raise ConfigError(
                [
                    f"[trust_env] the environment's proxy for {pattern} cannot be used ({type(err).__name__}: {err}); "
                    "fix HTTP_PROXY/HTTPS_PROXY/ALL_PROXY, or pass trust_env=False"
                ]
            ) from None
    return mounts


async def close_with_loop(client: httpx.AsyncClient) -> AsyncGenerator[None, None]:
    """An async generator whose shutdown (asyncio.run's ``shutdown_asyncgens``) closes ``client`` in its loop."""
    try:
        yield
    finally:
        await client.aclose()


# One verified TLS context per CA setting and its files' state, shared by every transport.
_TLS: dict[tuple[object, ...], ssl.SSLContext] = {}


def tls_context() -> ssl.SSLContext:
    """The process's context for verified TLS, as httpx makes it (``SSL_CERT_FILE``/``SSL_CERT_DIR``, else certifi).

    Loading the CA bundle costs 30-50 ms of CPU, and every httpx transport loaded its own: each
    client built paid it, even for an ``http://`` endpoint. A context is safe to share between
    threads and connections. It is kept per setting and per state of the file (or folder) it
    was loaded from: a bundle rewritten in place (new authorities, one removed) is loaded again,
    as each transport did before, never served from the old load.
    """
    cert_file, cert_dir = os.environ.get("SSL_CERT_FILE") or None, os.environ.get("SSL_CERT_DIR") or None
    key = (cert_file, cert_dir, _state(cert_file or (None if cert_dir else _certifi_bundle())), _state(cert_dir))
    context = _TLS.get(key)
    if context is None:
        # No lock (one in a forked child could be held for ever): two threads racing here both
        # load a bundle, and the first stored is kept.
        context = _TLS.setdefault(key, httpx.create_ssl_context())
    return context


def _certifi_bundle() -> str:
    import certifi

    return certifi.where()


def _state(path: str | None) -> tuple[int, int, int] | None:
    """What tells one version of a file (or folder) from the next: inode, size, modification time."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None  # httpx's own load reports a missing file
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def fast_async_transport(limits: httpx.Limits, proxy: str | None = None) -> httpx.AsyncBaseTransport:
    """Httpx over aiohttp when the optional ``httpx-aiohttp`` is installed (extra ``fast``), else httpx's own.

    httpcore's pure-Python HTTP/1.1 stack costs ~2 ms of CPU per 150 kB response; aiohttp's
    C parser a third of that, which is what lets one process keep a fast endpoint busy. The
    client is still an ``httpx.AsyncClient``: requests, errors and timeouts are httpx's. Through
    ``proxy``, httpx's own. Must run in a loop.
    """
    if proxy is None:
        try:
            from httpx_aiohttp import AiohttpTransport
        except ImportError:
            pass
        else:
            transport = AiohttpTransport(limits=limits, verify=tls_context())
            # Build the aiohttp session now, inside the running loop, rather than on the first
            # request, whose rate-limit slot would otherwise pass during the set-up. Given as the
            # transport's client, it is also what the transport closes.
            transport.client = transport.get_client()
            return transport
    return httpx.AsyncHTTPTransport(limits=limits, proxy=proxy, verify=tls_context())


class LoopOwner(Protocol):
    """A client with one httpx client (and its closer) per event loop."""

    _by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[httpx.AsyncClient, AsyncGenerator[None, None]]]


# Per event loop, the clients holding an httpx client in it: the loop's close() is wrapped once,
# however many clients come and go (a wrapper per client nested until the interpreter's stack ran out).
_LOOP_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, weakref.WeakSet[Any]] = weakref.WeakKeyDictionary()
_LOOP_LOCK = threading.Lock()


def release_on_close(loop: asyncio.AbstractEventLoop, owner: LoopOwner) -> None:
    """Close ``owner``'s httpx client of ``loop`` inside the loop, just before ``loop.close()`` closes the loop.

    A loop made with ``new_event_loop()`` and closed by hand runs no asyncgen shutdown, and the
    table's weak key cannot die while its client (aiohttp's cookie jar) holds the loop: without
    this, every such loop would leave its sockets open and its entry in the table.
    """
    with _LOOP_LOCK:
        owners = _LOOP_CLIENTS.get(loop)
        if owners is not None:
            owners.add(owner)
            return
        _LOOP_CLIENTS[loop] = weakref.WeakSet([owner])
    original = loop.close

    def close() -> None:
        with _LOOP_LOCK:
            closing = list(_LOOP_CLIENTS.pop(loop, ()))
        for client in closing:
            entry = client._by_loop.pop(loop, None)
            if entry is not None and not loop.is_closed() and not loop.is_running():
                with contextlib.suppress(Exception):  # closing must never stop the loop closing
                    loop.run_until_complete(entry[1].aclose())
        original()

    with contextlib.suppress(AttributeError):  # a loop type whose attributes are fixed (uvloop)
        loop.close = close  # type: ignore[method-assign]
