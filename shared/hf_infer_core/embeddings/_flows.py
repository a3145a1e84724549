"""Each embedding method's whole job as one I/O-free flow; the two drivers only perform its steps.

The steps they yield, and what each comes back as, are in :mod:`..protocol._steps`.

Everything that decides what to send, retry, fit, pool or raise is here or below (the batch,
info and tokenize flows of :class:`~._core.ClientCore` share one retry loop); the drivers
(threads, or asyncio tasks) decide only how to wait, which is all that differs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

from ..base._errors import HFInferError
from ..cache._identity import Identity
from ..cache._keys import decode_vector, encode_vector
from ..config._options import ClientOptions
from ..protocol._plan import assemble, check_texts, texts_named
from ..protocol._steps import Emit, End, Flow, Lookup, Parallel, Read, Settle, Start, Store, ask
from ..protocol._task import Progress, ProgressFactory, TaskArgs, TaskJobs, no_progress
from ..protocol._wire import TOKENIZE_BYTES
from ..text._chunking import Chunk, ChunkEmbedding
from ..text._fit import LocalTokenizer, Tokens, load_tokenizer
from ..text._pooling import Pieces, chunk_embeddings, expand_pieces, per_text, pool_all
from ._core import ClientCore
from ._stream import StreamAssembler, StreamBatch

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["Jobs"]

T = TypeVar("T")
R = TypeVar("R")


_READ: Final = Read()
# A stream's batches return their vectors (BatchFlow): Settle sends back one batch's.
_SETTLE: Final[Settle[list[Any]]] = Settle()


def check_iterable(texts: object) -> None:
    """Refuse a single string (an iterable of characters) or a non-iterable, before anything is read."""
    if isinstance(texts, str | bytes):
        raise TypeError(f"texts must be an iterable of str, not a single {type(texts).__name__}")
    if not isinstance(texts, Iterable | AsyncIterable):
        raise TypeError(f"texts must be an iterable of str, got {type(texts).__name__}")


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


def _no_hits(positions: list[int]) -> None:
    pass


# What _cached sends its misses with: (texts, their positions, the identity the requests certify
# or None, a set it adds the positions of texts not to store to) -> their vectors.
Send = Callable[[list[str], list[int], Identity | None, set[int]], Flow[list[Any]]]


def open_jobs(args: TaskArgs, progress: ProgressFactory) -> Jobs:
    """Both embedding clients' flows: their options built and checked, the core, a local tokenizer if given."""
    if args.options is not None and not isinstance(args.options, ClientOptions):
        raise TypeError(f"options must be a ClientOptions, got {type(args.options).__name__}")
    if args.endpoint.task_type != "text_embedding":
        raise TypeError(
            f"the endpoint [{args.endpoint.inference_id}] is a [{args.endpoint.task_type}] endpoint; the embedding "
            "clients need a [text_embedding] one (a rerank endpoint goes to RerankClient)"
        )
    core = ClientCore(args.endpoint, ClientOptions.build(args.options, args.overrides), clock=args.clock, rng=args.rng)
    return Jobs(core, load_tokenizer(args.tokenizer) if args.tokenizer is not None else None, progress)


