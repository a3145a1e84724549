"""The local server answers as TEI 1.9.3 does, and holds under abuse: flags, statuses, headers, log, metrics, limits.

Every case runs against ``hf-infer serve`` in its own process over real sockets: the session's
server (TEI's defaults) or one started here with other flags and its console captured.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from hf_infer_server import LocalServer, free_port

LONG = " ".join(f"word{i}" for i in range(400))  # 1,130 word pieces: over all-MiniLM-L6-v2's 256


def auth(server: LocalServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.api_key}"}


@dataclass
class Served:
    """A server started by this module: its URL, key, process and console (stderr) file."""

    url: str
    key: str
    proc: subprocess.Popen[bytes]
    console: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def _start(tmp: Path, *flags: str, wait: bool = True) -> Served:
    port, key = free_port(), "hf_limits_key_123"
    console = tmp / f"console-{port}.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_INFER_SERVER_API_KEY": key}
    with console.open("w") as sink:
        command = [sys.executable, "-m", "hf_infer_server._cli", "serve", "--port", str(port), *flags]
        proc = subprocess.Popen(command, env=env, stderr=sink, stdout=sink)
    served = Served(f"http://127.0.0.1:{port}", key, proc, console)
    deadline = time.monotonic() + 120
    while wait and time.monotonic() < deadline:
        try:
            if httpx.get(served.url + "/health", headers=served.headers, timeout=2).status_code == 200:
                return served
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    if wait:
        raise RuntimeError(console.read_text()[-2000:])
    return served


def _stop(served: Served) -> None:
    served.proc.terminate()
    try:
        served.proc.wait(15)
    except subprocess.TimeoutExpired:
        served.proc.kill()


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server with TEI's opposite settings: no auto-truncation, 4 inputs, a 100 kB body, 2 s for a body."""
    served = _start(
        tmp_path_factory.mktemp("strict"),
        "--auto-truncate",
        "false",
        "--max-client-batch-size",
        "4",
        "--payload-limit",
        "100000",
        "--body-timeout",
        "2",
        "--log-level",
        "info",
    )
    yield served
    _stop(served)


# ------------------------------------------------------------------ TEI 1.9.3's flags, statuses and answers


def test_the_defaults_answer_as_tei_1_9_does(local_server: LocalServer) -> None:
    url, headers = local_server.url, auth(local_server)
    info = httpx.get(url + "/info", headers=headers).json()
    assert info["version"] == "1.9.3" and info["auto_truncate"] is True and info["max_client_batch_size"] == 32
    cut = httpx.post(url + "/embed", json={"inputs": [LONG]}, headers=headers)
    assert cut.status_code == 200  # auto-truncate: cut, as TEI 1.9 does by default
    refused = httpx.post(url + "/embed", json={"inputs": [LONG], "truncate": False}, headers=headers)
    assert refused.status_code == 422
    assert refused.json() == {
        "error": "Input validation error: `inputs` must have less than 256 tokens. Given: 1130",
        "error_type": "validation",
    }
    batch = httpx.post(url + "/embed", json={"inputs": ["a"] * 33}, headers=headers)
    assert batch.status_code == 422
    assert batch.json()["error"] == "batch size 33 > maximum allowed batch size 32"
    empty = httpx.post(url + "/embed", json={"inputs": []}, headers=headers)
    assert empty.status_code == 400 and empty.json()["error_type"] == "empty"
    prompt = httpx.post(url + "/embed", json={"inputs": ["a"], "prompt_name": "nope"}, headers=headers)
    assert prompt.status_code == 422
    ok = httpx.post(url + "/embed", json={"inputs": ["two words", "three words here"]}, headers=headers)
    for name in ("x-compute-type", "x-compute-time", "x-total-time", "x-tokenization-time", "x-queue-time"):
        assert ok.headers[name], name
    assert ok.headers["x-compute-characters"] == str(len("two words") + len("three words here"))
    assert ok.headers["x-compute-tokens"] == "9"  # [CLS] two words [SEP] + [CLS] three words here [SEP]
    assert int(ok.headers["x-inference-time"]) <= int(ok.headers["x-total-time"])
    big = httpx.post(url + "/embed", content=b'{"inputs": "' + b"x" * 2_000_001 + b'"}', headers={**headers})
    assert big.status_code == 413 and big.text == "Failed to buffer the request body: length limit exceeded"


