"""Start the project's real model server (``hf-infer serve``) on 127.0.0.1 for tests and the demo."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

STARTUP_TIMEOUT = 240.0


@dataclass(frozen=True)
class LocalServer:
    url: str  # base URL, e.g. http://127.0.0.1:54321
    api_key: str

    @property
    def embed_url(self) -> str:
        return self.url + "/embed"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def run_server(api_key: str, port: int | None = None, max_batch_size: int = 32) -> Iterator[LocalServer]:
    """Run ``hf-infer serve`` in a child process until the block ends; wait for /health first."""
    port = port or free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [
        sys.executable,
        "-m",
        "hf_infer_core._cli",
        "serve",
        "--port",
        str(port),
        "--api-key",
        api_key,
        "--max-batch-size",
        str(max_batch_size),
    ]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    server = LocalServer(f"http://127.0.0.1:{port}", api_key)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"hf-infer serve exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
            try:
                if httpx.get(server.url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("hf-infer serve did not become healthy in time")
            time.sleep(0.5)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
