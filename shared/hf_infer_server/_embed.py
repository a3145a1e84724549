"""``hf-infer embed``: a folder of text or markdown files, a JSONL file or a Parquet file, embedded into Parquet.

Every input column is kept and an ``embedding`` column added (float32); with ``--chunks``, a row
per chunk with its offsets instead. The input is read and checked whole before anything is sent
(its rows are held in memory: about the input's size; the vectors of one part at a time),
so bad input (a missing field, a binary file, invalid UTF-8, an unreadable path) stops the job with
exit status 2, naming the file and row, and nothing written. Rows are embedded and written in
parts (``OUTPUT.partial/part-<first row>.parquet``, each written whole or not at all); after Ctrl-C
or a crash the same command resumes from the first row not written, and the parts become the
output file in one rename at the end: there is never a half-written output file.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["EXAMPLES", "BadInput", "add_embed_parser", "run_embed"]

TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".text", ".rst")
EXAMPLES = """examples:
  # a folder of .txt/.md files (columns: path, text) against a local TEI server
  hf-infer embed docs/ -o docs.parquet --url http://127.0.0.1:8080

  # JSONL with a "body" field, configured like Elasticsearch (the key from the body or HF_TOKEN)
  hf-infer embed articles.jsonl -o articles.parquet --text-field body --endpoint endpoint.json --inference-id my-e5

  # Parquet in, one row per chunk with its offsets out, a cache and a shared Redis budget
  hf-infer embed corpus.parquet -o chunks.parquet --chunks --url https://x.endpoints.huggingface.cloud \\
      --cache ~/.cache/hf-infer.sqlite --rate-limit-backend redis://127.0.0.1:6379/0

