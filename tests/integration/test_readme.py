"""Every Python block of README.md, docs/reference.md and docs/migration.md runs as written: each alone,
in a fresh interpreter, from the repository root, against the local server (HF_INFER_URL, HF_TOKEN)
and a real Redis (REDIS_URL). The README is a guide a RAG engineer reads in ten minutes: at most
2,500 words, its first block the RAG quickstart.

A block that needs what no machine here has (an S3 bucket, a remote cluster) is marked by an HTML
comment holding "skip" on the line before its fence, and has a local equivalent beside it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
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
