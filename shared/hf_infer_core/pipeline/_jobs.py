"""The chunked pipeline's flows, which any task that chunks texts composes: no I/O.

Check, chunk, fit to the model, batch, look up and store in the cache, send, stream, pool: each
is a flow (a generator of the steps in :mod:`..protocol._steps`) over a :class:`~._core.ChunkedCore`;
the two drivers only perform the steps. A task's flows subclass :class:`ChunkedJobs` and add its
public methods (the embeddings': ``embeddings/_flows.py``) and how a text's chunk results are
pooled (:meth:`ChunkedJobs.pool`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterable, Callable, Iterable, Sequence
from typing import Final, TypeVar

from ..base._errors import HFInferError
from ..cache._cache import VectorCache, open_cache
from ..cache._identity import Identity
from ..protocol._plan import assemble, check_texts, chunk_all, plan, texts_named
from ..protocol._steps import Emit, End, Flow, Lookup, Parallel, Read, Settle, Start, Store, ask
from ..protocol._task import Progress, ProgressFactory, TaskJobs, no_progress
from ..protocol._wire import TOKENIZE_BYTES
from ..text._chunking import Chunk
from ..text._pooling import Pieces, expand_pieces, per_text
from ._core import ChunkedCore
from ._stream import StreamAssembler, StreamBatch

__all__ = ["ChunkedJobs", "SendMisses", "check_iterable"]

C = TypeVar("C", bound=ChunkedCore)

_READ: Final = Read()
# A stream's batches return their results (BatchFlow): Settle sends back one batch's.
_SETTLE: Final[Settle[list[object]]] = Settle()


def check_iterable(texts: object) -> None:
    """Refuse a single string (an iterable of characters) or a non-iterable, before anything is read."""
    if isinstance(texts, str | bytes):
        raise TypeError(f"texts must be an iterable of str, not a single {type(texts).__name__}")
    if not isinstance(texts, Iterable | AsyncIterable):
        raise TypeError(f"texts must be an iterable of str, got {type(texts).__name__}")


def _no_hits(positions: list[int]) -> None:
    pass


# What cached() sends its misses with: (texts, their positions, the identity the requests certify
# or None, a set it adds the positions of texts not to store to) -> their results.
SendMisses = Callable[[list[str], list[int], Identity | None, set[int]], Flow[list[object]]]


class ChunkedJobs(TaskJobs[C]):
    """The chunked pipeline's flows over one core ``C``; a task adds its public methods and :meth:`pool`."""

    def __init__(self, core: C, progress: ProgressFactory = no_progress) -> None:
        super().__init__(core, progress)
        self.options = core.options
        # The kinds of request (query or not) whose cached results a call asked for: their
        # identities are verified with discovery. Kinds, not identities: /info, read in the same
        # discovery, names the model and so which identity a kind has.
        self.wanted: set[bool] = set()

    def pool(self, chunks: Sequence[Chunk], results: Sequence[object]) -> object:
        """One text's result from its chunks' (the task's pooling)."""
        raise NotImplementedError

    def pooling_key(self) -> object:
        """The pooling, as the cache keys of pooled results name it."""
        return None

    def open_cache(self) -> VectorCache | None:
        """The cache the options name (``None``: none), which the driver performs Lookup and Store steps on."""
        return open_cache(self.options.cache, self.options.cache_max_bytes)

    @property
    def cache(self) -> bool:
        """The driver has a cache: batches whose results are stored carry the identity probe."""
        return self.core.reserve > 0

    @cache.setter
    def cache(self, enabled: bool) -> None:
        self.core.reserve = 1 if enabled else 0

    @property
    def checks_due(self) -> bool:
        """With a cache: an identity a flow asked for must be verified before its hits are served."""
        return self.cache and any(self.core.identity(query).due for query in self.wanted)

    def checks(self) -> Flow[None]:
        """Verify each identity due: the probe alone, matched against the anchors the store holds.

        A failure fails the call: without a verified model no stored result may be served, and
        the call's own requests would meet the same failure.
        """
        for query in sorted(self.wanted):
            identity = self.core.identity(query)
            if identity.due:
                vector = yield from self.core.probe_flow(query)
                (stored,) = yield from ask(Lookup((identity.registry_key,)))
                if (anchors := identity.resolve(stored, vector)) is not None:
                    yield from ask(Store(((identity.registry_key, anchors),)))

    def start(self, query: bool = False) -> Flow[None]:
        """A call's one discovery: the identity its cached results need marked wanted, then ``/info`` and the checks."""
        if self.cache:
            self.wanted.add(query)
        yield from self._discover()

    # ------------------------------------------------------------------ the stages

    def documents_flow(self, items: list[str], arrays: bool) -> Flow[list[object]]:
        """One pooled result per text; with a cache, a text seen before answered by its pooled result.

        A hit costs no chunking (most of a re-ingestion's time once the endpoint is spared); the
        others are chunked, and their chunks looked up one by one.
        """
        if not self.cache:
            return self.pool_all(*(yield from self.chunked(items, arrays)))

        def pooled(sent: list[str], _: list[int], certify: Identity | None, degraded: set[int]) -> Flow[list[object]]:
            # A document pooled from chunks that were not fitted, or that a 413 split, is returned
            # but not stored: its result is not the one a sound endpoint gives (``degraded``).
            return self.pool_all(*(yield from self.chunked(sent, arrays, degraded)))

        return (
            yield from self.cached(
                items,
                lambda sent: self.core.document_keys(sent, self.pooling_key()),
                pooled,
                query=False,
                pooled=True,
            )
        )

    def pool_all(self, chunks: Sequence[Sequence[Chunk]], results: Sequence[object]) -> list[object]:
        """One result per text from the flat chunk results (``chunks[i]`` are text i's chunks, in order)."""
        return [self.pool(text_chunks, text_results) for text_chunks, text_results in per_text(chunks, results)]

    def chunked(
        self, texts: Sequence[str], arrays: bool = False, degraded: set[int] | None = None
    ) -> Flow[tuple[list[list[Chunk]], list[object]]]:
        """Chunk, fit to the model and send: each text's chunks and the flat chunk results.

        ``arrays``: the task's array form where it has one. ``degraded`` is given the texts whose
        chunks were not fitted (no way to count tokens) or were split by a 413: their results
        are the call's answer, not what a sound endpoint gives.
        """
        items = check_texts(texts)
        chunks, fitted = yield from self.core.fit_flow(items, self.chunk_all(items))
        if degraded is not None and not fitted:
            degraded.update(range(len(items)))
        prefix = self.options.document_prefix
        flat = [prefix + chunk.text for text_chunks in chunks for chunk in text_chunks]
        owners = [i for i, text_chunks in enumerate(chunks) for _ in text_chunks]
        with texts_named(owners):
            progress = self.progress(self.options.show_progress, len(chunks), owners)
            results = yield from self.flat(flat, progress, arrays, splittable=True)
        if not any(isinstance(v, Pieces) for v in results):
            return chunks, results
        if degraded is not None:
            degraded.update(owners[i] for i, v in enumerate(results) if isinstance(v, Pieces))
        # Inputs a 413 split come back as pieces: each text's chunks become the pieces sent.
        pairs = [expand_pieces(text_chunks, text_results) for text_chunks, text_results in per_text(chunks, results)]
        return [c for c, _ in pairs], [v for _, vs in pairs for v in vs]

    def chunk_all(self, texts: Sequence[str]) -> list[list[Chunk]]:
        """Every text chunked with the endpoint's chunking settings."""
        return chunk_all(texts, self.core.endpoint.chunking_settings, self.options.keep_trailing_text)

    def flat(
        self,
        texts: list[str],
        progress: Progress,
        arrays: bool = False,
        splittable: bool = False,
        query: bool = False,
    ) -> Flow[list[object]]:
        """Send ``texts`` in planned batches, at most ``max_concurrency`` at once; results in input order.

        With a cache, every text is looked up first and only the misses are sent; their results
        are stored (a 413's pieces are not: they are not the text's own result).
        """
        try:
            if not texts:
                return []
            return (
                yield from self.cached(
                    texts,
                    lambda sent: self.core.cache_keys(sent, query),
                    lambda sent, positions, certify, _: self._send_all(
                        sent, positions, progress, arrays, splittable, query, certify
                    ),
                    query=query,
                    arrays=arrays,
                    hits=progress.done,
                )
            )
        finally:
            progress.close()

    def cached(
        self,
        texts: list[str],
        keys: Callable[[list[str]], list[str] | None],
        send: SendMisses,
        *,
        query: bool,
        arrays: bool = False,
        hits: Callable[[list[int]], None] = _no_hits,
        pooled: bool = False,
    ) -> Flow[list[object]]:
        """``texts``' results: with a cache, those it holds under ``keys(texts)``, and ``send`` for the rest.

        ``send(texts, positions, certify, degraded)`` is given the texts to send, where each stands
        in ``texts``, the identity its requests certify (their results are stored) and a set it
        adds the positions of texts whose results must not be stored.

        Nothing is looked up or stored while the model's identity is not verified (``keys``
        gives ``None``; a verification due mid-call, after a lost connection or a minute, is the
        one further discovery), and the misses' results are stored only when the identity did
        not move while they were sent: every request certified them (see cache/_identity.py).
        Never stored: a 413's pieces, and what ``send`` calls degraded. A failure of ``send`` is
        named by the caller's positions, not the misses'. ``hits(positions)``: which texts the
        cache answered (progress); ``pooled``: the texts are whole documents, their results pooled.
        """
        if not self.cache:
            return (yield from send(texts, list(range(len(texts))), None, set()))
        self.wanted.add(query)
        yield from self._discover()  # a verification due mid-call (a lost connection, a minute gone)
        identity = self.core.identity(query)
        generation = identity.generation
        names = keys(texts)
        if names is None:  # not verified: no hits served, nothing stored
            self.cache_counts(0, len(texts), pooled)
            return (yield from send(texts, list(range(len(texts))), None, set()))
        found = yield from ask(Lookup(tuple(names)))
        results = [self.core.decode(blob, arrays, pooled) for blob in found]
        misses = [i for i, result in enumerate(results) if result is None]
        self.cache_counts(len(texts) - len(misses), len(misses), pooled)
        if len(misses) < len(texts):
            hits([i for i, result in enumerate(results) if result is not None])
        if misses:
            degraded: set[int] = set()
            try:
                sent = yield from send([texts[i] for i in misses], misses, identity, degraded)
            except HFInferError as err:  # its indices name the misses: name the caller's texts
                err.indices = tuple(misses[i] for i in err.indices if 0 <= i < len(misses))
                raise
            for i, result in zip(misses, sent, strict=True):
                results[i] = result
            if identity.generation == generation and self.core.identity(query) is identity:
                pairs = tuple(
                    (names[i], self.core.encode(result, pooled))
                    for k, (i, result) in enumerate(zip(misses, sent, strict=True))
                    if not isinstance(result, Pieces) and k not in degraded
                )
                yield from ask(Store(pairs))
        return results

    def _send_all(
        self,
        texts: list[str],
        positions: list[int],
        progress: Progress,
        arrays: bool,
        splittable: bool,
        query: bool,
        certify: Identity | None,
    ) -> Flow[list[object]]:
        """Send ``texts`` (``positions``: where each stands in the call's list, for progress) in planned batches."""
        batches = plan(texts, self.core.send_size)
        flows = (
            self.core.batch_flow([texts[i] for i in b], b, arrays, splittable, query, certify=certify) for b in batches
        )

        def done(k: int) -> None:
            progress.done([positions[i] for i in batches[k]])

        results = yield from ask(Parallel(flows, len(batches), self.options.window, done))
        return assemble(len(texts), batches, results)

    # ------------------------------------------------------------------ streams

    def stream(self, release: Callable[[StreamAssembler], list[object]], arrays: bool) -> Flow[None]:
        """Read texts one at a time, keep ``max_concurrency`` batches in flight, emit finished texts in order.

        Memory holds the window, not the corpus: reading stops while the window is full.
        """
        yield from self.start()
        assembler = StreamAssembler(self.core, self.pool)
        window = self.options.window
        started: deque[StreamBatch] = deque()
        position, ended = 0, False
        while not ended:
            items, ended = yield from self._read_group(position)
            position += len(items)
            fitted, _ = yield from self.core.fit_flow(items, self.chunk_all(items))
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
        one per text (a stream of paragraphs: nearly one per request); the read-ahead is
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

    def _batch(self, batch: StreamBatch, arrays: bool) -> Flow[list[object]]:
        return self.cached(
            list(batch.inputs),
            lambda sent: self.core.cache_keys(sent, False),
            lambda sent, _, certify, __: self.core.batch_flow(
                sent, range(len(sent)), arrays, splittable=True, certify=certify
            ),
            query=False,
            arrays=arrays,
        )

    @staticmethod
    def _settle(
        batch: StreamBatch, assembler: StreamAssembler, release: Callable[[StreamAssembler], list[object]]
    ) -> Flow[None]:
        try:
            results = yield from ask(_SETTLE)
        except HFInferError as err:
            # Its indices become the batch's texts, counted in the caller's iterable.
            raise assembler.failure(batch, err) from err.__cause__
        assembler.complete(batch, results)
        if out := release(assembler):
            yield from ask(Emit(out))
