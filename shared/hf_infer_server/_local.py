"""Run ``hf-infer serve`` in a child process: the test and demo helper.

:func:`run_local_server` starts the real model server on a free 127.0.0.1 port, waits until it
answers ``/health`` (the model is loaded), yields its address, and stops it afterwards. The
child is a process of its own so that the model's CPU work and the caller's timing never share
a GIL.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import httpx

__all__ = ["STARTUP_TIMEOUT", "LocalServer", "free_port", "run_local_server"]


STARTUP_TIMEOUT = 240.0


@dataclass(frozen=True)
class LocalServer:
    """A running local endpoint: ``url`` is its base (``http://127.0.0.1:PORT``)."""

    url: str
    api_key: str | None = field(default=None, repr=False)
    pid: int | None = None  # the server's process (for resource checks)

    @property
    def embed_url(self) -> str:
        """The embedding route, ``<url>/embed``."""
        return self.url + "/embed"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def run_local_server(
    api_key: str | None = None,
    port: int | None = None,
    max_batch_size: int = 32,
    startup_timeout: float = STARTUP_TIMEOUT,
    extra_args: Sequence[str] = (),
) -> Iterator[LocalServer]:
    """Run ``hf-infer serve`` in a child process on 127.0.0.1 until the block ends.

    Waits until ``/health`` answers 200 (the model is loaded) before yielding. ``api_key`` reaches
    the child through its environment, never its command line (which ``ps`` shows to every user);
    without one the server checks no token, as a local TEI server usually does.

    Raises:
        RuntimeError: if the server exits or is not healthy within ``startup_timeout`` seconds.
    """
    port = port or free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("HF_INFER_SERVER_API_KEY", None)
    if api_key:
        env["HF_INFER_SERVER_API_KEY"] = api_key
    command = [
        sys.executable,
        "-m",
        "hf_infer_server._cli",
        "serve",
        "--port",
        str(port),
        "--max-client-batch-size",
        str(max_batch_size),
        # stderr is a pipe read only if the server fails to start: an access line per request
        # would fill it and block the server.
        *(() if "--log-level" in extra_args else ("--log-level", "warning")),
        *extra_args,
    ]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # noqa: S603
    server = LocalServer(f"http://127.0.0.1:{port}", api_key, proc.pid)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"hf-infer serve exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}"
                )
            try:
                # As on TEI, /health wants the token too when there is one.
                headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
                if httpx.get(server.url + "/health", headers=headers, timeout=2).status_code == 200:
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
