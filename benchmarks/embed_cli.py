"""``hf-infer embed`` on a 1 GB JSONL file beside a 10-row one: peak RSS of each run (issue #35).

10,000 rows of a short text and a 100,000-character column each (1 GB), against the fast fake
endpoint, with the default options (a part: 1,000 rows or 8 MiB of input, whichever is less) and
with --rows-per-part 100. The input is read in streaming passes, so the peak is set by a part, not
by the file.

    .venv/bin/python -m benchmarks.embed_cli
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import fake_endpoint

ROWS = 10_000
BLOB = 100_000
_CHILD = (
    "import resource, sys; from hf_infer_server._cli import main; rc = main(sys.argv[1:]); "
    "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(rc)"
)


def _write(path: Path, rows: int) -> None:
    blob = "x" * BLOB
    with path.open("w") as file:
        for i in range(rows):
            file.write(json.dumps({"n": i, "blob": blob, "text": f"row {i}: a short text to embed"}) + "\n")


def _peak(source: Path, output: Path, url: str, rows_per_part: int) -> tuple[float, float]:
    """Peak RSS (MiB) and wall seconds of one ``hf-infer embed`` run in a fresh process."""
    args = ["embed", str(source), "-o", str(output), "--url", url, "--no-progress"]
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-c", _CHILD, *args, "--rows-per-part", str(rows_per_part)],
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode != 0:
        raise RuntimeError(run.stderr[-2000:])
    peak = int(run.stderr.rsplit("PEAK", 1)[1].split()[0]) / 1024
    return peak, time.monotonic() - started


def run() -> list[tuple[str, float, float]]:
    """(case, peak MiB, seconds) for the 10-row and the 1 GB inputs."""
    with tempfile.TemporaryDirectory() as folder, fake_endpoint(latency=0.002, slots=64) as url:
        small, large = Path(folder) / "small.jsonl", Path(folder) / "large.jsonl"
        _write(small, 10)
        _write(large, ROWS)
        size = large.stat().st_size / 2**30
        rows = []
        for part in (1000, 100):
            for name, source in ((f"10 rows, --rows-per-part {part}", small), (f"{size:.2f} GiB", large)):
                peak, seconds = _peak(source, Path(folder) / f"{source.stem}-{part}.parquet", url + "/embed", part)
                rows.append((f"{name}, --rows-per-part {part}" if source is large else name, peak, seconds))
    return rows


def render(rows: list[tuple[str, float, float]]) -> str:
    lines = ["| input | peak RSS (MiB) | s |", "|---|---:|---:|"]
    lines += [f"| {name} | {peak:.0f} | {seconds:.1f} |" for name, peak, seconds in rows]
    for k in range(0, len(rows), 2):
        growth = rows[k + 1][1] - rows[k][1]
        lines.append(f"| growth, {rows[k + 1][0]} over 10 rows | {growth:.0f} MiB (goal <= 200) | |")
    return "\n".join(lines)


def main() -> None:
    print(render(run()))


if __name__ == "__main__":
    main()
