"""``hf-infer embed``'s input, read in streaming passes: memory holds one row (a Parquet record batch), never the file.

The first pass checks every row before anything is sent (encoding, JSON, the text field, lone
surrogates, a column whose type changes) and digests every column of every row, so a resumed job
knows its input is the same; the second pass hands the rows to the embedding loop.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["TEXT_SUFFIXES", "BadInput", "Row", "Scan", "rows_of", "scan"]

TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".text", ".rst")
# Parquet rows read at a time: a record batch, the unit of memory of both passes.
_PARQUET_BATCH = 1024


class BadInput(Exception):
    """The input cannot be embedded as given: the message names the file (and row)."""


@dataclass
class Row:
    """One input row: its columns, the text to embed, and about how many bytes it took in the input."""

    columns: dict[str, Any]
    text: str
    size: int = 0


@dataclass
class Scan:
    """What the checking pass found: the row count and a digest of every column of every row."""

    rows: int
    digest: str


def scan(path: Path, field: str) -> Scan:
    """Check every row of ``path`` (one streaming pass); :class:`BadInput` naming the file and row for the first bad one."""
    digest = hashlib.blake2b(digest_size=16)
    kinds: dict[str, str] = {}
    count = 0
    for where, row in _rows(path, field):
        _check_text(row.text, where)
        for name, value in row.columns.items():
            kind = _kind(value)
            seen = kinds.setdefault(name, kind)
            if kind != seen and "null" not in (kind, seen):
                raise BadInput(
                    f"{where}: column {name!r} is {kind} here, {seen} in the rows before (one type per column)"
                )
            if seen == "null":
                kinds[name] = kind
        digest.update(json.dumps(row.columns, sort_keys=True, default=repr).encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
        count += 1
    if count == 0:
        raise BadInput(f"{path}: no rows")
    return Scan(count, digest.hexdigest())


def rows_of(path: Path, field: str, start: int = 0) -> Iterator[Row]:
    """The rows of ``path`` from row ``start`` on (checked by :func:`scan` first)."""
    for number, (_, row) in enumerate(_rows(path, field)):
        if number >= start:
            yield row


def _rows(path: Path, field: str) -> Iterator[tuple[str, Row]]:
    if not path.exists():
        raise BadInput(f"{path}: no such file or folder")
    if path.is_dir():
        return _folder(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return _jsonl(path, field)
    if suffix == ".parquet":
        return _parquet(path, field)
    raise BadInput(f"{path}: not a folder, a .jsonl or a .parquet file")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _check_text(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:  # a JSON "\ud800" escape: no UTF-8 for it, no endpoint takes it
        raise BadInput(
            f"{where}: the text holds a lone surrogate ({text[err.start]!r} at {err.start}), not text"
        ) from None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise BadInput(f"{path}: cannot be read ({err.strerror or err})") from None


def _folder(root: Path) -> Iterator[tuple[str, Row]]:
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
    if not files:
        raise BadInput(f"{root}: no {', '.join(TEXT_SUFFIXES)} files in this folder")
    for path in files:
        data = _read_bytes(path)
        if b"\x00" in data:
            raise BadInput(f"{path}: a binary file (it holds NUL bytes), not text")
        text = _decoded(data, str(path))
        yield str(path), Row({"path": str(path.relative_to(root)), "text": text}, text, len(data))


def _decoded(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BadInput(f"{where}: not valid UTF-8 (byte {err.start}: {data[err.start : err.start + 1]!r})") from None


def _jsonl(path: Path, field: str) -> Iterator[tuple[str, Row]]:
    try:
        file = path.open("rb")
    except OSError as err:
        raise BadInput(f"{path}: cannot be read ({err.strerror or err})") from None
    with file:
        for number, line in enumerate(file, 1):
            where = f"{path}, line {number}"
            if not line.strip():
                continue
            try:
                record = json.loads(_decoded(line, where))
            except json.JSONDecodeError as err:
                raise BadInput(f"{where}: not JSON ({err.msg}, column {err.colno})") from None
            if not isinstance(record, dict):
                raise BadInput(f"{where}: not a JSON object")
            yield where, Row(record, _text_of(record.get(field, _MISSING), field, where), len(line))


_MISSING = object()


def _text_of(value: Any, field: str, where: str) -> str:
    if value is _MISSING:
        raise BadInput(f"{where}: no field {field!r} (--text-field names the field to embed)")
    if not isinstance(value, str):
        raise BadInput(f"{where}: field {field!r} is {type(value).__name__ if value is not None else 'null'}, not text")
    return value


def _parquet(path: Path, field: str) -> Iterator[tuple[str, Row]]:
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(path)
    except OSError as err:
        raise BadInput(f"{path}: cannot be read as Parquet ({err})") from None
    if field not in file.schema_arrow.names:
        raise BadInput(f"{path}: no column {field!r} (columns: {', '.join(file.schema_arrow.names)})")
    number = 0
    for batch in file.iter_batches(batch_size=_PARQUET_BATCH):
        size = batch.nbytes // max(batch.num_rows, 1)  # a row's share of its batch: the size that matters
        for record in batch.to_pylist():
            where = f"{path}, row {number}"
            yield where, Row(record, _text_of(record[field], field, where), size)
            number += 1
