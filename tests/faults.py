"""A fault-injecting embedding endpoint: a real HTTP server on 127.0.0.1, in a child process.

Every POST is answered by a seeded schedule: either the right vectors or one fault from
``FAULTS``. Vectors are a pure function of the input text (``expected_vector``), so the
fault-free answer is known without a server. The server logs every request (arrival time on the
monotonic clock, the inputs, what it answered) so tests can check retries and the request rate.

Transient faults never hit the same body more than ``max_faults_per_body`` times in a row, so a
client with enough retries always gets through; permanent modes (``permanent=...``) answer every
request the same way.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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


def max_in_window(times: list[float], window: float) -> int:
    """The most requests seen in any window of ``window`` seconds (``times`` sorted)."""
    best = start = 0
    for end, t in enumerate(times):
        while t - times[start] > window:
            start += 1
        best = max(best, end - start + 1)
    return best


def expected_vector(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    return [round(v / 2**32, 6) for v in struct.unpack("8I", digest)]


@dataclass
class Logged:
    at: float
    inputs: list[str]
    answer: str


@dataclass
class FaultServer:
    """Configuration and log of one fault server; ``url`` is set once it listens."""

    seed: int = 0
    fault_rate: float = 0.3
    faults: tuple[str, ...] = TRANSIENT
    permanent: str | None = None
    stall_seconds: float = 1.5
    retry_after: str = "0"
    max_faults_per_body: int = 3
    max_batch: int | None = None  # like a real server: 413 (TEI JSON or plain text) above this size
    url: str = ""
    log: list[Logged] = field(default_factory=list)
    _streak: dict[str, int] = field(default_factory=dict)
    _rng: random.Random = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    @property
    def embed_url(self) -> str:
        return self.url + "/embed"

    def choose(self, body: bytes) -> str:
        with self._lock:
            if self.permanent is not None:
                return self.permanent
            key = hashlib.sha256(body).hexdigest()
            streak = self._streak.get(key, 0)
            if streak < self.max_faults_per_body and self._rng.random() < self.fault_rate:
                self._streak[key] = streak + 1
                return self._rng.choice(self.faults)
            self._streak[key] = 0
            return "ok"

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for entry in self.log:
            out[entry.answer] = out.get(entry.answer, 0) + 1
        return out


def _http(status: str, body: bytes, content_type: str = "application/json", extra: str = "") -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


def _json(status: str, payload: Any, extra: str = "") -> bytes:
    return _http(status, json.dumps(payload).encode(), extra=extra)


class _Connection(asyncio.Protocol):
    def __init__(self, server: FaultServer) -> None:
        self.server = server
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            if head.startswith("GET /log"):
                entries = [{"at": e.at, "inputs": e.inputs, "answer": e.answer} for e in self.server.log]
                self.transport.write(_json("200 OK", entries))
            else:
                self.answer(body)

    def answer(self, body: bytes) -> None:
        inputs: list[str] = json.loads(body)["inputs"]
        if self.server.max_batch is not None and len(inputs) > self.server.max_batch:
            kind = SPLIT[len(self.server.log) % 2]
        else:
            kind = self.server.choose(body)
        self.server.log.append(Logged(time.monotonic(), inputs, kind))
        vectors = [expected_vector(t) for t in inputs]
        write = self.transport.write
        if kind == "ok":
            write(_json("200 OK", vectors))
        elif kind == "429":
            write(
                _json(
                    "429 Too Many Requests",
                    {"error": "Rate limit reached"},
                    f"Retry-After: {self.server.retry_after}\r\n",
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
            write(_json("413 Payload Too Large", {"error": "batch too large", "error_type": "Validation"}))
        elif kind == "plain_413":
            write(
                _http(
                    "413 Payload Too Large", b"Failed to buffer the request body: length limit exceeded", "text/plain"
                )
            )
        elif kind == "reset":
            full = _json("200 OK", vectors)
            write(full[: len(full) // 2])
            self.transport.abort()  # reset mid-response
        elif kind == "stall":
            loop = asyncio.get_running_loop()
            loop.call_later(self.server.stall_seconds, self.transport.close)
        elif kind == "truncated_json":
            text = json.dumps(vectors).encode()
            write(_http("200 OK", text[: len(text) // 2]))
        elif kind == "html_200":
            write(_http("200 OK", b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"))
        elif kind == "wrong_count":
            write(_json("200 OK", vectors[:-1] if len(vectors) > 1 else vectors * 2))
        elif kind == "nan":
            text = json.dumps([[float("nan"), *v[1:]] for v in vectors]).encode()
            write(_http("200 OK", text))
        elif kind == "ragged":
            write(_json("200 OK", [v[: DIMS - (i % 2)] for i, v in enumerate(vectors)]))
        else:  # pragma: no cover - a typo in a test
            raise ValueError(kind)


@contextmanager
def fault_server(**config: Any) -> Iterator[FaultServer]:
    """Run a :class:`FaultServer` on a free 127.0.0.1 port in a child process for the block.

    A process of its own, so its request timestamps are not skewed by the test's threads holding
    the GIL. ``server.log`` is fetched from it (``GET /log``) when read.
    """
    command = [sys.executable, "-m", "tests.faults", json.dumps(config)]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("READY"):
            raise RuntimeError(f"fault server did not start: {line!r}")
        yield RemoteFaultServer(url=f"http://127.0.0.1:{int(line.split()[1])}")
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass
class RemoteFaultServer:
    """The test side of a fault server running in a child process."""

    url: str

    @property
    def embed_url(self) -> str:
        return self.url + "/embed"

    @property
    def log(self) -> list[Logged]:
        import httpx

        return [Logged(**entry) for entry in httpx.get(self.url + "/log", timeout=10).json()]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for entry in self.log:
            out[entry.answer] = out.get(entry.answer, 0) + 1
        return out


async def _serve(config: dict[str, Any]) -> None:
    server = FaultServer(**config)
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(lambda: _Connection(server), "127.0.0.1", 0)
    print(f"READY {srv.sockets[0].getsockname()[1]}", flush=True)
    async with srv:
        await srv.serve_forever()


if __name__ == "__main__":
    asyncio.run(_serve(json.loads(sys.argv[1])))
