"""``hf-infer embed``: a folder of text or markdown files, a JSONL file or a Parquet file, embedded into Parquet.

Every input column is kept and an ``embedding`` column added (float32); with ``--chunks``, a row
per chunk with its offsets instead. The input is read in two streaming passes (``_embed_input``):
the first checks every row before anything is sent and digests it, the second embeds; memory
holds one part of rows (``--rows-per-part``) and their vectors, whatever the input's size. Rows
are written in parts (``OUTPUT.partial/part-<first row>-<rows>.parquet``, each whole or absent);
after Ctrl-C or a crash the same command resumes from the first row not written, and only under
the same job (``_embed_job``): a run under other options stops, naming what changed. The parts
become the output file in one rename at the end: there is never a half-written output file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ._embed_input import BadInput, Row, rows_of, scan
from ._embed_job import Job, assemble, check_parts, describe, lock, parts_for, up_to_date, write_part

__all__ = ["EXAMPLES", "BadInput", "add_embed_parser", "run_embed"]

logger = logging.getLogger("hf_infer_server")

# A part ends at --rows-per-part rows or at this much input, whichever comes first: what bounds
# memory (a part's rows, their Arrow table and vectors) when rows are large.
PART_BYTES = 8 << 20

EXAMPLES = """examples:
  # a folder of .txt/.md files (columns: path, text) against a local TEI server
  hf-infer embed docs/ -o docs.parquet --url http://127.0.0.1:8080

  # JSONL with a "body" field, configured like Elasticsearch (the key from HF_TOKEN)
  hf-infer embed articles.jsonl -o articles.parquet --text-field body --endpoint endpoint.json --inference-id my-e5

  # Parquet in, one row per chunk with its offsets out, a cache and a shared Redis budget
  hf-infer embed corpus.parquet -o chunks.parquet --chunks --url https://x.endpoints.huggingface.cloud \\
      --cache ~/.cache/hf-infer.sqlite --rate-limit-backend redis://127.0.0.1:6379/0

