"""Each sparse method's whole job as one I/O-free flow, composed of the chunked pipeline's stages.

A long document is chunked as for dense vectors, and its sparse vector is the element-wise
maximum over its chunks' (SPLADE's own pooling over positions, carried over chunks): a term
weighs in the document what it weighs in the chunk where it weighs most.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from ..pipeline._jobs import ChunkedJobs, check_iterable
from ..pipeline._stream import StreamAssembler
from ..protocol._plan import check_texts
from ..protocol._steps import Flow
from ..protocol._task import ProgressFactory, TaskArgs
from ..text._chunking import Chunk
from ..text._fit import load_tokenizer
from ._core import SparseCore
from ._options import SparseEmbeddingOptions
from ._wire import SparseVector

__all__ = ["SparseJobs", "max_pool", "open_jobs"]


def max_pool(vectors: Sequence[SparseVector]) -> SparseVector:
    """The element-wise maximum of sparse vectors, in index order."""
    if len(vectors) == 1:
        return vectors[0]
    pooled: SparseVector = {}
    for vector in vectors:
        for index, value in vector.items():
            if value > pooled.get(index, -1.0):
                pooled[index] = value
    return dict(sorted(pooled.items()))


def _sparse(results: list[object]) -> list[SparseVector]:
    """The pipeline's results as this task's: the sparse vectors :meth:`SparseCore.parse` made."""
    return cast("list[SparseVector]", results)


def open_jobs(args: TaskArgs, progress: ProgressFactory, tokenizer: object = None) -> SparseJobs:
    """Both sparse clients' flows: their options built and checked, the core, a local tokenizer if given."""
    options = args.options_for(
        SparseEmbeddingOptions, "sparse_embedding", "sparse", 'from_url(..., task_type="sparse_embedding")'
    )
    core = SparseCore(
        args.endpoint,
        options,
        clock=args.clock,
        rng=args.rng,
        counter=load_tokenizer(tokenizer) if tokenizer is not None else None,
    )
    return SparseJobs(core, progress)


class SparseJobs(ChunkedJobs[SparseCore]):
    """The flows of every public method of both sparse clients, over one :class:`SparseCore`."""

    options: SparseEmbeddingOptions

    def pooling_key(self) -> object:
        """The pooling, as the keys of pooled vectors name it."""
        return "max"

    def pool(self, chunks: Sequence[Chunk], results: Sequence[object]) -> object:
        """A document's sparse vector from its chunks': their element-wise maximum."""
        return max_pool(cast("Sequence[SparseVector]", results))

    def embed(self, texts: Sequence[str]) -> Flow[list[SparseVector]]:
        """``embed``: each text sent as is, one sparse vector each."""
        items = check_texts(texts)
        if items:
            yield from self.start()
        progress = self.progress(self.options.show_progress, len(items), None)
        return _sparse((yield from self.flat(items, progress)))

    def query(self, text: str) -> Flow[SparseVector]:
        """``embed_query``: one text, ``query_prefix`` prepended, not chunked."""
        (item,) = check_texts([text])
        yield from self.start(query=True)
        results = yield from self.flat([self.options.query_prefix + item], self.progress(False, 1, None), query=True)
        (vector,) = _sparse(results)
        return vector

    def documents(self, texts: Sequence[str]) -> Flow[list[SparseVector]]:
        """``embed_documents``: one sparse vector per text, its chunks' pooled by their maximum."""
        items = check_texts(texts)
        yield from self.start()
        return _sparse((yield from self.documents_flow(items, False)))

    def documents_stream(self, texts: object) -> Flow[None]:
        """``embed_iter``: emits each text's sparse vector, in order."""
        check_iterable(texts)
        return self.stream(StreamAssembler.documents, False)
