"""``hf-infer embed``'s job: what decides its rows, the lock on its output, its parts and the final file.

A job is described by everything that decides an output row (:func:`describe`): every column of
every input row, the text field, ``--chunks``, the endpoint's configuration (URL, chunking,
service settings; never the key) and the model's identity (the vector of the cache's probe text,
matched within its tolerance, see hf_infer_core's cache/_identity.py). Parts written under one
description are never joined with rows of another: a resume under other options stops, naming
what changed. One run per output at a time (an advisory lock beside it). Every temporary file is
made with ``O_EXCL`` in the output's own folder (a name nobody can predict or plant a link at).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from hf_infer_core.cache._identity import same_model

from ._embed_input import BadInput

__all__ = ["Job", "assemble", "changes", "check_parts", "describe", "lock", "parts_for", "up_to_date", "write_part"]

_METADATA = b"hf-infer-job"
_NAMES = {
    "input": "the input's rows",
    "text_field": "--text-field",
    "chunks": "--chunks",
    "endpoint": "the endpoint (--url, --endpoint body, --chunking, --inference-id)",
    "model": "the model behind the endpoint",
}


class Job(dict[str, Any]):
    """A job's description: ``input``, ``text_field``, ``chunks``, ``endpoint``, ``model`` (its probe vector)."""

    @property
    def fingerprint(self) -> str:
        """A digest of everything but the model (whose probe vector is compared within a tolerance)."""
        rest = {k: v for k, v in self.items() if k != "model"}
        return hashlib.blake2b(json.dumps(rest, sort_keys=True).encode(), digest_size=16).hexdigest()


def describe(input_digest: str, text_field: str, chunks: bool, endpoint: Any, probe: Sequence[float] | None) -> Job:
    """The description of a job (see the module's docstring); ``probe`` ``None``: the model not asked yet."""
    settings = json.loads(endpoint.model_dump_json())
    settings.get("service_settings", {}).pop("api_key", None)  # a new key embeds the same rows
    settings.get("service_settings", {}).pop("rate_limit", None)  # and so does another budget
    model = list(probe) if probe is not None else None
    return Job(input=input_digest, text_field=text_field, chunks=chunks, endpoint=settings, model=model)


def changes(old: dict[str, Any], new: Job) -> list[str]:
    """What differs between two descriptions, named as a user knows it; empty when the same job."""
    changed = [_NAMES[k] for k in _NAMES if k != "model" and old.get(k) != new.get(k)]
    model = old.get("model")
    if new["model"] is not None and (not isinstance(model, list) or not same_model(model, new["model"])):
        changed.append(_NAMES["model"])
    return changed


@contextlib.contextmanager
def lock(output: Path) -> Iterator[None]:
    """Hold ``OUTPUT.lock`` for the run: a second run on the same output exits 2, naming the first's pid."""
    path = output.with_name(output.name + ".lock")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as err:
        raise BadInput(f"{output}: its folder cannot be written ({err.strerror or err})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise BadInput(
                f"{output}: another hf-infer embed (pid {holder}) is writing it; wait for it to end"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    finally:
        os.close(fd)


def up_to_date(output: Path, job: Job) -> bool:
    """True when ``output`` is a finished output of this very job (same rows, options and model)."""
    import pyarrow.parquet as pq

    if not output.is_file():
        return False
    try:
        metadata = pq.read_schema(output).metadata or {}
        old = json.loads(metadata[_METADATA])
    except (OSError, KeyError, ValueError):
        return False
    return isinstance(old, dict) and not changes(old, job)


def check_parts(output: Path, job: Job, restart: bool) -> bool:
    """False when ``output`` has parts of another job (``job``'s model ``None``: not compared).

    Raises :class:`BadInput` (exit 2, naming what changed) for them unless ``restart``.
    """
    parts = output.with_name(output.name + ".partial")
    if not parts.exists():
        return True
    try:
        old = json.loads((parts / "job.json").read_text())
    except (OSError, ValueError):
        old = {}
    changed = changes(old, job) if isinstance(old, dict) else []
    changed = changed or ([] if isinstance(old, dict) and old else ["the partial output's description is unreadable"])
    if changed and not restart:
        raise BadInput(
            f"{parts} holds rows written under other options (changed: {', '.join(changed)}); "
            "run with --restart to start over, or with the options of that run to finish it"
        )
    return not changed


def parts_for(output: Path, job: Job, restart: bool) -> tuple[Path, int]:
    """The folder of ``output``'s parts and the rows already written there by this job.

    Parts of another job stop the run (exit 2, naming what changed) unless ``restart``.
    """
    parts = output.with_name(output.name + ".partial")
    manifest = parts / "job.json"
    if not check_parts(output, job, restart):
        shutil.rmtree(parts)
    if not parts.exists():
        parts.mkdir()
        _write_new(manifest, json.dumps(job).encode())
        return parts, 0
    for leftover in parts.glob("*.tmp"):  # a part a crash left half-written
        leftover.unlink()
    done = 0
    for part in sorted(parts.glob("part-*.parquet")):
        first, count = (int(n) for n in part.stem.removeprefix("part-").split("-"))
        if first != done:
            break
        done += count
    return parts, done


def write_part(parts: Path, first: int, table: Any) -> None:
    """One part, whole or absent: written to a new temporary file, then renamed."""
    import pyarrow.parquet as pq

    name = f"part-{first:012d}-{table.num_rows}.parquet"
    with _temporary(parts, ".part-") as (file, temporary):
        pq.write_table(table, file)
        file.close()
        os.replace(temporary, parts / name)


def assemble(parts: Path, output: Path, job: Job) -> int:
    """The parts, in order, as one Parquet file (the job in its metadata) renamed onto ``output``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted(parts.glob("part-*.parquet"))
    schema = pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="permissive")
    schema = schema.with_metadata({**(schema.metadata or {}), _METADATA: json.dumps(job).encode()})
    written = 0
    with _temporary(output.parent, f".{output.name}.") as (file, temporary):
        with pq.ParquetWriter(file, schema) as writer:
            for part in files:
                table = pq.read_table(part)
                written += table.num_rows
                writer.write_table(table.cast(schema))
        file.close()
        os.replace(temporary, output)
    shutil.rmtree(parts)
    return written


@contextlib.contextmanager
def _temporary(folder: Path, prefix: str) -> Iterator[tuple[Any, Path]]:
    """A new file in ``folder`` (``O_EXCL``: never an existing file or a planted link), removed unless renamed."""
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=folder)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as file:
            yield file, path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
