"""The local server bounds what it reads: chunked bodies, an empty key, deeply nested JSON."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from hf_infer_server import LocalServer, free_port

TOKEN = "hf_abcdefghijklmnopqrstuvwxyz0123456789"

# ------------------------------------------------------------------ the local server


def test_a_chunked_body_is_read_as_a_stream_and_refused_at_the_limit(local_server: LocalServer) -> None:
    """300 MB sent chunked to /embed: 413 at 2 MB, and the server's memory does not follow."""
    pid = _server_pid(local_server)
    before = _rss(pid)
    host, port = local_server.url.removeprefix("http://").split(":")
    answer = b""
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        auth = f"Authorization: Bearer {local_server.api_key}\r\n" if local_server.api_key else ""
        sock.sendall(
            f"POST /embed HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        piece = b'{"inputs": "' + b"a" * (1 << 20)
        sent = 0
        try:
            while sent < 300 << 20:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                sent += len(piece)
        except OSError:
            pass  # the server answered and closed: what is expected
        sock.settimeout(10)
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError:
            pass
    assert answer.startswith(b"HTTP/1.1 413")
    assert sent < 300 << 20, "the server read everything it was sent"
    assert _rss(pid) - before < 64 << 20


def _server_pid(server: LocalServer) -> int:
    port = server.url.rsplit(":", 1)[1]
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=False).stdout
    if "pid=" not in out:
        pytest.skip("ss cannot name the server's process here")
    return int(out.split("pid=")[1].split(",")[0])


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_an_empty_server_key_refuses_to_start(how: str) -> None:
    env = {**os.environ, "HF_INFER_SERVER_API_KEY": ""} if how == "environment" else dict(os.environ)
    command = [sys.executable, "-m", "hf_infer_server._cli", "serve", "--port", str(free_port())]
    if how == "flag":
        command += ["--api-key", ""]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)
    assert result.returncode == 2
    assert "API key is empty" in result.stderr


def test_deeply_nested_json_gets_422_not_500(local_server: LocalServer) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {local_server.api_key}", "Content-Type": "application/json"}
    answer = httpx.post(local_server.embed_url, content=b"[" * 200_000, headers=headers, timeout=30)
    assert answer.status_code == 422