Interrupted (Ctrl-C, a crash)? Run the same command again: rows already written are not sent again.
Run it once more when it has finished: the output is up to date, and no text is sent (one probe
request checks the model). Other options than the interrupted run's stop with exit 2 naming what
changed (--restart starts over); a finished output of other options is replaced only with --overwrite.
The endpoint is --url, else --endpoint, else HF_INFER_URL. The api key comes from the --endpoint body,
else HF_TOKEN, else HUGGINGFACEHUB_API_TOKEN (not from the command line, which other users can read).
Memory: the input is read in streaming passes; one part is held at once (--rows-per-part rows or 8 MiB
of input, whichever is less, with their vectors: about 100 MiB at most), whatever the input's size.
"""


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
    where = embed.add_mutually_exclusive_group()
    where.add_argument("--url", help="the endpoint URL (a TEI server, an Inference Endpoint); default HF_INFER_URL")
    where.add_argument("--endpoint", help="an Elasticsearch PUT _inference/text_embedding body: JSON text or a file")
    embed.add_argument("--inference-id", default="hf-infer", help="the endpoint's id (default hf-infer)")
    embed.add_argument("--chunking", help="chunking_settings as JSON, with --url (default: Elasticsearch's)")
    embed.add_argument("--requests-per-minute", type=int, help="client-side rate limit, with --url (default: none)")
    embed.add_argument("--rate-limit-backend", default="local", help="'local' or a redis:// URL (one shared budget)")
    embed.add_argument("--cache", help="a chunk-level vector cache: a SQLite path or a redis:// URL")
    embed.add_argument(
        "--max-concurrency", default="auto", help='requests in flight, or "auto" (the default: found from the answers)'
    )
    embed.add_argument("--batch-size", type=int, default=32, help="texts per request (default 32)")
    embed.add_argument("--timeout", type=float, default=30.0, help="seconds per attempt (default 30)")
    embed.add_argument("--rows-per-part", type=int, default=1000, help="rows written at a time (default 1000)")
    embed.add_argument(
        "--restart", action="store_true", help="discard the parts of an interrupted run of other options"
    )
    embed.add_argument("--overwrite", action="store_true", help="embed again into a finished output (even up to date)")
    embed.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_embed(args: argparse.Namespace) -> int:
    """Run ``hf-infer embed``; the exit status (0, 1 for an endpoint failure, 2 for bad input, 130 for Ctrl-C)."""
    try:
        import pyarrow  # noqa: F401 - checked first: the message names what to install
    except ImportError:
        print("hf-infer embed needs pyarrow: pip install 'hf-infer[ray]' (or pip install pyarrow)", file=sys.stderr)
        return 2
    from hf_infer_core import ConfigError

    output = Path(args.output)
    try:
        _check_output(output, args)
        endpoint = _endpoint(args)
        found = scan(Path(args.input), args.text_field)  # every row checked before any request
        client = _client(endpoint, args)
    except (BadInput, ConfigError, ValueError) as err:
        print(f"hf-infer embed: {err}", file=sys.stderr)
        return 2
    try:
        with client, lock(output):
            return _run_job(client, endpoint, found.digest, found.rows, output, args)
    except BadInput as err:
        print(f"hf-infer embed: {err}", file=sys.stderr)
        return 2


def _run_job(client: Any, endpoint: Any, digest: str, total: int, output: Path, args: argparse.Namespace) -> int:
    from hf_infer_core import HFInferError
    from hf_infer_core.cache._identity import PROBE_TEXT

    # Parts of other options stop the run before any request; the model is compared once asked.
    check_parts(output, describe(digest, args.text_field, args.chunks, endpoint, None), args.restart)
    try:
        (probe,) = client.embed([PROBE_TEXT])  # the model's identity, as the cache checks it
        job = describe(digest, args.text_field, args.chunks, endpoint, probe)
        if up_to_date(output, job) and not args.overwrite:
            print(
                f"hf-infer embed: {output} is up to date ({total} rows, same input, options and model)", file=sys.stderr
            )
            return 0
        if output.exists() and not args.overwrite and not output.with_name(output.name + ".partial").exists():
            raise BadInput(f"{output} exists, written by another job or another tool; --overwrite replaces it")
        written = _embed_parts(client, total, output, job, args)
    except HFInferError as err:
        print(f"hf-infer embed: the endpoint failed: {err}", file=sys.stderr)
        print("hf-infer embed: rows written so far are kept; run the same command to resume", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nhf-infer embed: interrupted; run the same command to resume", file=sys.stderr)
        return 130
    print(f"hf-infer embed: {total} rows, {written} written to {output}", file=sys.stderr)
    return 0


def _check_output(output: Path, args: argparse.Namespace) -> None:
    """Every problem of the output path and the numbers, before a row is read or a request sent."""
    if args.rows_per_part < 1 or args.batch_size < 1:
        raise ValueError("--rows-per-part and --batch-size must be positive integers")
    if output.is_dir():
        raise BadInput(f"{output}: a folder; -o names the Parquet file to write")
    if not output.parent.is_dir():
        raise BadInput(f"{output}: its folder {output.parent} does not exist")
    if not os.access(output.parent, os.W_OK | os.X_OK):
        raise BadInput(f"{output}: its folder {output.parent} cannot be written")


def _client(endpoint: Any, args: argparse.Namespace) -> Any:
    from hf_infer_core import EmbeddingClient

    concurrency: Any = "auto" if args.max_concurrency == "auto" else _integer(args.max_concurrency)
    return EmbeddingClient(
        endpoint,
        batch_size=args.batch_size,
        max_concurrency=concurrency,
        timeout=args.timeout,
        rate_limit_backend=args.rate_limit_backend,
        cache=args.cache,
    )


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
        if source.lstrip().startswith("{"):
            if '"api_key"' in source:
                logger.warning(
                    "hf-infer embed: the --endpoint body on the command line holds an api_key, which other users of "
                    "this machine can read (ps, shell history): leave it out and set HF_TOKEN instead"
                )
        else:
            try:
                source = Path(source).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as err:
                raise BadInput(f"{args.endpoint}: cannot read the endpoint body ({err})") from None
        return InferenceEndpoint.from_request("text_embedding", args.inference_id, source)
    url = args.url or os.environ.get("HF_INFER_URL")
    if not url:
        raise ValueError("no endpoint: give --url or --endpoint, or set HF_INFER_URL (as the adapters read it)")
    chunking = None
    if args.chunking:
        try:
            chunking = json.loads(args.chunking)
        except json.JSONDecodeError as err:
            raise ValueError(f"--chunking is not JSON: {err}") from None
    return InferenceEndpoint.from_url(
        url,
        inference_id=args.inference_id,
        requests_per_minute=args.requests_per_minute,
        chunking_settings=chunking,
    )


def _embed_parts(client: Any, total: int, output: Path, job: Job, args: argparse.Namespace) -> int:
    import pyarrow as pa

    parts, done = parts_for(output, job, args.restart)
    rows = rows_of(Path(args.input), args.text_field, start=done)
    with _progress(total, done, args.no_progress) as bar:
        first = done
        while group := _part(rows, args.rows_per_part):
            records = _chunk_records(client, group) if args.chunks else _row_records(client, group)
            table = pa.Table.from_pylist(records)
            table = table.set_column(
                table.column_names.index("embedding"),
                "embedding",
                table.column("embedding").cast(pa.list_(pa.float32())),
            )
            write_part(parts, first, table)
            first += len(group)
            bar.update(len(group))
    return assemble(parts, output, job)


def _part(rows: Iterator[Row], most: int) -> list[Row]:
    """The next part: ``most`` rows, or fewer once they hold :data:`PART_BYTES` of input (large rows)."""
    part: list[Row] = []
    size = 0
    for row in rows:
        part.append(row)
        size += row.size
        if len(part) >= most or size >= PART_BYTES:
            break
    return part


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
