"""Every Python block of README.md runs as written: each alone, in a fresh interpreter, from the
repository root, against the local server (HF_INFER_URL, HF_TOKEN) and a real Redis (REDIS_URL).

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


def readme_blocks() -> list[tuple[int, str, bool]]:
    """(line of the fence, code, marked skip) for every Python block of the README."""
    text = (ROOT / "README.md").read_text()
    blocks = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        blocks.append((line, match.group(1), before.startswith("<!--") and "skip" in before))
    return blocks


BLOCKS = readme_blocks()


def test_every_block_is_run_but_at_most_two_marked_ones() -> None:
    assert len(BLOCKS) >= 10
    assert sum(skip for _, _, skip in BLOCKS) <= 2


@pytest.mark.parametrize(
    ("line", "code"),
    [(line, code) for line, code, skip in BLOCKS if not skip],
    ids=lambda v: f"line{v}" if isinstance(v, int) else "",
)
def test_readme_block_runs_as_written(
    line: int, code: str, local_server: LocalServer, redis_server: RedisServer, tmp_path: Path
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
    assert result.returncode == 0, f"README.md block at line {line} failed:\n{result.stderr[-4000:]}"
