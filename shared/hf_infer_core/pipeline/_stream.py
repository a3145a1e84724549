"""Streaming without I/O: texts in lazily, batches out, results back in input order.

:class:`StreamAssembler` is the bookkeeping of a chunked task's streams (the embeddings'
``embed_iter`` / ``embed_chunks_iter``). The client feeds it one text's chunks at a time (:meth:`StreamAssembler.add`); it packs
them into batches of ``batch_size`` inputs, and hands back each batch when it is full.
The client sends batches (at most ``max_concurrency`` in flight, so it stops reading input while
the window is full) and reports each outcome (:meth:`complete`). :meth:`ready` then releases the
texts whose every chunk has its vector, in input order and never ahead of an earlier text. Memory
holds the window, not the corpus: finished texts leave at once.

A batch that fails for good turns into its error (:meth:`failure`), whose ``indices`` become the
positions of the texts in that batch, counted in the caller's iterable: the first is where to
resume, since every text before it has been yielded.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..base._errors import HFInferError
from ..text._chunking import Chunk
from ..text._pooling import expand_pieces
from ._core import ChunkedCore

__all__ = ["StreamAssembler", "StreamBatch"]


@dataclass(slots=True)
class _Text:
    index: int
    chunks: list[Chunk]
    vectors: list[object]
    missing: int


@dataclass(slots=True)
class StreamBatch:
    """One request's worth of inputs: ``(text, chunk position)`` for each, and the strings to send."""

    number: int
    members: list[tuple[_Text, int]] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)

    @property
    def text_indices(self) -> tuple[int, ...]:
        """Positions, in the caller's iterable, of the texts with a chunk in this batch."""
        return tuple(sorted({member.index for member, _ in self.members}))


class StreamAssembler:
    """In-order assembly of streamed texts (see the module docstring); one per stream.

    ``pool``: one text's result from its chunks and their results (the task's pooling).
    """

    def __init__(self, core: ChunkedCore, pool: Callable[[Sequence[Chunk], Sequence[object]], object]) -> None:
        self._core = core
        self._pool = pool
        self._texts: deque[_Text] = deque()
        self._current = StreamBatch(0)
        self._count = 0

    def add(self, chunks: list[Chunk]) -> list[StreamBatch]:
        """Take the next text's chunks; return the batches they filled (ready to send), usually none or one."""
        record = _Text(self._count, chunks, [None] * len(chunks), len(chunks))
        self._count += 1
        self._texts.append(record)
        prefix = self._core.options.document_prefix
        full: list[StreamBatch] = []
        for position, chunk in enumerate(chunks):
            self._current.members.append((record, position))
            self._current.inputs.append(prefix + chunk.text)
            if len(self._current.inputs) >= self._core.send_size:
                full.append(self._current)
                self._current = StreamBatch(self._current.number + 1)
        return full

    def flush(self) -> StreamBatch | None:
        """The last, partly filled batch at the end of the input (``None`` when there is none)."""
        batch, self._current = self._current, StreamBatch(self._current.number + 1)
        return batch if batch.inputs else None

    def complete(self, batch: StreamBatch, vectors: Sequence[object]) -> None:
        """Record a batch's vectors (one per input, in order)."""
        for (record, position), vector in zip(batch.members, vectors, strict=True):
            record.vectors[position] = vector
            record.missing -= 1

    def failure(self, batch: StreamBatch, error: HFInferError) -> HFInferError:
        """The error a failed batch raises: ``indices`` name its texts, the first is where to resume."""
        return error.with_context(attempts=error.attempts, indices=batch.text_indices)

    def ready(self) -> list[tuple[int, list[Chunk], list[object]]]:
        """Release the finished texts at the head, in order: ``(index, chunks, chunk results)``."""
        out: list[tuple[int, list[Chunk], list[object]]] = []
        while self._texts and self._texts[0].missing == 0:
            record = self._texts.popleft()
            out.append((record.index, *expand_pieces(record.chunks, record.vectors)))
        return out

    def documents(self) -> list[object]:
        """:meth:`ready`, each text's chunk results pooled as the task's ``embed_documents`` pools them."""
        return [self._pool(chunks, vectors) for _, chunks, vectors in self.ready()]
