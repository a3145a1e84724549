"""The one hand-written embedding endpoint of the tests and benchmarks: real HTTP on 127.0.0.1.

A bare asyncio ``Protocol`` HTTP/1.1 server with keep-alive, run in a child process of its own
(:func:`fake_endpoint`) so its timestamps are not skewed by the caller's threads holding the GIL,
and so that its CPU cost is not the caller's. It serves two purposes with one parser:

- Faults, for the reliability tests: every POST is answered by a seeded schedule, either the
  right vectors or one fault from ``TRANSIENT``/``SPLIT``/``BROKEN``/``HOSTILE``; ``permanent``
  answers every request the same way. Transient faults never hit the same body more than
  ``max_faults_per_body`` times in a row, so a client with enough retries always gets through.
- Speed, for the benchmarks: with ``latency`` and ``slots`` every request holds one of ``slots``
  slots for ``latency`` seconds (later ones queue), like a model server, and with
  ``vectors="fixed"`` answers come from pre-serialised bytes so the server is never the
  bottleneck.
- Scaling, for adaptive concurrency: ``schedule`` changes the slots over time (``[[0, 2], [10,
  8], [20, 4]]``: seconds after the first embedding request, slots from then on), ``queue_limit``
  bounds the requests waiting beyond the slots and answers TEI's 429 "Model is overloaded" to the
  next, ``cold_start`` answers 503 (loading) for that many seconds after the first request, as a
  replica scaled from zero does, and ``latency_per_word`` makes a batch's time grow with its words.

Vectors are ``expected_vector(text)`` (``vectors="identify"``: a pure function of the input, so a
vector delivered for the wrong text shows) or one fixed ``dims``-sized vector (``"fixed"``).
``GET /log`` returns every request (arrival on the monotonic clock, inputs when ``log_inputs``,
the answer chosen, the Authorization header it carried or null), ``GET /stats`` the arrival times
and the server's CPU seconds, ``GET /info`` a TEI-like answer.

    python -m tests.fake_endpoint '{"latency": 0.025, "slots": 8, "vectors": "fixed"}'

prints ``READY <port>`` once it listens.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import gzip
import hashlib
import json
import os
import random
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

DIMS = 8

TRANSIENT = (
    "429",
    "503_loading",
    "500",
    "502",
    "504",
    "424",
    "reset",
    "stall",
    "truncated_json",
    "html_200",
)
SPLIT = ("tei_413", "plain_413")  # the client halves the batch; a single input would fail for good
BROKEN = ("wrong_count", "nan", "ragged")  # well-formed but wrong: a server bug, not retried
# What a hostile or broken server does to a client's time, memory and secrets.
HOSTILE = ("drip", "header_drip", "gzip_bomb", "huge", "huge_chunked", "echo_auth")


def max_in_window(times: list[float], window: float) -> int:
    """The most requests seen in any window of ``window`` seconds (``times`` sorted)."""
    best = start = 0
    for end, t in enumerate(times):
        while t - times[start] > window:
            start += 1
        best = max(best, end - start + 1)
    return best


def expected_vector(text: str) -> list[float]:
    """The vector the endpoint gives ``text`` (``vectors="identify"``): it identifies its input."""
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    return [round(v / 2**32, 6) for v in struct.unpack("8I", digest)]


def rerank_score(query: str, text: str) -> float:
    """The fake ``/rerank``'s score of a pair: fixed per pair, in [0, 1)."""
    return (zlib.crc32(f"{query}\x00{text}".encode()) % 100_000) / 100_000


@dataclass
class Logged:
    """One request as the endpoint saw it."""

    at: float
    inputs: list[str]
    answer: str
    authorization: str | None = None
    depth: int = 0  # requests at the server (served or queued) when it arrived, itself included
    slots: int = 0  # the slots it had then