class Jobs(TaskJobs[ClientCore]):
    """The flows of every public method of both embedding clients, over one :class:`ClientCore`."""

    def __init__(
        self, core: ClientCore, counter: LocalTokenizer | None, progress: ProgressFactory = no_progress
    ) -> None:
        super().__init__(core, progress)
        self.options = core.options
        # A local token counter (tokenizer=); without one, TEI's /tokenize counts when needed.
        self.counter = counter

    @property
    def cache(self) -> bool:
        """The driver has a cache: batches whose vectors are stored carry the identity probe."""
        return self.core.reserve > 0

    @cache.setter
    def cache(self, enabled: bool) -> None:
        self.core.reserve = 1 if enabled else 0

    @property
    def checks_due(self) -> bool:
        """With a cache: an identity a flow asked for must be verified before its hits are served."""
        return self.cache and any(identity.wanted and identity.due for _, identity in self.core.identities())

    def checks(self) -> Flow[None]:
        """Verify each identity due: the probe alone, matched against the anchors the store holds.

        A failure fails the call: without a verified model no stored vector may be served, and
        the call's own requests would meet the same failure.
        """
        for query, identity in self.core.identities():
            if identity.wanted and identity.due:
                vector = yield from self.core.probe_flow(identity, query)
                (stored,) = yield from ask(Lookup((identity.registry_key,)))
                if (anchors := identity.resolve(stored, vector)) is not None:
                    yield from ask(Store(((identity.registry_key, anchors),)))

    # ------------------------------------------------------------------ the public methods' flows

    def embed(self, texts: Sequence[str], as_numpy: bool) -> Flow[list[list[float]] | NDArray[np.float32]]:
        """``embed``: each text sent as is, one vector each."""
        items = check_texts(texts)
        to_array = array_maker(as_numpy)
        return to_array(
            (yield from self._flat(items, self.progress(self.options.show_progress, len(items), None), as_numpy))
        )

    def query(self, text: str) -> Flow[list[float]]:
        """``embed_query``: one text, ``query_prefix`` prepended, not chunked."""
        (item,) = check_texts([text])
        vectors = yield from self._flat([self.options.query_prefix + item], self.progress(False, 1, None), query=True)
        vector: list[float] = vectors[0]
        return vector

    def chunks(self, texts: Sequence[str]) -> Flow[list[list[ChunkEmbedding]]]:
        """``embed_chunks``: each text's chunks, fitted, with their vectors."""
        chunks, vectors = yield from self._chunked(texts)
        return [chunk_embeddings(text_chunks, text_vectors) for text_chunks, text_vectors in per_text(chunks, vectors)]

    def documents(self, texts: Sequence[str], as_numpy: bool) -> Flow[list[list[float]] | NDArray[np.float32]]:
        """``embed_documents``: one vector per text, its chunks' vectors pooled.

        With a cache, a text seen before is answered by its pooled vector, with no chunking
        (which is most of a re-ingestion's time once the endpoint is spared); the others are
        chunked, and their chunks looked up one by one.
        """
        to_array = array_maker(as_numpy)
        if not self.cache:
            return to_array(pool_all(self.options.pooling, *(yield from self._chunked(texts, as_numpy))))
        items = check_texts(texts)
        yield from self._discover()  # the model, the token limit: part of the key

        def pooled(sent: list[str], _: list[int], certify: Identity | None, degraded: set[int]) -> Flow[list[Any]]:
            # A document pooled from chunks that were not fitted, or that a 413 split, is returned
            # but not stored: its vector is not the one a sound endpoint gives (``degraded``).
            return pool_all(self.options.pooling, *(yield from self._chunked(sent, as_numpy, degraded)))

        # Pooled vectors are stored as float64 (a float32 row converts exactly): what the uncached call returns.
        vectors = yield from self._cached(
            items,
            lambda sent: self.core.document_keys(sent, self.counter.fingerprint if self.counter else None),
            pooled,
            query=False,
            documents=True,
        )
        return to_array(vectors)

    def documents_stream(self, texts: object, as_numpy: bool) -> Flow[None]:
        """``embed_iter``: emits vectors (or float32 arrays of consecutive texts' vectors) in order.

        Bad arguments fail here, at the call, not at the first item.
        """
        array_maker(as_numpy)
        check_iterable(texts)

        def release(assembler: StreamAssembler) -> list[Any]:
            documents = assembler.documents()
            return [as_array(documents)] if as_numpy and documents else documents

        return self._stream(release, as_numpy)

    def chunks_stream(self, texts: object) -> Flow[None]:
        """``embed_chunks_iter``: emits each text's chunks with vectors, in order."""
        check_iterable(texts)
        return self._stream(StreamAssembler.chunk_lists, False)

    # ------------------------------------------------------------------ their parts

    def _chunked(
        self, texts: Sequence[str], arrays: bool = False, degraded: set[int] | None = None
    ) -> Flow[tuple[list[list[Chunk]], list[Any]]]:
        """Chunk, fit to the model and embed: each text's chunks and the flat chunk vectors.

        ``arrays``: base64 vectors stay float32 numpy rows (for ``as_numpy=True``). ``degraded``
        is given the texts whose chunks were not fitted (no way to count tokens) or were split
        by a 413: their vectors are the call's answer, not what a sound endpoint gives.
        """
        items = check_texts(texts)
        chunks, fitted = yield from self._fitted(items, self.core.chunk_all(items))
        if degraded is not None and not fitted:
            degraded.update(range(len(items)))
        prefix = self.options.document_prefix
        flat = [prefix + chunk.text for text_chunks in chunks for chunk in text_chunks]
        owners = [i for i, text_chunks in enumerate(chunks) for _ in text_chunks]
        with texts_named(owners):
            progress = self.progress(self.options.show_progress, len(chunks), owners)
            vectors = yield from self._flat(flat, progress, arrays, splittable=True)
        if not any(isinstance(v, Pieces) for v in vectors):
            return chunks, vectors
        if degraded is not None:
            degraded.update(owners[i] for i, v in enumerate(vectors) if isinstance(v, Pieces))
        # Inputs a 413 split come back as pieces: each text's chunks become the pieces sent.
        pairs = [expand_pieces(text_chunks, text_vectors) for text_chunks, text_vectors in per_text(chunks, vectors)]
        return [c for c, _ in pairs], [v for _, vs in pairs for v in vs]

    def _fitted(self, items: list[str], chunks: list[list[Chunk]]) -> Flow[tuple[list[list[Chunk]], bool]]:
        """``chunks``, those over the model's token limit split again; False when a known limit could not be fitted to."""
        yield from self._discover()  # the limit may come from /info
        return (yield from self.core.fit_flow(items, chunks, self.counter is not None, self._count))

    def _count(self, texts: list[str]) -> Flow[list[Tokens]]:
        """Tokens of ``texts``: the local tokenizer's, else TEI's ``/tokenize`` in parallel groups."""
        if self.counter is not None:
            return self.counter(texts)
        groups = self.core.tokenize_groups(texts)
        flows = (self.core.tokenize_flow([texts[i] for i in group]) for group in groups)
        results = yield from ask(Parallel(flows, len(groups), self.options.window))
        return [tokens for group in results for tokens in group]

    def _flat(
        self,
        texts: list[str],
        progress: Progress,
        arrays: bool = False,
        splittable: bool = False,
        query: bool = False,
    ) -> Flow[list[Any]]:
        """Embed ``texts`` in planned batches, at most ``max_concurrency`` at once; vectors in input order.

        With a cache, every text is looked up first and only the misses are sent; their vectors
        are stored (a 413's pieces are not: they are not the text's own vector).
        """
        try:
            if not texts:
                return []
            yield from self._discover()  # /info may cap the batch size, and names the model for the cache

            float32 = self.options.wire_format == "base64"
            return (
                yield from self._cached(
                    texts,
                    lambda sent: self.core.cache_keys(sent, query),
                    lambda sent, positions, certify, _: self._send_all(
                        sent, positions, progress, arrays, splittable, query, certify
                    ),
                    query=query,
                    float32=float32,
                    as_array=arrays and float32,
                    hits=progress.done,
                )
            )
        finally:
            progress.close()

    def _cached(
        self,
        texts: list[str],
        keys: Callable[[list[str]], list[str] | None],
        send: Send,
        *,
        query: bool,
        float32: bool = False,
        as_array: bool = False,
        hits: Callable[[list[int]], None] = _no_hits,
        documents: bool = False,
    ) -> Flow[list[Any]]:
        """``texts``' vectors: with a cache, those it holds under ``keys(texts)``, and ``send`` for the rest.

        ``send(texts, positions, certify, degraded)`` is given the texts to send, where each stands
        in ``texts``, the identity its requests certify (their vectors are stored) and a set it
        adds the positions of texts whose vectors must not be stored.

        Nothing is looked up or stored while the model's identity is not verified (``keys``
        gives ``None``), and the misses' vectors are stored only when the identity did not move
        while they were sent: every request certified them (see cache/_identity.py). Never
        stored: a 413's pieces, and what ``send`` calls degraded. Stored as ``float32`` (the
        base64 route's values) or float64; ``as_array``: hits come back as float32 rows. A
        failure of ``send`` is named by the caller's positions, not the misses'.
        ``hits(positions)`` is told which texts the cache answered (progress); ``documents``: the
        texts are whole documents (counted apart from chunks).
        """
        if not self.cache:
            return (yield from send(texts, list(range(len(texts))), None, set()))
        identity = self.core.identity(query)
        identity.wanted = True
        yield from self._discover()  # the model verified (cache/_identity.py, rule 3)
        generation = identity.generation
        names = keys(texts)
        if names is None:  # not verified: no hits served, nothing stored
            self.cache_counts(0, len(texts), documents)
            return (yield from send(texts, list(range(len(texts))), None, set()))
        found = yield from ask(Lookup(tuple(names)))
        size = self.core.dimensions
        vectors = [decode_vector(blob, float32, size, as_array) for blob in found]
        misses = [i for i, vector in enumerate(vectors) if vector is None]
        self.cache_counts(len(texts) - len(misses), len(misses), documents)
        if len(misses) < len(texts):
            hits([i for i, vector in enumerate(vectors) if vector is not None])
        if misses:
            degraded: set[int] = set()
            try:
                sent = yield from send([texts[i] for i in misses], misses, identity, degraded)
            except HFInferError as err:  # its indices name the misses: name the caller's texts
                err.indices = tuple(misses[i] for i in err.indices if 0 <= i < len(misses))
                raise
            for i, vector in zip(misses, sent, strict=True):
                vectors[i] = vector
            if identity.generation == generation and self.core.identity(query) is identity:
                pairs = tuple(
                    (names[i], encode_vector(vector, float32))
                    for k, (i, vector) in enumerate(zip(misses, sent, strict=True))
                    if not isinstance(vector, Pieces) and k not in degraded
                )
                yield from ask(Store(pairs))
        return vectors

    def _send_all(
        self,
        texts: list[str],
        positions: list[int],
        progress: Progress,
        arrays: bool,
        splittable: bool,
        query: bool,
        certify: Identity | None,
    ) -> Flow[list[Any]]:
        """Send ``texts`` (``positions``: where each stands in the call's list, for progress) in planned batches."""
        batches = self.core.plan(texts)
        flows = (
            self.core.batch_flow([texts[i] for i in b], b, arrays, splittable, query, certify=certify) for b in batches
        )

        def done(k: int) -> None:
            progress.done([positions[i] for i in batches[k]])

        results = yield from ask(Parallel(flows, len(batches), self.options.window, done))
        return assemble(len(texts), batches, results)

    def _stream(self, release: Callable[[StreamAssembler], list[Any]], arrays: bool) -> Flow[None]:
        """Read texts one at a time, keep ``max_concurrency`` batches in flight, emit finished texts in order.

        Memory holds the window, not the corpus: reading stops while the window is full.
        """
        yield from self._discover()
        assembler = StreamAssembler(self.core)
        window = self.options.window
        started: deque[StreamBatch] = deque()
        position, ended = 0, False
        while not ended:
            items, ended = yield from self._read_group(position)
            position += len(items)
            fitted, _ = yield from self._fitted(items, self.core.chunk_all(items))
            for chunks in fitted:
                for batch in assembler.add(chunks):
                    yield from ask(Start(self._batch(batch, arrays)))
                    started.append(batch)
                while len(started) >= window:
                    yield from self._settle(started.popleft(), assembler, release)
        if (last := assembler.flush()) is not None:
            yield from ask(Start(self._batch(last, arrays)))
            started.append(last)
        while started:
            yield from self._settle(started.popleft(), assembler, release)

    def _read_group(self, position: int) -> Flow[tuple[list[str], bool]]:
        """The next texts of a stream, fitted together: up to ``batch_size`` texts and ~256 KiB.

        Fitting a group costs one ``/tokenize`` request where fitting each text as it came cost
        one per text (a stream of paragraphs: nearly one per ``/embed``); the read-ahead is
        bounded by what one such request carries. Also says whether the input has ended.
        """
        group: list[str] = []
        size = 0
        while len(group) < self.core.batch_size and size < TOKENIZE_BYTES:
            text = yield from ask(_READ)
            if isinstance(text, End):
                return group, True
            group += check_texts([text], position + len(group))
            size += len(text)
        return group, False

    def _batch(self, batch: StreamBatch, arrays: bool) -> Flow[list[Any]]:
        float32 = self.options.wire_format == "base64"
        return self._cached(
            list(batch.inputs),
            lambda sent: self.core.cache_keys(sent, False),
            lambda sent, _, certify, __: self.core.batch_flow(
                sent, range(len(sent)), arrays, splittable=True, certify=certify
            ),
            query=False,
            float32=float32,
            as_array=arrays and float32,
        )

    @staticmethod
    def _settle(
        batch: StreamBatch, assembler: StreamAssembler, release: Callable[[StreamAssembler], list[Any]]
    ) -> Flow[None]:
        try:
            vectors = yield from ask(_SETTLE)
        except HFInferError as err:
            # Its indices become the batch's texts, counted in the caller's iterable.
            raise assembler.failure(batch, err) from err.__cause__
        assembler.complete(batch, vectors)
        if out := release(assembler):
            yield from ask(Emit(out))
