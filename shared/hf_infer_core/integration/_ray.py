"""Embed a Ray Data dataset on a cluster: one call, one rate budget for every worker (extra ``ray``).

:func:`embed_dataset` runs ``map_batches`` with a callable class: each of ``concurrency`` actors
creates one :class:`~hf_infer_core.EmbeddingClient` when it starts and closes it when it goes.
Batches travel as pyarrow tables; the vectors come back as a ``fixed_size_list<float32>``
column, which ``write_parquet`` and vector-store loaders take as it is, beside every column the
rows had. With ``chunks=True`` each row becomes one row per chunk.

The budget: with a Redis ``rate_limit_backend`` every actor, on every node, draws on one budget
of ``requests_per_minute``; with ``"local"`` each actor gets ``requests_per_minute // concurrency``
(said in a log line when the job is planned), so the cluster as a whole keeps the limit.

A batch that fails for good fails the job with its typed error (``indices``: the failing rows'
positions within their Ray batch). Ray retries a task whose actor died; a task's output is
committed whole or not at all, so a retry never duplicates rows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..base._errors import ConfigError, InvalidInputError
from ..config import DEFAULT_INFERENCE_ID, InferenceEndpoint
from ..embeddings._options import EmbeddingOptions
from ..embeddings._sync import EmbeddingClient

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    import ray.data
    from numpy.typing import NDArray

__all__ = ["CHUNK_COLUMNS", "embed_dataset", "resolve_endpoint"]

logger = logging.getLogger("hf_infer_core")

# The columns chunks=True adds beside the source row's and the vector.
CHUNK_COLUMNS = ("chunk_index", "chunk_start", "chunk_end", "chunk_text")


def resolve_endpoint(endpoint: InferenceEndpoint | Mapping[str, object] | str) -> InferenceEndpoint:
    """An endpoint from an :class:`InferenceEndpoint`, an Elasticsearch body (dict or JSON text) or a URL."""
    if isinstance(endpoint, InferenceEndpoint):
        return endpoint
    if isinstance(endpoint, Mapping):
        return InferenceEndpoint.from_request("text_embedding", DEFAULT_INFERENCE_ID, endpoint)
    if isinstance(endpoint, str):
        if endpoint.lstrip().startswith("{"):
            return InferenceEndpoint.from_request("text_embedding", DEFAULT_INFERENCE_ID, json.loads(endpoint))
        return InferenceEndpoint.from_url(endpoint)
    raise TypeError(
        f"endpoint must be an InferenceEndpoint, an Elasticsearch body or a URL, got {type(endpoint).__name__}"
    )


def _with_rate(endpoint: InferenceEndpoint, requests_per_minute: int) -> InferenceEndpoint:
    rate = endpoint.service_settings.rate_limit.model_copy(update={"requests_per_minute": requests_per_minute})
    settings = endpoint.service_settings.model_copy(update={"rate_limit": rate})
    return endpoint.model_copy(update={"service_settings": settings})


class _Embedder:
    """The callable class of ``map_batches``: one client per actor, pyarrow in and out."""

    def __init__(
        self, endpoint: InferenceEndpoint, options: EmbeddingOptions, text_column: str, output_column: str, chunks: bool
    ) -> None:
        self._client = EmbeddingClient(endpoint, options=options)
        self._text_column = text_column
        self._output_column = output_column
        self._chunks = chunks

    def __call__(self, batch: pa.Table) -> pa.Table:
        import numpy as np
        import pyarrow as pa

        if self._text_column not in batch.column_names:
            raise KeyError(f"text_column [{self._text_column}] is not a column of the dataset: {batch.column_names}")
        texts = batch.column(self._text_column).to_pylist()
        for row, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidInputError(
                    f"row {row} of the batch has no text in [{self._text_column}] ({text!r})", index=row
                )
        if not self._chunks:
            vectors = self._client.embed_documents(texts, as_numpy=True)
            return batch.append_column(self._output_column, _vector_column(vectors, self._client.dimensions))
        per_text = self._client.embed_chunks(texts)
        rows = [row for row, chunks in enumerate(per_text) for _ in chunks]
        flat = [chunk for chunks in per_text for chunk in chunks]
        out = batch.take(pa.array(rows, pa.int64()))
        columns = {
            "chunk_index": pa.array([k for chunks in per_text for k in range(len(chunks))], pa.int32()),
            "chunk_start": pa.array([c.start for c in flat], pa.int64()),
            "chunk_end": pa.array([c.end for c in flat], pa.int64()),
            "chunk_text": pa.array([c.text for c in flat], pa.string()),
        }
        for name, column in columns.items():
            out = out.append_column(name, column)
        vectors = np.asarray([c.embedding for c in flat], dtype=np.float32)
        return out.append_column(self._output_column, _vector_column(vectors, self._client.dimensions))

    def __del__(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            client.close()


def _vector_column(vectors: NDArray[np.float32], dimensions: int | None) -> pa.FixedSizeListArray:
    import numpy as np
    import pyarrow as pa

    size = vectors.shape[1] if vectors.ndim == 2 and vectors.shape[0] else (dimensions or 1)
    values = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), pa.float32())
    return pa.FixedSizeListArray.from_arrays(values, size)


def _check_column(ds: ray.data.Dataset, text_column: str) -> None:
    # Checked while planning (the schema is known without reading the data where the source
    # states it): a missing column would otherwise fail every task with a raw KeyError.
    schema = ds.schema(fetch_if_missing=False)
    names = list(getattr(schema, "names", None) or [])
    if names and text_column not in names:
        raise ConfigError(
            [f"[text_column] the dataset has no column {text_column!r} (its columns: {', '.join(names)})"]
        )


def _budgeted(resolved: InferenceEndpoint, concurrency: int, rate_limit_backend: str) -> InferenceEndpoint:
    """The endpoint each actor gets: with a local budget, its share of ``requests_per_minute`` (said in a log line)."""
    rpm = resolved.requests_per_minute
    if rpm is None:
        logger.info("hf-infer embed_dataset: %d actors, no client-side rate limit", concurrency)
    elif rate_limit_backend == "local":
        share = max(1, rpm // concurrency)
        logger.info(
            "hf-infer embed_dataset: %d actors x %d requests/min each (requests_per_minute=%d split evenly; "
            "a Redis rate_limit_backend shares one budget instead)",
            concurrency,
            share,
            rpm,
        )
        return _with_rate(resolved, share)
    else:
        logger.info(
            "hf-infer embed_dataset: %d actors sharing one budget of %d requests/min in Redis", concurrency, rpm
        )
    return resolved


def embed_dataset(
    ds: ray.data.Dataset,
    endpoint: InferenceEndpoint | Mapping[str, object] | str,
    *,
    text_column: str = "text",
    output_column: str = "embedding",
    chunks: bool = False,
    concurrency: int = 2,
    rate_limit_backend: str = "local",
    rows_per_batch: int | None = None,
    num_cpus: float = 0.5,
    **client_options: object,
) -> ray.data.Dataset:
    """Return ``ds`` with an ``output_column`` of float32 vectors (or one row per chunk with ``chunks=True``).

    Args:
        ds: The dataset; ``text_column`` holds the texts (strings).
        endpoint: An :class:`InferenceEndpoint`, an Elasticsearch ``PUT _inference`` body (dict
            or JSON text) or a URL (key from ``HF_TOKEN``).
        text_column: The column to embed.
        output_column: The vector column to add (``fixed_size_list<float32>``).
        chunks: One row per chunk (the source row's columns, ``chunk_index``, ``chunk_start``,
            ``chunk_end``, ``chunk_text`` and the vector) instead of one pooled vector per row.
        concurrency: Actors, each with one client.
        rate_limit_backend: ``"local"`` (each actor gets ``requests_per_minute // concurrency``)
            or a Redis URL (one budget shared by every actor on every node).
        rows_per_batch: Rows per ``map_batches`` call (default ``batch_size * max_concurrency * 2``,
            so each actor keeps its client's concurrency busy).
        num_cpus: CPUs reserved per actor. An actor mostly waits on the endpoint (chunking and
            parsing are its CPU work), and a whole CPU each could leave none for the tasks that
            read the data on a small cluster, which would then wait for ever.
        **client_options: :class:`EmbeddingOptions` fields (``batch_size``, ``max_concurrency``, ...;
            ``cache``: a file every actor on one machine shares, or a ``redis://`` URL every node shares).

    Raises:
        ImportError: Ray Data is not installed (extra ``ray``).
        ConfigError: the endpoint or an option is invalid (before any work is scheduled).
    """
    try:
        import ray.data
    except ImportError as err:
        raise ImportError('embed_dataset needs Ray Data: pip install "hf-infer[ray]"') from err
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive integer, got {concurrency!r}")
    resolved = resolve_endpoint(endpoint)
    options = EmbeddingOptions.build(None, {**client_options, "rate_limit_backend": rate_limit_backend})
    _check_column(ds, text_column)
    resolved = _budgeted(resolved, concurrency, rate_limit_backend)
    embedded = ds.map_batches(
        _Embedder,
        fn_constructor_kwargs={
            "endpoint": resolved,
            "options": options,
            "text_column": text_column,
            "output_column": output_column,
            "chunks": chunks,
        },
        batch_format="pyarrow",
        batch_size=rows_per_batch or options.batch_size * options.window * 2,
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_cpus=num_cpus,
        zero_copy_batch=True,
    )
    # Ray Data wraps a failed batch's exception in UserCodeException and drops the original on
    # the way to the driver; this dataset's own context (a copy: no other dataset changes)
    # raises the typed hf-infer error itself, with its status code and row indices.
    embedded.context.raise_original_map_exception = True
    return embedded