@dataclass
class Config:
    """What the endpoint does; passed to the child process as JSON."""

    seed: int = 0
    fault_rate: float = 0.0
    faults: tuple[str, ...] = TRANSIENT
    permanent: str | None = None
    stall_seconds: float = 1.5
    drip_seconds: float = 1.0  # "drip": one byte of the body every drip_seconds
    drip_bytes: int | None = None  # "drip": body length announced (None: endless)
    bomb_bytes: int = 1 << 30  # "gzip_bomb": what the gzip body inflates to
    huge_bytes: int = 400_000_000  # "huge": a plain body this large
    retry_after: str = "0"
    max_faults_per_body: int = 3
    max_batch: int | None = None  # like a real server: 413 (TEI JSON or plain text) above this size
    latency: float = 0.0
    slots: int = 0  # 0: no slot limit
    vectors: str = "identify"  # or "fixed"
    dims: int = DIMS  # for "fixed"
    log_inputs: bool = True
    by_text: dict[str, str] | None = None  # the answer for a request whose first input is this text
    schedule: list[list[float]] | None = None  # [[seconds after the first request, slots], ...]
    queue_limit: int | None = None  # requests waiting beyond the slots; the next gets a 429
    cold_start: float = 0.0  # seconds of 503 (loading) after the first request
    latency_per_word: float = 0.0
    info: str = "ok"  # GET /info: "ok", an HTTP status to answer ("500", "403", ...), or "hang" (never answers)
    info_batch: int = 1024  # GET /info's max_client_batch_size
    info_concurrency: int | None = None  # GET /info's max_concurrent_requests (TEI's 429 beyond it); None: left out
    tei_version: str = "1.8"  # "1.9": TEI 1.9's 422 (not 413) for a batch or an input over the limits
    max_words: int | None = None  # an input above this many words is refused as TEI refuses one over its tokens


def _http(status: str, body: bytes, content_type: str = "application/json", extra: str = "") -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


def _json(status: str, payload: Any, extra: str = "") -> bytes:
    return _http(status, json.dumps(payload).encode(), extra=extra)


