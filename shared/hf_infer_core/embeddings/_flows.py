"""Each embedding method's whole job as one I/O-free flow; the two drivers only perform its steps.

:class:`EmbeddingJobs` composes the chunked pipeline's flows (``pipeline/_jobs.py``: chunk, fit,
batch, cache, send, stream) into the public methods of both embedding clients, and pools a
document's chunk vectors (``text/_pooling.py``). The steps they yield, and what each comes back
as, are in :mod:`..protocol._steps`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, cast

from ..pipeline._jobs import ChunkedJobs, check_iterable
from ..pipeline._stream import StreamAssembler
from ..protocol._plan import check_texts
from ..protocol._steps import Flow
from ..protocol._task import ProgressFactory, TaskArgs
from ..text._chunking import Chunk, ChunkEmbedding
from ..text._fit import load_tokenizer
from ..text._pooling import chunk_embeddings, per_text, pool_text
from ._core import EmbeddingCore
from ._options import EmbeddingOptions

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["EmbeddingJobs", "open_jobs"]


def array_maker(as_numpy: bool) -> Callable[[list[list[float]]], list[list[float]] | NDArray[np.float32]]:
    """Identity, or a float32 2-D array maker; checked before any request is sent."""
    if not as_numpy:
        return lambda vectors: vectors
    try:
        import numpy  # noqa: F401 - only to fail before any request when numpy is missing
    except ImportError as err:
        raise ImportError('as_numpy=True needs numpy: pip install "hf-infer[fast]"') from err
    return as_array


def as_array(vectors: list[list[float]]) -> NDArray[np.float32]:
    """``vectors`` as one float32 array of shape (len(vectors), dimensions)."""
    import numpy

    return numpy.asarray(vectors, dtype=numpy.float32)


def vectors(results: list[object]) -> list[list[float]]:
    """The pipeline's results as this task's: the vectors :meth:`EmbeddingCore.parse` made (lists, or float32 rows)."""
    return cast("list[list[float]]", results)


def open_jobs(args: TaskArgs, progress: ProgressFactory, tokenizer: object = None) -> EmbeddingJobs:
    """Both embedding clients' flows: their options built and checked, the core, a local tokenizer if given."""
    options = args.options_for(
        EmbeddingOptions, "text_embedding", "embedding", "a rerank endpoint goes to RerankClient"
    )
    core = EmbeddingCore(
        args.endpoint,
        options,
        clock=args.clock,
        rng=args.rng,
        counter=load_tokenizer(tokenizer) if tokenizer is not None else None,
    )
    return EmbeddingJobs(core, progress)


class EmbeddingJobs(ChunkedJobs[EmbeddingCore]):
    """The flows of every public method of both embedding clients, over one :class:`EmbeddingCore`."""

    options: EmbeddingOptions

    def pooling_key(self) -> object:
        """How chunk vectors are pooled, as the keys of pooled vectors name it."""
        return self.options.pooling

    def pool(self, chunks: Sequence[Chunk], results: Sequence[object]) -> object:
        """A document's vector from its chunks': their mean weighted by words, normalised, or the first's."""
        return pool_text(self.options.pooling, chunks, cast("Sequence[list[float]]", results))

    def embed(self, texts: Sequence[str], as_numpy: bool) -> Flow[list[list[float]] | NDArray[np.float32]]:
        """``embed``: each text sent as is, one vector each."""
        items = check_texts(texts)
        to_array = array_maker(as_numpy)
        if items:  # nothing to send: nothing to discover either
            yield from self.start()
        progress = self.progress(self.options.show_progress, len(items), None)
        return to_array(vectors((yield from self.flat(items, progress, as_numpy))))

    def query(self, text: str) -> Flow[list[float]]:
        """``embed_query``: one text, ``query_prefix`` prepended, not chunked."""
        (item,) = check_texts([text])
        yield from self.start(query=True)
        (vector,) = vectors(
            (yield from self.flat([self.options.query_prefix + item], self.progress(False, 1, None), query=True))
        )
        return vector

    def chunks(self, texts: Sequence[str]) -> Flow[list[list[ChunkEmbedding]]]:
        """``embed_chunks``: each text's chunks, fitted, with their vectors."""
        items = check_texts(texts)
        yield from self.start()
        chunks, results = yield from self.chunked(items)
        return [
            chunk_embeddings(text_chunks, text_vectors)
            for text_chunks, text_vectors in per_text(chunks, vectors(results))
        ]

    def documents(self, texts: Sequence[str], as_numpy: bool) -> Flow[list[list[float]] | NDArray[np.float32]]:
        """``embed_documents``: one vector per text, its chunks' vectors pooled (see :meth:`ChunkedJobs.documents_flow`).

        Pooled vectors are stored as float64 (a float32 row converts exactly): what the uncached call returns.
        """
        to_array = array_maker(as_numpy)
        items = check_texts(texts)
        yield from self.start()
        return to_array(vectors((yield from self.documents_flow(items, as_numpy))))

    def documents_stream(self, texts: object, as_numpy: bool) -> Flow[None]:
        """``embed_iter``: emits vectors (or float32 arrays of consecutive texts' vectors) in order.

        Bad arguments fail here, at the call, not at the first item.
        """
        array_maker(as_numpy)
        check_iterable(texts)

        def release(assembler: StreamAssembler) -> list[object]:
            documents = vectors(assembler.documents())
            return [as_array(documents)] if as_numpy and documents else list(documents)

        return self.stream(release, as_numpy)

    def chunks_stream(self, texts: object) -> Flow[None]:
        """``embed_chunks_iter``: emits each text's chunks with vectors, in order."""
        check_iterable(texts)

        def release(assembler: StreamAssembler) -> list[object]:
            return [chunk_embeddings(chunks, vectors(results)) for _, chunks, results in assembler.ready()]

        return self.stream(release, False)
