"""A cache file that turns read-only or whose disk fills up under a live client.

Real file systems (files made immutable, a tmpfs mounted for the test too small), real
processes: the client runs in a child, so a crash (SIGBUS from a mapped file) is seen as one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

CHILD = textwrap.dedent(
    """
    import json, logging, sys
    import httpx
    from hf_infer_core import EmbeddingClient, InferenceEndpoint

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    def answer(request):
        if request.url.path.endswith("/info"):
            return httpx.Response(404)
        texts = json.loads(request.content)["inputs"]
        return httpx.Response(200, json=[[float(len(t)), 1.0, 2.0, 3.0] for t in texts])

    endpoint = InferenceEndpoint.from_url("http://tei.test/embed")
    client = EmbeddingClient(endpoint, transport=httpx.MockTransport(answer), cache=sys.argv[1], cache_max_bytes=1 << 20)
    for round_ in range(int(sys.argv[2])):
        texts = [f"round {round_} text {i} " + "y" * 200 for i in range(500)]
        assert client.embed(texts) == [[float(len(t)), 1.0, 2.0, 3.0] for t in texts]
        print("round", round_, client.cache_stats.errors, flush=True)
        if round_ == 0:
            sys.stdin.readline()  # the parent changes the file system here
    print("done", client.cache_stats.errors, flush=True)
    """
)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "mnt"
    folder.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(folder)], capture_output=True)
    if made.returncode != 0:  # pragma: no cover - a machine where the tests may not mount (CI runs as root)
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _child(cache: Path, rounds: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(cache), str(rounds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_files_turned_read_only_under_a_live_client_warn_once_and_the_endpoint_answers(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    folder.mkdir()
    child = _child(folder / "c.sqlite", 3)
    assert child.stdout is not None and child.stdin is not None
    assert child.stdout.readline().split() == ["round", "0", "0"]
    # Immutable: not even root writes there, through the child's open descriptor either (a
    # read-only remount is refused while the file is open for writing).
    files = [str(folder), *map(str, folder.iterdir())]
    made = subprocess.run(["chattr", "+i", *files], capture_output=True)
    if made.returncode != 0:  # pragma: no cover - a file system without attributes
        child.kill()
        pytest.skip(f"chattr +i is not supported here: {made.stderr.strip()}")
    try:
        out, err = child.communicate("go\n", timeout=60)
    finally:
        subprocess.run(["chattr", "-i", *files], check=False)
    assert child.returncode == 0, (child.returncode, err[-2000:])  # no SIGBUS, no failed call
    assert out.splitlines()[-1].startswith("done") and int(out.split()[-1]) >= 1
    assert err.count("WARNING") == 1 and "embedding cache" in err


def test_a_full_disk_warns_once_and_the_endpoint_answers(tmpfs: Path) -> None:
    filler = tmpfs / "filler"
    filler.write_bytes(b"\0" * (480 * 1024))  # what is left is less than the cache wants
    child = _child(tmpfs / "c.sqlite", 4)
    out, err = child.communicate("go\n", timeout=60)
    assert child.returncode == 0, (child.returncode, err[-2000:])
    assert out.splitlines()[-1].startswith("done") and int(out.split()[-1]) >= 1
    assert err.count("WARNING") == 1 and "full" in err