Interrupted (Ctrl-C, a crash)? Run the same command again: rows already written are not sent again.
The api key comes from the --endpoint body, else HF_TOKEN, else HUGGINGFACEHUB_API_TOKEN (never from
the command line, which other users can read). The input's rows are held in memory (about its size);
vectors are written one part (--rows-per-part rows) at a time.
"""


class BadInput(Exception):
    """The input cannot be embedded as given: the message names the file (and row)."""


@dataclass
class Row:
    """One input row: its columns, and the text to embed."""

    columns: dict[str, Any]
    text: str


def add_embed_parser(commands: Any) -> None:
    """The ``embed`` sub-command's arguments."""
    embed = commands.add_parser(
        "embed",
        help="embed a folder of text files, a JSONL file or a Parquet file into Parquet",
        description="Embed a folder of .txt/.md files, a JSONL file or a Parquet file into a Parquet file: every "
        "input column kept, an 'embedding' column added (or, with --chunks, a row per chunk with its offsets).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    embed.add_argument("input", help="a folder, a .jsonl file or a .parquet file")
    embed.add_argument("-o", "--output", required=True, help="the Parquet file to write")
    embed.add_argument("--text-field", default="text", help="the JSONL field or Parquet column to embed (default text)")
    embed.add_argument(
        "--chunks",
        action="store_true",
        help="a row per chunk (chunk_index, chunk_start, chunk_end, "
        "chunk_text, embedding) instead of one pooled vector per row",
    )
    where = embed.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="the endpoint URL (a TEI server, a Hugging Face Inference Endpoint)")
    where.add_argument("--endpoint", help="an Elasticsearch PUT _inference/text_embedding body: JSON text or a file")
    embed.add_argument("--inference-id", default="hf-infer", help="the endpoint's id (default hf-infer)")
    embed.add_argument("--chunking", help="chunking_settings as JSON, with --url (default: Elasticsearch's)")
    embed.add_argument("--requests-per-minute", type=int, help="client-side rate limit, with --url (default: none)")
    embed.add_argument("--rate-limit-backend", default="local", help="'local' or a redis:// URL (one shared budget)")
    embed.add_argument("--cache", help="a chunk-level vector cache: a SQLite path or a redis:// URL")
    embed.add_argument("--max-concurrency", default="4", help='requests in flight, or "auto" (default 4)')
    embed.add_argument("--batch-size", type=int, default=32, help="texts per request (default 32)")
    embed.add_argument("--timeout", type=float, default=30.0, help="seconds per attempt (default 30)")
    embed.add_argument("--rows-per-part", type=int, default=1000, help="rows written at a time (default 1000)")
    embed.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_embed(args: argparse.Namespace) -> int:
    """Run ``hf-infer embed``; the exit status (0, 1 for an endpoint failure, 2 for bad input, 130 for Ctrl-C)."""
    try:
        import pyarrow  # noqa: F401 - checked first: the message names what to install
    except ImportError:
        print("hf-infer embed needs pyarrow: pip install 'hf-infer[ray]' (or pip install pyarrow)", file=sys.stderr)
        return 2
    from hf_infer_core import ConfigError, EmbeddingClient, HFInferError

    try:
        endpoint = _endpoint(args)
        rows = read_input(Path(args.input), args.text_field)
        concurrency: Any = "auto" if args.max_concurrency == "auto" else _integer(args.max_concurrency)
        client = EmbeddingClient(
            endpoint,
            batch_size=args.batch_size,
            max_concurrency=concurrency,
            timeout=args.timeout,
            rate_limit_backend=args.rate_limit_backend,
            cache=args.cache,
        )
    except (BadInput, ConfigError, ValueError) as err:
        print(f"hf-infer embed: {err}", file=sys.stderr)
        return 2
    output = Path(args.output)
    job = _fingerprint(args, rows)
    try:
        with client:
            written = _embed_parts(client, rows, output, job, args)
    except BadInput as err:
        print(f"hf-infer embed: {err}", file=sys.stderr)
        return 2
    except HFInferError as err:
        print(f"hf-infer embed: the endpoint failed: {err}", file=sys.stderr)
        print("hf-infer embed: rows written so far are kept; run the same command to resume", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nhf-infer embed: interrupted; run the same command to resume", file=sys.stderr)
        return 130
    print(f"hf-infer embed: {len(rows)} rows, {written} written to {output}", file=sys.stderr)
    return 0


def _integer(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f'--max-concurrency must be a positive integer or "auto", got {value!r}') from None
    return number


def _endpoint(args: argparse.Namespace) -> Any:
    from hf_infer_core import InferenceEndpoint

    if args.endpoint is not None:
        if args.chunking or args.requests_per_minute:
            raise ValueError("--chunking and --requests-per-minute go with --url; with --endpoint the body says them")
        source = args.endpoint
        if not source.lstrip().startswith("{"):
            try:
                source = Path(source).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as err:
                raise BadInput(f"{args.endpoint}: cannot read the endpoint body ({err})") from None
        return InferenceEndpoint.from_request("text_embedding", args.inference_id, source)
    chunking = None
    if args.chunking:
        try:
            chunking = json.loads(args.chunking)
        except json.JSONDecodeError as err:
            raise ValueError(f"--chunking is not JSON: {err}") from None
    return InferenceEndpoint.from_url(
        args.url,
        inference_id=args.inference_id,
        requests_per_minute=args.requests_per_minute,
        chunking_settings=chunking,
    )


# ------------------------------------------------------------------ reading and checking the input


def read_input(path: Path, text_field: str) -> list[Row]:
    """Every row of ``path``, checked; :class:`BadInput` naming the file and row for the first bad one."""
    if not path.exists():
        raise BadInput(f"{path}: no such file or folder")
    if path.is_dir():
        return _folder(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return _jsonl(path, text_field)
    if suffix == ".parquet":
        return _parquet(path, text_field)
    raise BadInput(f"{path}: not a folder, a .jsonl or a .parquet file")


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise BadInput(f"{path}: cannot be read ({err.strerror or err})") from None


def _folder(root: Path) -> list[Row]:
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
    if not files:
        raise BadInput(f"{root}: no {', '.join(TEXT_SUFFIXES)} files in this folder")
    rows = []
    for path in files:
        data = _read_bytes(path)
        if b"\x00" in data:
            raise BadInput(f"{path}: a binary file (it holds NUL bytes), not text")
        rows.append(Row({"path": str(path.relative_to(root))}, _decoded(data, str(path))))
    return rows


def _decoded(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BadInput(f"{where}: not valid UTF-8 (byte {err.start}: {data[err.start : err.start + 1]!r})") from None


def _jsonl(path: Path, field: str) -> list[Row]:
    rows = []
    for number, line in enumerate(_read_bytes(path).splitlines(), 1):
        where = f"{path}, line {number}"
        if not line.strip():
            continue
        try:
            record = json.loads(_decoded(line, where))
        except json.JSONDecodeError as err:
            raise BadInput(f"{where}: not JSON ({err.msg}, column {err.colno})") from None
        if not isinstance(record, dict):
            raise BadInput(f"{where}: not a JSON object")
        rows.append(Row(record, _text_of(record.get(field, _MISSING), field, where)))
    if not rows:
        raise BadInput(f"{path}: no rows")
    return rows


_MISSING = object()


def _text_of(value: Any, field: str, where: str) -> str:
    if value is _MISSING:
        raise BadInput(f"{where}: no field {field!r} (--text-field names the field to embed)")
    if not isinstance(value, str):
        raise BadInput(f"{where}: field {field!r} is {type(value).__name__ if value is not None else 'null'}, not text")
    return value


def _parquet(path: Path, field: str) -> list[Row]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except OSError as err:
        raise BadInput(f"{path}: cannot be read as Parquet ({err})") from None
    if field not in table.column_names:
        raise BadInput(f"{path}: no column {field!r} (columns: {', '.join(table.column_names)})")
    rows = []
    for number, record in enumerate(table.to_pylist()):
        rows.append(Row(record, _text_of(record[field], field, f"{path}, row {number}")))
    if not rows:
        raise BadInput(f"{path}: no rows")
    return rows


# ------------------------------------------------------------------ parts, resume, the final file


def _fingerprint(args: argparse.Namespace, rows: Sequence[Row]) -> str:
    """What makes a partial output this job's: the input's texts, the options that change the rows."""
    digest = hashlib.blake2b(digest_size=16)
    for row in rows:
        digest.update(row.text.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    digest.update(json.dumps([args.chunks, args.text_field, args.inference_id, args.url, args.endpoint]).encode())
    return digest.hexdigest()


def _parts_dir(output: Path) -> Path:
    return output.with_name(output.name + ".partial")


def _done_rows(parts: Path, job: str) -> int:
    """Rows already written by an earlier run of this job (parts contiguous from row 0)."""
    manifest = parts / "job.json"
    if not parts.exists():
        parts.mkdir(parents=True)
        manifest.write_text(json.dumps({"job": job}))
        return 0
    try:
        same = json.loads(manifest.read_text()).get("job") == job
    except (OSError, ValueError):
        same = False
    if not same:
        raise BadInput(
            f"{parts}: a partial output of another job (other input or options) is there; remove it to start over"
        )
    for leftover in parts.glob("*.tmp"):  # a part a crash left half-written
        leftover.unlink()
    done = 0
    for part in sorted(parts.glob("part-*.parquet")):
        first, count = (int(n) for n in part.stem.removeprefix("part-").split("-"))
        if first != done:
            break
        done += count
    return done


def _embed_parts(client: Any, rows: Sequence[Row], output: Path, job: str, args: argparse.Namespace) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = _parts_dir(output)
    done = _done_rows(parts, job)
    with _progress(len(rows), done, args.no_progress) as bar:
        for first in range(done, len(rows), args.rows_per_part):
            group = rows[first : first + args.rows_per_part]
            records = _chunk_records(client, group) if args.chunks else _row_records(client, group)
            table = pa.Table.from_pylist(records)
            table = table.set_column(
                table.column_names.index("embedding"),
                "embedding",
                table.column("embedding").cast(pa.list_(pa.float32())),
            )
            name = f"part-{first:012d}-{len(group)}.parquet"
            pq.write_table(table, parts / (name + ".tmp"))
            os.replace(parts / (name + ".tmp"), parts / name)  # a part is whole or absent
            bar.update(len(group))
    return _assemble(parts, output)


def _row_records(client: Any, group: Sequence[Row]) -> list[dict[str, Any]]:
    vectors = client.embed_documents([row.text for row in group])
    return [{**row.columns, "embedding": vector} for row, vector in zip(group, vectors, strict=True)]


def _chunk_records(client: Any, group: Sequence[Row]) -> list[dict[str, Any]]:
    records = []
    for row, chunks in zip(group, client.embed_chunks([row.text for row in group]), strict=True):
        for index, chunk in enumerate(chunks):
            records.append(
                {
                    **row.columns,
                    "chunk_index": index,
                    "chunk_start": chunk.start,
                    "chunk_end": chunk.end,
                    "chunk_text": chunk.text,
                    "embedding": chunk.embedding,
                }
            )
    return records


def _assemble(parts: Path, output: Path) -> int:
    """The parts, in order, as one Parquet file written beside ``output`` and renamed onto it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted(parts.glob("part-*.parquet"))
    schema = pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="permissive")
    temporary = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    written = 0
    try:
        with pq.ParquetWriter(temporary, schema) as writer:
            for file in files:
                table = pq.read_table(file)
                written += table.num_rows
                writer.write_table(table.cast(schema) if table.schema != schema else table)
        os.replace(temporary, output)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    shutil.rmtree(parts)
    return written


@contextlib.contextmanager
def _progress(total: int, done: int, disabled: bool) -> Iterator[Any]:
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm ships with the progress extra
        disabled = True
    if disabled:
        yield _NoBar()
        return
    bar = tqdm(total=total, initial=done, unit="row", desc="hf-infer embed", file=sys.stderr)
    try:
        yield bar
    finally:
        bar.close()


class _NoBar:
    def update(self, n: int) -> None:
        pass