def test_tei_flags_change_the_answers(strict: Served) -> None:
    url, headers = strict.url, strict.headers
    info = httpx.get(url + "/info", headers=headers).json()
    assert info["auto_truncate"] is False and info["max_client_batch_size"] == 4
    assert httpx.post(url + "/embed", json={"inputs": [LONG]}, headers=headers).status_code == 422
    assert httpx.post(url + "/embed", json={"inputs": [LONG], "truncate": True}, headers=headers).status_code == 200
    five = httpx.post(url + "/embed", json={"inputs": ["a"] * 5}, headers=headers)
    assert five.status_code == 422 and "maximum allowed batch size 4" in five.json()["error"]
    assert httpx.post(url + "/embed", json={"inputs": ["y" * 100_001]}, headers=headers).status_code == 413


def test_serve_help_names_teis_flags() -> None:
    text = subprocess.run(
        [sys.executable, "-m", "hf_infer_server._cli", "serve", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in ("--max-client-batch-size", "--auto-truncate", "--payload-limit", "--body-timeout", "--api-key"):
        assert flag in text, flag


# ------------------------------------------------------------------ holding under abuse


def test_the_access_log_escapes_what_a_path_carries(strict: Served) -> None:
    for path in ("/embed%0a127.0.0.1%20%22POST%20/admin%22%20200", "/embed%1b[31mred", "/emb\\ed"):
        httpx.post(strict.url + path, json={"inputs": ["a"]}, headers=strict.headers)
    time.sleep(0.3)
    text = strict.console.read_text()
    lines = [line for line in text.splitlines() if "hf_infer_server.access" in line]
    assert not any('"POST /admin" 200' in line and "%" not in line for line in lines)
    assert "\x1b" not in text
    assert any("/embed%0a127.0.0.1%20%22POST%20/admin%22%20200" in line for line in lines)
    assert any("/emb\\x5ced" in line for line in lines)


def test_metrics_is_valid_prometheus_text(local_server: LocalServer) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    url, headers = local_server.url, auth(local_server)
    httpx.post(url + "/embed", json={"inputs": ["a", "b"]}, headers=headers)
    httpx.post(url + "/embed", json={"inputs": ["a"] * 40}, headers=headers)  # a batch_size failure
    httpx.post(url + "/embed", json={"inputs": []}, headers=headers)  # an empty one
    text = httpx.get(url + "/metrics", headers=headers).text
    families = {family.name: family for family in text_string_to_metric_families(text)}  # raises on bad text
    assert len(re.findall(r"^# TYPE te_request_failure ", text, re.M)) == 1
    failures = {sample.labels["err"] for sample in families["te_request_failure"].samples}
    assert {"batch_size", "empty"} <= failures


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/rerank", b'{"query": "bad \\ud800 query", "texts": ["a"]}'),
        ("/embed", b'{"inputs": ["a"], "prompt_name": "\\udc00"}'),
        ("/tokenize", b'{"inputs": ["a"], "\\ud800": 1}'),
    ],
)
def test_a_lone_surrogate_anywhere_is_a_422(local_server: LocalServer, route: str, body: bytes) -> None:
    answer = httpx.post(
        local_server.url + route, content=body, headers={**auth(local_server), "Content-Type": "application/json"}
    )
    assert answer.status_code == 422 and "surrogate" in answer.text