class _Server:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.log: list[Logged] = []
        self._streak: dict[str, int] = {}
        self._rng = random.Random(config.seed)
        self._busy = 0
        self._t0: float | None = None  # the first embedding request's arrival
        self._queue: collections.deque[tuple[asyncio.Transport, bytes, float, float]] = collections.deque()
        rng = random.Random(0)
        self._fixed = json.dumps([round(rng.uniform(-0.1, 0.1), 8) for _ in range(config.dims)]).encode()
        self._fixed_bodies: dict[int, bytes] = {}
        self._openai_bodies: dict[tuple[int, str | None], bytes] = {}
        self.loop = asyncio.get_running_loop()
        self.gets: collections.Counter[str] = collections.Counter()
        self.connections = 0

    def size_refusal(self, inputs: list[str]) -> tuple[str, bytes] | None:
        """TEI 1.9's 422 for a batch over ``max_batch`` or an input over ``max_words`` (TEI 1.8: the input's 413)."""
        config = self.config
        message = None
        if config.tei_version != "1.8" and config.max_batch is not None and len(inputs) > config.max_batch:
            message = f"batch size {len(inputs)} > maximum allowed batch size {config.max_batch}"
        elif config.max_words is not None:
            longest = max((len(text.split()) for text in inputs), default=0)
            if longest > config.max_words:
                message = (
                    f"Input validation error: `inputs` must have less than {config.max_words} tokens. Given: {longest}"
                )
        if message is None:
            return None
        status = "413 Payload Too Large" if config.tei_version == "1.8" else "422 Unprocessable Entity"
        return f"size_{status[:3]}", _json(status, {"error": message, "error_type": "validation"})

    def choose(self, body: bytes, count: int, first: str | None = None) -> str:
        config = self.config
        if config.max_batch is not None and count > config.max_batch:
            return SPLIT[len(self.log) % 2]
        if config.permanent is not None:
            return config.permanent
        if config.by_text and first in config.by_text:
            return config.by_text[first]
        if not config.fault_rate:
            return "ok"
        key = hashlib.sha256(body).hexdigest()
        streak = self._streak.get(key, 0)
        if streak < config.max_faults_per_body and self._rng.random() < config.fault_rate:
            self._streak[key] = streak + 1
            return self._rng.choice(config.faults)
        self._streak[key] = 0
        return "ok"

    def vectors_body(self, inputs: list[str]) -> bytes:
        if self.config.vectors == "fixed":
            cached = self._fixed_bodies.get(len(inputs))
            if cached is None:
                cached = self._fixed_bodies[len(inputs)] = b"[" + b",".join([self._fixed] * len(inputs)) + b"]"
            return cached
        return json.dumps([expected_vector(t) for t in inputs]).encode()

    def openai_body(self, inputs: list[str], encoding: str | None) -> bytes:
        """TEI's ``/v1/embeddings`` answer; with fixed vectors, pre-serialised per batch size and format."""
        key = (len(inputs), encoding)
        cached = self._openai_bodies.get(key) if self.config.vectors == "fixed" else None
        if cached is not None:
            return cached
        if self.config.vectors == "fixed":
            vectors = [json.loads(self._fixed)] * len(inputs)
        else:
            vectors = [expected_vector(t) for t in inputs]
        data = [
            {
                "object": "embedding",
                "embedding": base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() if encoding == "base64" else v,
                "index": i,
            }
            for i, v in enumerate(vectors)
        ]
        usage = {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}
        body = json.dumps({"object": "list", "data": data, "model": "fake/model", "usage": usage}).encode()
        if self.config.vectors == "fixed":
            self._openai_bodies[key] = body
        return body

    def slots_now(self) -> int:
        """The slots at this moment (``schedule``, else ``slots``; 0: no limit)."""
        slots = self.config.slots
        if self.config.schedule and self._t0 is not None:
            elapsed = self.loop.time() - self._t0
            for start, count in self.config.schedule:
                if elapsed >= start:
                    slots = int(count)
        return slots

    def first_request(self) -> None:
        if self._t0 is None:
            self._t0 = self.loop.time()
            for start, _ in self.config.schedule or []:
                self.loop.call_at(self._t0 + start, self._start)  # new slots take queued requests at once

    def depth(self) -> int:
        return self._busy + len(self._queue) + 1

    def starting(self) -> bool:
        return self._t0 is not None and self.loop.time() - self._t0 < self.config.cold_start

    def overloaded(self) -> bool:
        """A new request would find the slots busy and the queue full."""
        limit = self.config.queue_limit
        return limit is not None and self._busy >= self.slots_now() and len(self._queue) >= limit

    def respond(self, transport: asyncio.Transport, payload: bytes, words: int = 0) -> None:
        """Answer after ``latency`` in one of ``slots`` slots (at once when neither is set)."""
        config = self.config
        if not config.latency and not config.slots and not config.schedule:
            transport.write(payload)
            return
        self._queue.append((transport, payload, self.loop.time(), config.latency + config.latency_per_word * words))
        self._start()

    def _start(self, freed_at: float | None = None) -> None:
        # A queued request takes the slot when its previous occupant was due to finish, not when
        # the timer fired: epoll wakes up to a millisecond late, and that lateness, compounded slot
        # after slot, made this "25 ms" server a 26 ms one, so clients were measured against a
        # capacity it did not have.
        slots = self.slots_now()
        while self._queue and (self._busy < slots or not slots):
            self._busy += 1
            transport, payload, arrived, latency = self._queue.popleft()
            start = max(arrived, freed_at) if freed_at is not None else self.loop.time()
            freed_at = None
            end = start + latency
            self.loop.call_at(end, self._finish, transport, payload, end)

    def _finish(self, transport: asyncio.Transport, payload: bytes, end: float) -> None:
        self._busy -= 1
        self._start(freed_at=end)
        if not transport.is_closing():
            transport.write(payload)


