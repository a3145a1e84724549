"""The import-linter contracts pass, and each fails on a deliberate violation.

The contracts are in pyproject.toml (``[tool.importlinter]``) and run by ``make lint``. Here they
run on a copy of the packages into which one forbidden import was written: lint-imports must
fail and name the broken contract.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter")

ROOT = Path(__file__).parents[2]
PACKAGES = ["shared/hf_infer_core", "shared/hf_infer_server", "langchain_hf_infer", "llama_index_hf_infer"]


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{tree / 'shared'}{os.pathsep}{tree}"}
    command = [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"]
    return subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_contracts_hold_on_the_code_as_it_is(tree: Path) -> None:
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("shared/hf_infer_core/config/_options.py", "from ..drivers import _sync", "The core's layers"),
        ("shared/hf_infer_core/text/_words.py", "from ..protocol import _steps", "The core's layers"),
        ("shared/hf_infer_core/protocol/_steps.py", "import httpx", "The protocol and the tasks' flows perform no I/O"),
        (
            "shared/hf_infer_core/protocol/_plan.py",
            "import threading",
            "The protocol and the tasks' flows perform no I/O",
        ),
        # A task's flows are as I/O-free as the protocol, and the drivers never name a task.
        (
            "shared/hf_infer_core/embeddings/_flows.py",
            "import asyncio",
            "The protocol and the tasks' flows perform no I/O",
        ),
        ("shared/hf_infer_core/drivers/_sync.py", "from ..embeddings import _flows", "The core's layers"),
        # The rerank task likewise; and the two tasks are siblings, neither importing the other.
        (
            "shared/hf_infer_core/rerank/_flows.py",
            "import threading",
            "The protocol and the tasks' flows perform no I/O",
        ),
        ("shared/hf_infer_core/embeddings/_core.py", "from ..rerank import _core", "The core's layers"),
        # The configuration sits below the cache; the shared pipeline below the tasks, naming none.
        (
            "shared/hf_infer_core/config/_options.py",
            "from ..cache import _stores",
            "The configuration is below the cache",
        ),
        ("shared/hf_infer_core/pipeline/_jobs.py", "from ..embeddings import _core", "The core's layers"),
        ("shared/hf_infer_core/pipeline/_core.py", "from ..rerank import _core", "The shared layers name no task"),
        (
            "shared/hf_infer_core/pipeline/_jobs.py",
            "import threading",
            "The protocol and the tasks' flows perform no I/O",
        ),
        ("shared/hf_infer_core/base/_errors.py", "import langchain_core", "The core imports no framework"),
        ("langchain_hf_infer/_splitter.py", "import llama_index_hf_infer", "The adapters do not know each other"),
    ],
)
def test_a_deliberate_violation_breaks_its_contract(tree: Path, module: str, line: str, contract: str) -> None:
    path = tree / module
    source = path.read_text()
    anchor = "from __future__ import annotations\n"
    path.write_text(source.replace(anchor, anchor + line + "  # noqa\n", 1))
    result = _lint(tree)
    assert result.returncode != 0, result.stdout
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, result.stdout
