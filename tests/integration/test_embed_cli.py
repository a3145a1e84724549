"""``hf-infer embed`` from the shell: a folder, JSONL and Parquet into Parquet; resume after a kill; bad input."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hf_infer_core.cache._identity import PROBE_TEXT
from hf_infer_server import LocalServer

from ..fake_endpoint import expected_vector, fake_endpoint

ROOT = Path(__file__).resolve().parents[2]


def hf_infer(*args: str, key: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``hf-infer`` as a user runs it: the console script, the key in the environment."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("HF_TOKEN", None)
    if key is not None:
        env["HF_TOKEN"] = key
    script = shutil.which("hf-infer", path=os.path.dirname(sys.executable))
    assert script is not None
    return subprocess.run([script, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False)


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (sum(x * x for x in a) * sum(y * y for y in b)) ** 0.5


# ------------------------------------------------------------------ the three inputs, against the real model


def test_a_folder_of_text_and_markdown_files(local_server: LocalServer, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "examples" / "corpus", corpus)
    (corpus / "notes").mkdir()
    (corpus / "notes" / "extra.txt").write_text("A short note about tides and the moon.")
    (corpus / "image.png").write_bytes(b"\x89PNG\x00\x00")  # not a text file: not read
    output = tmp_path / "out.parquet"
    result = hf_infer(
        "embed", str(corpus), "-o", str(output), "--url", local_server.embed_url, key=local_server.api_key
    )
    assert result.returncode == 0, result.stderr
    table = pq.read_table(output)
    files = sorted(str(p.relative_to(corpus)) for p in corpus.rglob("*") if p.suffix in (".md", ".txt"))
    assert table.column("path").to_pylist() == files
    assert table.schema.field("embedding").type == pa.list_(pa.float32())
    vectors = table.column("embedding").to_pylist()
    assert all(len(v) == 384 for v in vectors)
    assert not list(tmp_path.glob("*.partial"))
    assert f"{len(files)} rows, {len(files)} written" in result.stderr


def test_jsonl_keeps_every_field_and_chunks_carry_offsets(local_server: LocalServer, tmp_path: Path) -> None:
    source = tmp_path / "articles.jsonl"
    records = [
        {"id": 1, "title": "Tides", "body": (ROOT / "examples/corpus/tides.md").read_text(), "tags": ["sea"]},
        {"id": 2, "title": "Bees", "body": (ROOT / "examples/corpus/honeybees.md").read_text(), "tags": []},
    ]
    source.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    pooled, chunked = tmp_path / "pooled.parquet", tmp_path / "chunks.parquet"
    common = ["--url", local_server.embed_url, "--text-field", "body"]
    assert hf_infer("embed", str(source), "-o", str(pooled), *common, key=local_server.api_key).returncode == 0
    chunking = json.dumps({"strategy": "sentence", "max_chunk_size": 40, "sentence_overlap": 0})
    result = hf_infer(
        "embed", str(source), "-o", str(chunked), "--chunks", "--chunking", chunking, *common, key=local_server.api_key
    )
    assert result.returncode == 0, result.stderr
    rows = pq.read_table(pooled).to_pylist()
    assert [(r["id"], r["title"], r["tags"]) for r in rows] == [(1, "Tides", ["sea"]), (2, "Bees", [])]
    chunks = pq.read_table(chunked).to_pylist()
    assert len(chunks) > 2
    for chunk in chunks:
        body = records[chunk["id"] - 1]["body"]
        assert body[chunk["chunk_start"] : chunk["chunk_end"]] == chunk["chunk_text"]
    assert [c["chunk_index"] for c in chunks if c["id"] == 1] == list(range(sum(c["id"] == 1 for c in chunks)))


def test_parquet_in_and_the_same_vectors_as_the_client(local_server: LocalServer, tmp_path: Path) -> None:
    from hf_infer_core import EmbeddingClient, InferenceEndpoint

    texts = ["The moon pulls the sea.", "Bees dance to point at flowers.", "Lava flows downhill."]
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"doc_id": ["a", "b", "c"], "text": texts, "year": [2001, 2002, 2003]}), source)
    output = tmp_path / "out.parquet"
    body = {
        "service": "hugging_face",
        "service_settings": {"url": local_server.embed_url, "api_key": local_server.api_key},
    }
    endpoint_file = tmp_path / "endpoint.json"
    endpoint_file.write_text(json.dumps(body))
    result = hf_infer("embed", str(source), "-o", str(output), "--endpoint", str(endpoint_file), "--inference-id", "e5")
    assert result.returncode == 0, result.stderr
    table = pq.read_table(output)
    assert table.column_names == ["doc_id", "text", "year", "embedding"]
    with EmbeddingClient(InferenceEndpoint.from_url(local_server.embed_url, local_server.api_key)) as client:
        expected = client.embed_documents(texts)
    got = table.column("embedding").to_pylist()
    assert all(cosine(g, e) > 0.99999 for g, e in zip(got, expected, strict=True))


def test_help_has_examples() -> None:
    result = hf_infer("embed", "--help")
    assert result.returncode == 0
    assert "examples:" in result.stdout and "hf-infer embed docs/ -o docs.parquet" in result.stdout
    assert "Run the same command again" in result.stdout


# ------------------------------------------------------------------ resumable


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("how", ["kill", "ctrl-c"])
def test_a_stopped_job_resumes_without_sending_written_rows_again(tmp_path: Path, how: str) -> None:
    source = tmp_path / "many.jsonl"
    texts = [f"row {i} of the resumable job" for i in range(600)]
    source.write_text("".join(json.dumps({"n": i, "text": t}) + "\n" for i, t in enumerate(texts)))
    output = tmp_path / "out.parquet"
    parts = tmp_path / "out.parquet.partial"
    with fake_endpoint(latency=0.05, slots=2) as server:
        script = shutil.which("hf-infer", path=os.path.dirname(sys.executable))
        assert script is not None
        args = [script, "embed", str(source), "-o", str(output), "--url", server.embed_url, "--rows-per-part", "50"]
        args += ["--batch-size", "10", "--max-concurrency", "1", "--no-progress"]
        # The child must turn SIGINT into KeyboardInterrupt whatever this process inherited (a shell
        # that ignores SIGINT passes that on, and Python then installs no handler): reset it there.
        proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
        deadline = time.monotonic() + 60
        while len(list(parts.glob("part-*.parquet"))) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL if how == "kill" else signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == (-9 if how == "kill" else 130)
        if how == "ctrl-c":
            assert "run the same command to resume" in stderr
        assert not output.exists()  # never a half-written output file
        written = sum(int(p.stem.rsplit("-", 1)[1]) for p in parts.glob("part-*.parquet"))
        assert written >= 150
        before = Counter(t for entry in server.log for t in entry.inputs)
        # Resumed with another concurrency (the default, "auto", since it became one): the same
        # job, as how many requests are in flight changes no vector.
        at = args.index("--max-concurrency")
        again = args[:at] + args[at + 2 :]
        resumed = subprocess.run(again, capture_output=True, text=True, timeout=120, check=False)
        assert resumed.returncode == 0, resumed.stderr
        after = Counter(t for entry in server.log for t in entry.inputs)
    table = pq.read_table(output).to_pylist()
    assert [r["n"] for r in table] == list(range(600))
    assert all(r["embedding"] == pytest.approx(expected_vector(r["text"]), abs=1e-6) for r in table)
    resent = after - before
    assert not any(resent[texts[i]] for i in range(written))  # the rows written were not sent again
    assert all(resent[texts[i]] == 1 for i in range(written + 50, 600))
    assert not parts.exists()


def test_an_output_of_another_job_is_not_resumed(tmp_path: Path) -> None:
    source = tmp_path / "a.jsonl"
    source.write_text('{"text": "one"}\n')
    (tmp_path / "out.parquet.partial").mkdir()
    (tmp_path / "out.parquet.partial" / "job.json").write_text('{"job": "another"}')
    result = hf_infer("embed", str(source), "-o", str(tmp_path / "out.parquet"), "--url", "http://127.0.0.1:9/embed")
    assert result.returncode == 2 and "holds rows written under other options" in result.stderr


# ------------------------------------------------------------------ bad input: exit 2, file and row named, nothing written


def _bad_inputs(tmp_path: Path) -> list[tuple[list[str], str]]:
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "good.md").write_text("fine")
    (folder / "blob.txt").write_bytes(b"text\x00\x01\x02binary")
    latin = tmp_path / "latin"
    latin.mkdir()
    (latin / "old.txt").write_bytes("caf\u00e9".encode("latin-1"))
    missing_field = tmp_path / "missing.jsonl"
    missing_field.write_text('{"text": "ok"}\n{"body": "no text field"}\n')
    bad_utf8 = tmp_path / "utf8.jsonl"
    bad_utf8.write_bytes(b'{"text": "ok"}\n{"text": "caf\xe9"}\n')
    not_json = tmp_path / "broken.jsonl"
    not_json.write_text('{"text": "ok"}\n{"text": \n')
    null_text = tmp_path / "null.jsonl"
    null_text.write_text('{"text": null}\n')
    no_column = tmp_path / "nocol.parquet"
    pq.write_table(pa.table({"body": ["x"]}), no_column)
    return [
        ([str(folder)], f"{folder / 'blob.txt'}: a binary file"),
        ([str(latin)], f"{latin / 'old.txt'}: not valid UTF-8"),
        ([str(missing_field)], f"{missing_field}, line 2: no field 'text'"),
        ([str(bad_utf8)], f"{bad_utf8}, line 2: not valid UTF-8"),
        ([str(not_json)], f"{not_json}, line 2: not JSON"),
        ([str(null_text)], f"{null_text}, line 1: field 'text' is null, not text"),
        ([str(no_column)], f"{no_column}: no column 'text' (columns: body)"),
        ([str(tmp_path / "nowhere.jsonl")], f"{tmp_path / 'nowhere.jsonl'}: no such file or folder"),
        ([str(tmp_path / "folder" / "good.md")], "not a folder, a .jsonl or a .parquet file"),
    ]


def test_bad_input_exits_2_naming_file_and_row_with_nothing_written(tmp_path: Path) -> None:
    with fake_endpoint() as server:
        for args, message in _bad_inputs(tmp_path):
            output = tmp_path / "out.parquet"
            result = hf_infer("embed", *args, "-o", str(output), "--url", server.embed_url)
            assert result.returncode == 2, (args, result.stderr)
            assert message in result.stderr, (message, result.stderr)
            assert "Traceback" not in result.stderr
            assert not output.exists() and not list(tmp_path.glob("*.partial"))
        assert server.log == []  # nothing was sent for any of them
    unreadable = hf_infer("embed", str(tmp_path / "x.jsonl"), "-o", "o.parquet", "--url", "not a url")
    assert unreadable.returncode == 2


def test_an_endpoint_failure_exits_1_and_keeps_what_was_written(tmp_path: Path) -> None:
    source = tmp_path / "a.jsonl"
    source.write_text('{"text": "one"}\n')
    result = hf_infer(
        "embed", str(source), "-o", str(tmp_path / "o.parquet"), "--url", "http://127.0.0.1:9/embed", "--timeout", "1"
    )
    assert result.returncode == 1 and "the endpoint failed" in result.stderr
    assert "connection refused" in result.stderr


# ------------------------------------------------------------------ one job, one set of options, one run at a time


def _interrupt(args: list[str], parts: Path, count: int = 2) -> None:
    """Start ``hf-infer`` with ``args`` and kill it once ``count`` parts are written."""
    proc = subprocess.Popen(args, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(list(parts.glob("part-*.parquet"))) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.kill()
    proc.wait(30)
    assert len(list(parts.glob("part-*.parquet"))) >= count


def _job(tmp_path: Path, rows: int = 400) -> tuple[Path, Path, Path]:
    source = tmp_path / "job.jsonl"
    source.write_text(
        "".join(json.dumps({"n": i, "tag": "a", "text": f"row {i} says hello"}) + "\n" for i in range(rows))
    )
    return source, tmp_path / "out.parquet", tmp_path / "out.parquet.partial"


def test_a_resume_under_other_options_exits_2_naming_what_changed_and_restart_starts_over(tmp_path: Path) -> None:
    source, output, parts = _job(tmp_path)
    body = tmp_path / "endpoint.json"
    script = shutil.which("hf-infer", path=os.path.dirname(sys.executable))
    assert script is not None
    with fake_endpoint(latency=0.03, slots=1) as server:
        body.write_text(
            json.dumps(
                {"service": "hugging_face", "service_settings": {"url": server.embed_url, "api_key": "hf_file_key"}}
            )
        )
        base = [script, "embed", str(source), "-o", str(output), "--rows-per-part", "25", "--batch-size", "5"]
        base += ["--max-concurrency", "1", "--no-progress"]
        _interrupt([*base, "--endpoint", str(body)], parts)
        edits = {
            "endpoint": lambda: body.write_text(
                json.dumps(
                    {
                        "service": "hugging_face",
                        "service_settings": {"url": server.embed_url, "api_key": "hf_file_key"},
                        "chunking_settings": {"strategy": "word", "max_chunk_size": 20, "overlap": 5},
                    }
                )
            ),
            "input": lambda: source.write_text(source.read_text().replace('"tag": "a"', '"tag": "b"', 1)),
        }
        original_body, original_source = body.read_text(), source.read_text()
        for name, edit in edits.items():
            edit()  # one edit after the kill: the same command no longer describes the same job
            sent = len(server.log)
            refused = subprocess.run([*base, "--endpoint", str(body)], capture_output=True, text=True, timeout=60)
            assert refused.returncode == 2, (name, refused.stderr)
            named = {"endpoint": "changed: the endpoint", "input": "changed: the input's rows"}
            assert named[name] in refused.stderr, (name, refused.stderr)
            assert len(server.log) == sent  # refused before any request
            body.write_text(original_body)
            source.write_text(original_source)
        edits["endpoint"]()
        restarted = subprocess.run([*base, "--endpoint", str(body), "--restart"], capture_output=True, text=True)
        assert restarted.returncode == 0, restarted.stderr
    table = pq.read_table(output).to_pylist()
    assert [r["n"] for r in table] == list(range(400))
    assert all(r["embedding"] == pytest.approx(expected_vector(r["text"]), abs=1e-6) for r in table)


def test_two_runs_on_one_output_the_second_exits_2_naming_the_first(tmp_path: Path) -> None:
    source, output, parts = _job(tmp_path, 200)
    script = shutil.which("hf-infer", path=os.path.dirname(sys.executable))
    assert script is not None
    with fake_endpoint(latency=0.05, slots=1) as server:
        args = [script, "embed", str(source), "-o", str(output), "--url", server.embed_url, "--rows-per-part", "20"]
        args += ["--batch-size", "5", "--max-concurrency", "1", "--no-progress"]
        first = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not list(parts.glob("part-*.parquet")) and time.monotonic() < deadline:
            time.sleep(0.02)
        second = subprocess.run(args, capture_output=True, text=True, timeout=60)
        assert second.returncode == 2 and f"pid {first.pid}" in second.stderr, second.stderr
        assert first.wait(120) == 0
    assert pq.read_table(output).num_rows == 200  # exactly the input's rows


def test_a_finished_output_is_up_to_date_and_overwrite_redoes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, output, _ = _job(tmp_path, 30)
    with fake_endpoint() as server:
        monkeypatch.setenv("HF_INFER_URL", server.embed_url)  # no --url: the adapters' variable
        assert hf_infer("embed", str(source), "-o", str(output)).returncode == 0
        before = len(server.log)
        again = hf_infer("embed", str(source), "-o", str(output))
        assert again.returncode == 0 and "is up to date" in again.stderr
        probes = [entry.inputs for entry in server.log[before:]]
        assert probes == [[PROBE_TEXT]]  # no text of the input: one probe of the model
        redone = hf_infer("embed", str(source), "-o", str(output), "--overwrite")
        assert redone.returncode == 0 and len(server.log) > before + 1
        source.write_text(source.read_text().replace("hello", "goodbye"))
        other = hf_infer("embed", str(source), "-o", str(output))
        assert other.returncode == 2 and "--overwrite replaces it" in other.stderr


def test_output_problems_and_late_bad_rows_exit_2_before_any_request(tmp_path: Path) -> None:
    late_surrogate = tmp_path / "late.jsonl"
    late_surrogate.write_text(
        "".join(json.dumps({"text": f"row {i}"}) + "\n" for i in range(3000)) + '{"text": "bad \\ud800 row"}\n'
    )
    late_type = tmp_path / "types.jsonl"
    late_type.write_text(
        "".join(json.dumps({"n": i, "text": f"row {i}"}) + "\n" for i in range(1000)) + '{"n": "x", "text": "t"}\n'
    )
    (tmp_path / "a-folder.parquet").mkdir()
    cases = [
        ([str(late_surrogate)], "line 3001: the text holds a lone surrogate"),
        ([str(late_type)], "line 1001: column 'n' is text here, a number in the rows before"),
        ([str(late_type), "-o", str(tmp_path / "a-folder.parquet")], "a-folder.parquet: a folder"),
        ([str(late_type), "-o", str(tmp_path / "no" / "such" / "o.parquet")], "does not exist"),
        ([str(late_type), "--rows-per-part", "0"], "--rows-per-part and --batch-size must be positive"),
    ]
    with fake_endpoint() as server:
        for args, message in cases:
            output = ["-o", str(tmp_path / "out.parquet")] if "-o" not in args else []
            result = hf_infer("embed", *args, *output, "--url", server.embed_url)
            assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
            assert "Traceback" not in result.stderr
        assert server.log == []


def test_temporary_files_are_new_and_never_follow_a_planted_link(tmp_path: Path) -> None:
    source, output, _ = _job(tmp_path, 20)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    # The names a predictable scheme would use (".out.parquet.<pid>.tmp"), for the next pids.
    last = int(Path("/proc/sys/kernel/ns_last_pid").read_text())
    for pid in range(last + 1, last + 400):
        (tmp_path / f".{output.name}.{pid}.tmp").symlink_to(victim)
    with fake_endpoint() as server:
        assert hf_infer("embed", str(source), "-o", str(output), "--url", server.embed_url).returncode == 0
    assert victim.read_text() == "precious" and pq.read_table(output).num_rows == 20


def test_a_key_in_an_inline_endpoint_body_is_warned_of(tmp_path: Path) -> None:
    source, output, _ = _job(tmp_path, 3)
    with fake_endpoint() as server:
        body = {"service": "hugging_face", "service_settings": {"url": server.embed_url, "api_key": "hf_inline_123"}}
        result = hf_infer("embed", str(source), "-o", str(output), "--endpoint", json.dumps(body))
    assert result.returncode == 0 and "holds an api_key" in result.stderr and "HF_TOKEN" in result.stderr
    assert "hf_inline_123" not in result.stderr


def test_memory_is_bounded_by_a_part_not_by_the_input(tmp_path: Path) -> None:
    """A 100 MB JSONL (large non-text columns) peaks within 100 MiB of a 10-row input's run, default options."""
    small, large = tmp_path / "small.jsonl", tmp_path / "large.jsonl"
    blob = "x" * 100_000
    small.write_text("".join(json.dumps({"blob": blob, "text": f"row {i}"}) + "\n" for i in range(10)))
    with large.open("w") as file:
        for i in range(1000):
            file.write(json.dumps({"blob": blob, "text": f"row {i}"}) + "\n")
    peaks = []
    with fake_endpoint(log_inputs=False) as server:
        for source in (small, large):
            code = (
                "import resource, sys; from hf_infer_server._cli import main; rc = main(sys.argv[1:]); "
                "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(rc)"
            )
            args = ["embed", str(source), "-o", str(tmp_path / f"{source.stem}.parquet"), "--url", server.embed_url]
            run = subprocess.run(
                [sys.executable, "-c", code, *args, "--no-progress"],
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert run.returncode == 0, run.stderr
            peaks.append(int(run.stderr.split()[-1]) / 1024)  # MiB
    assert peaks[1] - peaks[0] <= 100, peaks
    assert pq.read_table(tmp_path / "large.parquet").num_rows == 1000
