"""Every Python block of README.md, docs/reference.md and docs/migration.md runs as written: each alone,
in a fresh interpreter, from the repository root, against the local server (HF_INFER_URL, HF_TOKEN)
and a real Redis (REDIS_URL). The README is a guide a RAG engineer reads in ten minutes: at most
2,500 words, its first block the RAG quickstart.

A block that needs what no machine here has (an S3 bucket, a remote cluster) is marked by an HTML
comment holding "skip" on the line before its fence, and has a local equivalent beside it.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hf_infer_server import LocalServer

from ..conftest import RedisServer

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


PAGES = ("README.md", "docs/reference.md", "docs/migration.md")


def page_blocks(page: str) -> list[tuple[str, int, str, bool]]:
    """(page, line of the fence, code, marked skip) for every Python block of ``page``."""
    text = (ROOT / page).read_text()
    blocks = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        blocks.append((page, line, match.group(1), before.startswith("<!--") and "skip" in before))
    return blocks


BLOCKS = [block for page in PAGES for block in page_blocks(page)]


def test_every_block_is_run_but_at_most_two_marked_ones() -> None:
    assert len(BLOCKS) >= 20
    assert sum(skip for *_, skip in BLOCKS) <= 2


def test_the_readme_is_a_ten_minute_guide() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.split()) <= 2500
    first = page_blocks("README.md")[0][2]
    assert "InMemoryVectorStore" in first and "as_retriever" in first  # the RAG quickstart comes first
    assert "make demo" in text and "make test" in text


@pytest.mark.parametrize(
    ("page", "line", "code"),
    [(page, line, code) for page, line, code, skip in BLOCKS if not skip],
    ids=lambda v: f"line{v}" if isinstance(v, int) else (v.split("/")[-1].removesuffix(".md") if v in PAGES else ""),
)
def test_readme_block_runs_as_written(
    page: str, line: int, code: str, local_server: LocalServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    assert local_server.api_key is not None
    script = tmp_path / f"readme_line_{line}.py"  # a file, not -c: multiprocessing's spawn re-imports it
    script.write_text(code)
    env = {
        **os.environ,
        "HF_INFER_URL": local_server.embed_url,
        "HF_TOKEN": local_server.api_key,
        "REDIS_URL": redis_server.url,
        "HF_HUB_OFFLINE": "1",
    }
    env.pop("HUGGINGFACEHUB_API_TOKEN", None)
    result = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, f"{page} block at line {line} failed:\n{result.stderr[-4000:]}"


SHELL = re.compile(r"^```bash\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def shell_blocks(page: str = "README.md") -> list[tuple[int, str]]:
    """(line of the fence, code) for every shell block of ``page``."""
    text = (ROOT / page).read_text()
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in SHELL.finditer(text)]


def test_the_set_up_comes_before_the_first_python_block_and_every_block_is_counted() -> None:
    python, shell = page_blocks("README.md"), shell_blocks()
    assert len(python) >= 7 and len(shell) >= 3  # every one of them is run by the tests here
    first_python = python[0][1]
    before = [code for line, code in shell if line < first_python]
    # What the first vector needs, all before it: the install, the venv, the server, the variables.
    assert before and all(
        any(step in code for code in before)
        for step in ("make install", ". .venv/bin/activate", "hf-infer serve", "export HF_INFER_URL=")
    )
    text = (ROOT / "README.md").read_text()
    assert text.index("## Reranking") < text.index("## Ingestion at scale")  # reranking before scaling


def test_the_readmes_shell_blocks_run_as_written_in_one_terminal(tmp_path: Path) -> None:
    """The README's shell blocks, in order, in one bash session from the checkout: nothing written into it."""
    import signal
    import time

    import httpx

    with socket_free(8080):
        env = {k: v for k, v in os.environ.items() if k not in ("HF_INFER_SERVER_API_KEY", "VIRTUAL_ENV")}
        env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HOME": str(tmp_path)})
        env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if ".venv" not in p)
        before = _untracked()
        script = "set -eo pipefail\n" + "\n".join(code for _, code in shell_blocks())
        proc = subprocess.Popen(
            ["bash", "-c", script],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # the server the set-up starts is in this group: ended with it below
        )
        try:
            out, _ = proc.communicate(timeout=900)
            assert proc.returncode == 0, out[-4000:]
            assert "is up to date" in out and "written to notes.parquet" in out
            health = httpx.get("http://127.0.0.1:8080/health", timeout=5)
            assert health.status_code == 200  # the server the set-up started, keyless as the README has it
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            time.sleep(1)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        assert _untracked() == before  # nothing written into the checkout


def _untracked() -> str:
    return subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout


@contextlib.contextmanager
def socket_free(port: int) -> Iterator[None]:
    """The README's server listens on ``port``: it must be free (a failure names it, rather than a wrong server)."""
    import socket

    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} is taken: the README's server needs it"
    yield
