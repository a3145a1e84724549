"""A fixed-latency, fixed-capacity fake embedding endpoint for benchmarks (127.0.0.1 only).

A bare asyncio ``Protocol`` HTTP/1.1 server with keep-alive, so the server side costs next to
nothing and the numbers measure the client: every POST occupies one of ``--slots`` slots for
``--latency`` seconds (later requests queue for a slot) and is answered with one
``--dims``-dimensional vector per input (``{"inputs": str | [str, ...]}``) from pre-serialised
bytes. ``GET /stats`` returns the request log (arrival times, seconds since the epoch).

    python benchmarks/fake_endpoint.py --port 0 --latency 0.025 --slots 8 --dims 384
prints ``READY <port>`` once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import time


class Server:
    def __init__(self, latency: float, slots: int, dims: int) -> None:
        self.latency = latency
        self.free = slots
        self.queue: collections.deque[tuple[asyncio.Transport, bytes]] = collections.deque()
        rng = random.Random(0)
        self.vector = json.dumps([round(rng.uniform(-0.1, 0.1), 8) for _ in range(dims)]).encode()
        self.cache: dict[int, bytes] = {}
        self.arrivals: list[float] = []
        self.loop = asyncio.get_running_loop()

    def response(self, count: int) -> bytes:
        cached = self.cache.get(count)
        if cached is None:
            body = b"[" + b",".join([self.vector] * count) + b"]"
            cached = self.cache[count] = _http(body)
        return cached

    def submit(self, transport: asyncio.Transport, payload: bytes) -> None:
        self.queue.append((transport, payload))
        self._start()

    def _start(self) -> None:
        while self.free and self.queue:
            self.free -= 1
            transport, payload = self.queue.popleft()
            self.loop.call_later(self.latency, self._finish, transport, payload)

    def _finish(self, transport: asyncio.Transport, payload: bytes) -> None:
        self.free += 1
        self._start()
        if not transport.is_closing():
            transport.write(payload)


def _http(body: bytes, status: bytes = b"200 OK") -> bytes:
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


class Connection(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
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
                if line[:15].lower() == "content-length:":
                    length = int(line[15:])
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            self.handle(head.split(" ", 2), body)

    def handle(self, request_line: list[str], body: bytes) -> None:
        method, path = request_line[0], request_line[1]
        if method == "GET":
            if path.startswith("/stats"):
                payload = json.dumps({"arrivals": self.server.arrivals, "cpu": time.process_time()}).encode()
            elif path.startswith("/info"):
                payload = json.dumps({"model_id": "fake", "max_client_batch_size": 1024}).encode()
            else:
                payload = b"{}"
            self.transport.write(_http(payload))
            return
        self.server.arrivals.append(time.time())
        inputs = json.loads(body).get("inputs")
        count = 1 if isinstance(inputs, str) else len(inputs)
        self.server.submit(self.transport, self.server.response(count))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.025)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--dims", type=int, default=384)
    args = parser.parse_args()
    server_state = Server(args.latency, args.slots, args.dims)
    server = await asyncio.get_running_loop().create_server(
        lambda: Connection(server_state), "127.0.0.1", args.port, backlog=1024
    )
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
