"""Chunking one large text peaks within a bound, and the server closes connections that drip their headers."""

from __future__ import annotations

import contextlib
import socket
import time

from ..conftest import PEAK_RSS, run_probe

TOKEN = "hf_abcdefghijklmnopqrstuvwxyz0123456789"

# ------------------------------------------------------------------ memory of chunking one large text


def test_chunking_one_20_mb_text_peaks_under_five_times_its_size() -> None:
    measured = run_probe(
        PEAK_RSS
        + """
import json, sys
sys.path.insert(0, ".")
from benchmarks.corpus import prose
text = prose(20.0)
base = reset_peak()
from hf_infer_core import chunk_text
chunks = chunk_text(text, None)
print(json.dumps({"growth": peak() - base, "size": len(text), "chunks": len(chunks)}))
""",
        timeout=300,
    )
    assert measured["growth"] <= 5 * measured["size"], measured  # type: ignore[operator]


def test_connections_dripping_their_headers_are_closed_after_the_header_timeout() -> None:
    from hf_infer_server import run_local_server

    with run_local_server(extra_args=["--header-timeout", "1"]) as server:
        host, port = server.url.removeprefix("http://").split(":")
        sockets = [socket.create_connection((host, int(port)), timeout=5) for _ in range(200)]
        try:
            deadline = time.monotonic() + 2.5
            while time.monotonic() < deadline:
                for sock in sockets:
                    with contextlib.suppress(OSError):
                        sock.send(b"G")  # one byte of a request line at a time
                time.sleep(0.25)
            closed = 0
            for sock in sockets:
                sock.settimeout(2)
                try:
                    closed += sock.recv(1) == b""
                except OSError:
                    closed += 1
        finally:
            for sock in sockets:
                sock.close()
        # A well-behaved request on a fresh connection still gets its answer.
        import httpx

        assert httpx.get(server.url + "/health", timeout=30).status_code == 200
    assert closed == 200
