from __future__ import annotations

import faulthandler
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from hf_infer_server import LocalServer, run_local_server

# The key the test servers require; also the secret canary the leak tests look for.
SERVER_KEY = "hf_SECRET_canary_123"


@pytest.fixture(scope="session")
def local_server() -> Iterator[LocalServer]:
    """The real all-MiniLM-L6-v2 model behind real HTTP on 127.0.0.1, for the whole session."""
    with run_local_server(SERVER_KEY) as server:
        yield server


class RedisServer:
    """A real redis-server on 127.0.0.1, started by the tests themselves (no persistence)."""

    def __init__(self, directory: str) -> None:
        from hf_infer_server import free_port

        self.port = free_port()
        self.directory = directory
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        command += ["--dir", self.directory]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server for the shared rate budget; skipped where there is none, but never on CI."""
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed (apt-get install redis-server; .ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    server = RedisServer(str(tmp_path_factory.mktemp("redis")))
    try:
        yield server
    finally:
        server.stop()


def run_probe(script: str, *args: str, timeout: float = 120) -> dict[str, object]:
    """Run ``script`` in a fresh interpreter (its own peak RSS) from the repository root; return its JSON line."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=timeout, cwd=root, check=False
    )
    assert result.returncode == 0, result.stderr
    measured: dict[str, object] = json.loads(result.stdout)
    return measured


# Prepended to probe scripts: a process's own peak RSS. ru_maxrss will not do, since a child
# inherits its parent's peak across fork and exec (pytest is large); VmHWM, reset through
# clear_refs, counts only what the probe itself allocates.
PEAK_RSS = """
def _status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))

def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status("VmRSS:")

def peak():
    return _status("VmHWM:")
"""


# ------------------------------------------------------------------ a process that will not exit

# Seconds the process may take to exit once the session is over. A CI run once printed every
# test passing and then sat until its time ran out, which no local run reproduced: if that
# happens again, the log shows where instead of nothing.
EXIT_GRACE = 90.0
_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _EXIT_STATUS.append(int(exitstatus))


def _children() -> list[str]:
    """This process's live child processes, as ``pid command`` lines (Linux's /proc)."""
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            if entry.isdigit() and int(fields[1]) == os.getpid():
                with open(f"/proc/{entry}/cmdline", "rb") as cmd:
                    command = cmd.read().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{entry} {command[:200]}")
        except (OSError, IndexError, ValueError):
            continue
    return found


def _leave_if_stuck() -> None:
    if threading.Event().wait(EXIT_GRACE):
        return
    out = sys.__stderr__ or sys.stderr
    status = _EXIT_STATUS[-1] if _EXIT_STATUS else 1
    out.write(f"\n!!! the session ended {EXIT_GRACE:g}s ago and the process has not exited; its threads:\n")
    out.flush()
    faulthandler.dump_traceback(file=out, all_threads=True)
    out.write(
        "!!! its child processes:\n" + "\n".join(_children()) + f"\n!!! leaving with the session's status {status}\n"
    )
    out.flush()
    os._exit(status)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        threading.Thread(target=_leave_if_stuck, name="exit-watch", daemon=True).start()


@pytest.fixture(autouse=True)
def _fresh_adaptive_limits() -> Iterator[None]:
    """Each test starts with no adaptive limit learnt: max_concurrency="auto" (the default) shares one per endpoint in the process, and the fake endpoints of many tests have one URL."""
    yield
    from hf_infer_core.limits import _concurrency

    with _concurrency._SHARED_LOCK:
        _concurrency._SHARED.clear()