def _drip(url: str, authorization: str, seconds: float) -> tuple[bytes, float]:
    """Send a request's headers, then its body one byte every 0.5 s; what came back, and when."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.settimeout(seconds)
    head = (
        f"POST /embed HTTP/1.1\r\nHost: {host}\r\nAuthorization: {authorization}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    )
    sock.sendall(head.encode())
    started, answer = time.monotonic(), b""
    stop = threading.Event()

    def drip() -> None:
        while not stop.wait(0.5):
            try:
                sock.sendall(b" ")
            except OSError:
                return

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    try:
        while True:
            piece = sock.recv(4096)
            if not piece:  # closed by the server
                break
            answer += piece
    except TimeoutError:
        pass
    finally:
        stop.set()
        sock.close()
    return answer, time.monotonic() - started


def test_a_dripped_body_is_cut_off_and_an_unauthorised_one_never_read(strict: Served) -> None:
    answer, _ = _drip(strict.url, f"Bearer {strict.key}", 20)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]  # --body-timeout 2: answered and closed
    refused, _ = _drip(strict.url, "Bearer wrong", 20)
    assert refused.startswith(b"HTTP/1.1 401"), refused[:200]
    assert b"connection: close" in refused.lower()  # closed after the answer: the rest is never read


def test_a_refused_client_may_finish_sending_its_body(strict: Served) -> None:
    """After a 401 sent before the body was read, what the client still sends is read (and dropped), not reset.

    A socket closed with unread bytes makes the kernel answer the next ones with a reset: a client
    still writing its body (httpx writes all of it before reading) would fail instead of reading
    the answer. So the server lingers: its side shut, the client's rest read for a while, not for ever.
    """
    host, port = strict.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"POST /embed HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer wrong\r\n"
            "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n".encode()
        )
        answer = b""
        while piece := sock.recv(4096):  # the answer, then the server's end of the stream
            answer += piece
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
        for _ in range(20):  # the body, in pieces: each arrives after the server has answered and shut its side
            sock.sendall(b" " * 5000)
            assert sock.recv(1) == b""  # still shut, not reset
        assert _sends_until_cut_off(
            sock, 30
        )  # a client that never stops is cut off: the linger is bounded (2 s, 8 MiB)


def _sends_until_cut_off(sock: socket.socket, seconds: float) -> bool:
    """Whether the server cut the connection within ``seconds`` of a client sending without end."""
    started = time.monotonic()
    try:
        while time.monotonic() - started < seconds:
            sock.sendall(b" " * 5000)
    except OSError:
        return True
    return False


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_tokenize_checks_sizes_before_tokenizing(strict: Served) -> None:
    """Four 1.9 MB /tokenize requests at once: refused before any tokenizing, the server's peak barely moves."""
    body = json.dumps({"inputs": ["word " * 12_800] * 30}).encode()  # 30 x 64,000 characters: 1.92 MB
    assert len(body) < 2_000_000
    before = _peak_rss_kib(strict.proc.pid)
    answers: list[int] = []

    def send() -> None:
        with httpx.Client(timeout=120) as http:
            answers.append(
                http.post(
                    strict.url + "/tokenize",
                    content=body,
                    headers={**strict.headers, "Content-Type": "application/json"},
                ).status_code
            )

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    grown = (_peak_rss_kib(strict.proc.pid) - before) / 1024
    assert answers == [413] * 4 or set(answers) <= {413}, answers  # --payload-limit 100000 here
    assert grown < 100, grown


def test_tokenize_refuses_too_many_characters_before_tokenizing(local_server: LocalServer) -> None:
    body = {"inputs": ["word " * 12_800] * 6}  # 6 x 64,000 characters: over what one request tokenizes
    answer = httpx.post(local_server.url + "/tokenize", json=body, headers=auth(local_server))
    assert answer.status_code == 413 and "characters" in answer.json()["error"]
    over = httpx.post(local_server.url + "/tokenize", json={"inputs": ["w" * 64_001]}, headers=auth(local_server))
    assert over.status_code == 422
    assert over.json()["error"] == "Input validation error: `inputs` must have less than 64000 characters. Given: 64001"


def test_a_model_that_fails_to_load_is_said_on_the_console_at_once(tmp_path: Path) -> None:
    served = _start(tmp_path, "--model", str(tmp_path / "no-such-model"), wait=False)
    try:
        deadline = time.monotonic() + 60
        while "failed to load" not in served.console.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        console = served.console.read_text()
        assert "ERROR" in console and "failed to load" in console and "no-such-model" in console
        health = None
        while health is None and time.monotonic() < deadline:
            try:
                health = httpx.get(served.url + "/health", headers=served.headers, timeout=2)
            except httpx.HTTPError:
                time.sleep(0.2)
        assert health is not None and health.status_code == 503 and "failed to load" in health.json()["error"]
    finally:
        _stop(served)