class _Connection(asyncio.Protocol):
    def __init__(self, server: _Server) -> None:
        self.server = server
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.server.connections += 1
        self.writable = asyncio.Event()
        self.writable.set()

    # asyncio's flow control: the "huge" answer writes only while the client keeps reading.
    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = self.buffer[:end].decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            method, path = lines[0].split(" ")[:2]
            if path.startswith("http://"):  # a proxy's absolute form: the endpoint answers it itself
                path = "/" + path.split("/", 3)[-1]
            if method == "GET":
                self.get(path)
            else:
                if path.endswith("/rerank"):
                    self.rerank(body, headers.get("authorization"))
                else:
                    self.answer(body, headers.get("authorization"), openai=path.endswith("/embeddings"))

    def get(self, path: str) -> None:
        server = self.server
        if path.startswith("/log"):
            entries = [vars(e) for e in server.log]
            self.transport.write(_json("200 OK", entries))
        elif path.startswith("/stats"):
            stats = {
                "arrivals": [e.at for e in server.log],
                "cpu": time.process_time(),
                "gets": dict(server.gets),
                "connections": server.connections,
            }
            self.transport.write(_json("200 OK", stats))
        elif path.startswith("/info"):
            server.gets["/info"] += 1
            if server.config.info == "hang":
                return  # never answers: the client's own deadline must end the wait
            if server.config.info != "ok":
                status = f"{server.config.info} Error"
                self.transport.write(_json(status, {"error": "no info here", "error_type": "backend"}))
                return
            info: dict[str, object] = {"model_id": "fake/model", "max_client_batch_size": server.config.info_batch}
            if server.config.info_concurrency is not None:
                info["max_concurrent_requests"] = server.config.info_concurrency
            self.transport.write(_json("200 OK", info))
        else:
            self.transport.write(_json("404 Not Found", {"error": "not found"}))

    def rerank(self, body: bytes, authorization: str | None) -> None:
        """TEI's ``/rerank``: ``[{index, score}]`` sorted by score (a score fixed per text), after the latency and slots.

        Above ``max_batch`` texts, TEI's 413 stating the limit.
        """
        server = self.server
        request = json.loads(body)
        texts = request["texts"]
        limit = server.config.max_batch
        if limit is not None and len(texts) > limit:
            message = f"batch size {len(texts)} > maximum allowed batch size {limit}"
            server.log.append(Logged(time.monotonic(), [], "tei_413", authorization))
            self.transport.write(_json("413 Payload Too Large", {"error": message, "error_type": "validation"}))
            return
        server.log.append(Logged(time.monotonic(), texts if server.config.log_inputs else [], "ok", authorization))
        ranks = [{"index": i, "score": rerank_score(request["query"], t)} for i, t in enumerate(texts)]
        ranks.sort(key=lambda r: -r["score"])
        server.respond(self.transport, _http("200 OK", json.dumps(ranks).encode()))

    def answer(self, body: bytes, authorization: str | None, openai: bool = False) -> None:
        server = self.server
        request = json.loads(body)
        inputs = request["input" if openai else "inputs"]
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if openai:  # TEI's OpenAI route, float or base64 (always answered "ok")
            server.log.append(Logged(time.monotonic(), inputs if server.config.log_inputs else [], "ok", authorization))
            server.respond(self.transport, _http("200 OK", server.openai_body(inputs, request.get("encoding_format"))))
            return
        server.first_request()
        refused = server.size_refusal(inputs)
        if refused is not None:
            server.log.append(Logged(time.monotonic(), [], refused[0], authorization))
            self.transport.write(refused[1])
            return
        kind = server.choose(body, len(inputs), inputs[0] if inputs else None)
        if kind == "ok" and server.starting():
            kind = "503_starting"
        elif kind == "ok" and server.overloaded():
            kind = "429_overloaded"
        logged = inputs if server.config.log_inputs else []
        server.log.append(
            Logged(time.monotonic(), logged, kind, authorization, depth=server.depth(), slots=server.slots_now())
        )
        write = self.transport.write
        if kind == "ok":
            words = sum(len(text.split()) for text in inputs) if server.config.latency_per_word else 0
            server.respond(self.transport, _http("200 OK", server.vectors_body(inputs)), words)
        elif kind == "429_overloaded":  # TEI's answer once its max_concurrent_requests are taken
            write(_json("429 Too Many Requests", {"error": "Model is overloaded", "error_type": "overloaded"}))
        elif kind == "503_starting":
            write(
                _json(
                    "503 Service Unavailable",
                    {"error": "Model fake/model is currently loading", "estimated_time": 0.2},
                )
            )
        elif kind == "429":
            write(
                _json(
                    "429 Too Many Requests",
                    {"error": "Rate limit reached"},
                    f"Retry-After: {server.config.retry_after}\r\n",
                )
            )
        elif kind == "503_loading":
            write(
                _json(
                    "503 Service Unavailable",
                    {"error": "Model fake/minilm is currently loading", "estimated_time": 0.01},
                )
            )
        elif kind in ("500", "502", "504"):
            write(_json(f"{kind} Server Error", {"error": "upstream failure"}))
        elif kind == "424":
            write(_json("424 Failed Dependency", {"error": "backend failed", "error_type": "Backend"}))
        elif kind == "401":
            write(_json("401 Unauthorized", {"error": "Authorization header is correct, but the token seems invalid"}))
        elif kind == "422":
            write(_json("422 Unprocessable Entity", {"error": "Input validation error", "error_type": "Validation"}))
        elif kind == "tei_413":
            limit = server.config.max_batch
            message = (  # TEI 1.8 states the limit, as 1.9's 422 does
                f"batch size {len(inputs)} > maximum allowed batch size {limit}"
                if limit is not None and len(inputs) > limit
                else "batch too large"
            )
            write(_json("413 Payload Too Large", {"error": message, "error_type": "Validation"}))
        elif kind == "plain_413":
            write(
                _http(
                    "413 Payload Too Large", b"Failed to buffer the request body: length limit exceeded", "text/plain"
                )
            )
        elif kind == "reset":
            full = _http("200 OK", server.vectors_body(inputs))
            write(full[: len(full) // 2])
            self.transport.abort()  # reset mid-response
        elif kind == "stall":
            server.loop.call_later(server.config.stall_seconds, self.transport.close)
        elif kind == "truncated_json":
            text = server.vectors_body(inputs)
            write(_http("200 OK", text[: len(text) // 2]))
        elif kind == "html_200":
            write(_http("200 OK", b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"))
        elif kind == "wrong_count":
            vectors = [expected_vector(t) for t in inputs]
            write(_json("200 OK", vectors[:-1] if len(vectors) > 1 else vectors * 2))
        elif kind == "nan":
            text = json.dumps([[float("nan"), *expected_vector(t)[1:]] for t in inputs]).encode()
            write(_http("200 OK", text))
        elif kind == "ragged":
            write(_json("200 OK", [expected_vector(t)[: DIMS - (i % 2)] for i, t in enumerate(inputs)]))
        elif kind == "drip":
            self.drip()
        elif kind == "header_drip":
            self.drip(headers=True)
        elif kind == "gzip_bomb":
            write(_http("200 OK", _gzip_bomb(server.config.bomb_bytes), extra="Content-Encoding: gzip\r\n"))
        elif kind in ("huge", "huge_chunked"):
            self.huge(chunked=kind == "huge_chunked")
        elif kind == "echo_auth":
            write(_json("400 Bad Request", {"error": f"bad request with header Authorization: {authorization}"}))
        else:  # pragma: no cover - a typo in a test
            raise ValueError(kind)

    def drip(self, headers: bool = False) -> None:
        """Send a status line and headers, then one body byte every ``drip_seconds``.

        ``headers``: send the status line, then one byte of an endless header every ``drip_seconds``.
        """
        config = self.server.config
        if headers:
            head, chunk = b"HTTP/1.1 200 OK\r\nX-Drip: ", b"a"
        elif config.drip_bytes is None:
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            chunk = b"1\r\n \r\n"
        else:
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {config.drip_bytes}\r\n\r\n"
            head, chunk = head.encode(), b" "
        self.transport.write(head)
        sent = 0

        def tick() -> None:
            nonlocal sent
            if self.transport.is_closing() or (
                not headers and config.drip_bytes is not None and sent >= config.drip_bytes
            ):
                return
            self.transport.write(chunk)
            sent += 1
            self.server.loop.call_later(config.drip_seconds, tick)

        self.server.loop.call_later(config.drip_seconds, tick)

    def huge(self, chunked: bool) -> None:
        """A ``huge_bytes`` JSON body, written as the socket drains so the server stays small.

        ``chunked``: no Content-Length to refuse it by, so only counting the bytes can stop it.
        """
        size = self.server.config.huge_bytes
        framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
        self.transport.write(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{framing}\r\n\r\n".encode())
        piece = b" " * (1 << 20)
        remaining = size

        async def pump() -> None:
            nonlocal remaining
            while remaining > 0 and not self.transport.is_closing():
                data = piece[: min(remaining, len(piece))]
                remaining -= len(data)
                self.transport.write(f"{len(data):x}\r\n".encode() + data + b"\r\n" if chunked else data)
                await self.writable.wait()
            if chunked and not self.transport.is_closing():
                self.transport.write(b"0\r\n\r\n")

        self.server.loop.create_task(pump())


def _gzip_bomb(size: int) -> bytes:
    """A gzip body of about ``size / 1000`` bytes that inflates to ``size`` spaces."""
    compressor = gzip.compress(b" " * min(size, 1 << 24), compresslevel=9)
    if size <= 1 << 24:
        return compressor
    # gzip members concatenate: repeat one 16 MiB member until the inflated size is reached.
    return compressor * (size // (1 << 24))


@contextmanager
def fake_endpoint(**config: Any) -> Iterator[RemoteEndpoint]:
    """Run the endpoint with ``config`` (see :class:`Config`) in a child process for the block."""
    command = [sys.executable, "-m", "tests.fake_endpoint", json.dumps(config)]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("READY"):
            raise RuntimeError(f"fake endpoint did not start: {line!r}")
        yield RemoteEndpoint(url=f"http://127.0.0.1:{int(line.split()[1])}")
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass
class RemoteEndpoint:
    """The caller's side of an endpoint running in a child process."""

    url: str

    @property
    def embed_url(self) -> str:
        """The embedding route."""
        return self.url + "/embed"

    @property
    def log(self) -> list[Logged]:
        """Every request so far, fetched from the child."""
        import httpx

        return [Logged(**entry) for entry in httpx.get(self.url + "/log", timeout=30).json()]

    def stats(self) -> dict[str, Any]:
        """Arrival times (monotonic) and the server's CPU seconds so far."""
        import httpx

        stats: dict[str, Any] = httpx.get(self.url + "/stats", timeout=30).json()
        return stats

    def counts(self) -> dict[str, int]:
        """How many requests got each answer."""
        out: dict[str, int] = {}
        for entry in self.log:
            out[entry.answer] = out.get(entry.answer, 0) + 1
        return out


async def _serve(config: Config) -> None:
    server = _Server(config)
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(lambda: _Connection(server), "127.0.0.1", 0, backlog=1024)
    print(f"READY {srv.sockets[0].getsockname()[1]}", flush=True)
    async with srv:
        await srv.serve_forever()


if __name__ == "__main__":
    raw = json.loads(sys.argv[1])
    if "faults" in raw:
        raw["faults"] = tuple(raw["faults"])
    asyncio.run(_serve(Config(**raw)))
