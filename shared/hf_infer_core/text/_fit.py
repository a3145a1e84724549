"""Chunks that fit the model's token limit, without I/O: the tokenizing is asked for, not done.

Elasticsearch's chunks are measured in words; models read a fixed number of word pieces (256 for
all-MiniLM-L6-v2, 512 for e5). A chunk over the limit would get a 413 from a TEI server, or lose
its end to truncation. :func:`fit_flow` splits every such chunk again at word boundaries into the
fewest pieces that fit, keeping exact offsets, and leaves every other chunk as it is.

It is a generator in the manner of the client core: it yields lists of strings to tokenize and
receives each one's :class:`Tokens` (special tokens counted, the others with character offsets),
so the same flow runs with a local ``tokenizers.Tokenizer`` or with the endpoint's own
``POST /tokenize`` (rate limited and retried like any request) from the sync or async client.

One tokenization gives every cut. The chunks that might be over the limit are tokenized once, in
spans (a run of neighbouring chunks of one text, usually the whole document), and each chunk's
tokens are read off the span's offsets: a piece ends at the last word end before the first token
that would not fit, so the pieces are the greedy ones, and the greedy cut is the fewest (a longer
run of words never has fewer tokens). A word longer than the limit is cut between its tokens.

That a piece sent alone has the tokens it has inside the whole is checked, not assumed, as far as
offsets can tell: a chunk or piece is taken as counted only when no token of the span crosses
either of its ends. Every other (a byte-level BPE token that carries the space before a chunk, a
sentencepiece token across a cut) is tokenized alone in a further round and cut again if needed,
so most texts take one round and the rest two.
"""

from __future__ import annotations

import hashlib
import os
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Generator, Sequence
from copy import deepcopy
from dataclasses import dataclass
from typing import Protocol, TypeAlias, TypeVar, cast

from ..base._errors import ConfigError
from ._chunking import Chunk
from ._words import word_ends_within

__all__ = [
    "SAFE_MARGIN",
    "SPAN_CHARS",
    "Counter",
    "Tokens",
    "counted_locally",
    "fit_flow",
    "fit_locally",
    "fit_texts_flow",
    "LocalTokenizer",
    "load_tokenizer",
    "needs_count",
    "open_tokenizer",
    "result_of",
    "token_fitter",
]

# A chunk whose UTF-8 length plus this margin is within the limit cannot have more tokens than
# the limit: word-piece and byte-level tokenizers give at most one token per byte, and the
# special tokens a model adds are far fewer than 16. Such chunks are not tokenized at all.
SAFE_MARGIN = 16

# Neighbouring chunks are tokenized together up to this many characters: a typical document is
# one input (overlapping chunks tokenized once), while a local batch still spreads over cores and
# one /tokenize answer stays a few MiB.
SPAN_CHARS = 16_384
_GAP = 64
# Characters ICU reads before a cut (and after it, for context) to find the last word end.
_WINDOW = 256
_LOOKAHEAD = 32


@dataclass(frozen=True, slots=True)
class Tokens:
    """One text's tokenization as fitting reads it: special tokens counted, the others located.

    ``count`` tokens are the text's own (not special); ``offset(k)`` is the ``(start, end)``
    character offsets of the k-th, in order. Offsets are read lazily, since a local tokenizer
    holds them natively and making a million Python tuples would cost more than tokenizing.
    """

    special: int
    count: int
    offset: Callable[[int], tuple[int, int]]

    @classmethod
    def from_offsets(cls, special: int, offsets: Sequence[tuple[int, int]]) -> Tokens:
        """Tokens from a list of ``(start, end)`` character offsets (an endpoint's answer)."""
        return cls(special, len(offsets), offsets.__getitem__)

    @property
    def total(self) -> int:
        """Every token the model reads for this text, special tokens included."""
        return self.special + self.count


Y = TypeVar("Y")
S = TypeVar("S")
T = TypeVar("T")
# A fitting flow yields what its counter yields (Y) and is sent what its counter is sent (S).
FitFlow: TypeAlias = Generator[Y, S, list[list[Chunk]]]
# How a flow has texts counted: a sub-flow whose return value is their Tokens. The clients count
# with a local tokenizer or with /tokenize requests (steps of their own), the splitters with a
# local tokenizer and no step at all.
Counter: TypeAlias = Callable[[list[str]], Generator[Y, S, list[Tokens]]]
Tokenize = Callable[[list[str]], list[Tokens]]


def counted_locally(tokenize: Tokenize) -> Counter[object, object]:
    """A :data:`Counter` that tokenizes in place: its flows finish without yielding a step."""

    def count(texts: list[str]) -> Generator[object, object, list[Tokens]]:
        return tokenize(texts)
        yield  # a generator that never yields: "yield from" it returns at once

    return count


def result_of(flow: Generator[object, None, T]) -> T:
    """The value of a flow that needs no step performed (everything it asks for is local)."""
    try:
        step = next(flow)
    except StopIteration as stop:
        value: T = stop.value
        return value
    flow.close()
    raise RuntimeError(f"a local flow asked for a step: {type(step).__name__}")


def needs_count(text: str, limit: int) -> bool:
    """True when ``text`` might have more than ``limit`` tokens (it is too long to be surely under)."""
    return len(text) + SAFE_MARGIN > limit and len(text.encode("utf-8")) + SAFE_MARGIN > limit


@dataclass(slots=True)
class _Job:
    """A range of ``source`` to fit: an Elasticsearch chunk, or a piece to tokenize alone."""

    owner: int  # which input chunk it belongs to
    start: int
    end: int
    source: str
    original: Chunk | None  # the input chunk itself, kept as is when it fits


class _View:
    """One tokenized span's tokens in the source's coordinates, with the checks that cuts need."""

    __slots__ = ("budget", "count", "offset", "shift", "skip", "special", "start_of")

    def __init__(self, tokens: Tokens, prefix: str, base: int, limit: int) -> None:
        offset = tokens.offset
        # Tokens of the prefix (document_prefix) come first; every piece is sent with them.
        skip = 0
        while skip < tokens.count and offset(skip)[0] < len(prefix):
            skip += 1
        shift = base - len(prefix)
        self.count = tokens.count - skip
        self.special = tokens.special + skip
        self.budget = limit - self.special

        self.offset = offset
        self.skip = skip
        self.shift = shift
        self.start_of: Callable[[int], int] = lambda k: offset(k + skip)[0] + shift

    def first_at(self, position: int, lo: int = 0, hi: int | None = None) -> int:
        """Index of the first token starting at or after ``position`` (searched in ``[lo, hi)``)."""
        return bisect_left(range(self.count), position, lo, self.count if hi is None else hi, key=self.start_of)

    def clean_cut(self, position: int, index: int) -> bool:
        """True when no token crosses ``position`` (``index``: the first token at or after it)."""
        return index == 0 or self.offset(index - 1 + self.skip)[1] + self.shift <= position


def fit_flow(
    chunks: Sequence[Chunk], sources: Sequence[str], limit: int, prefix: str, count: Counter[Y, S]
) -> FitFlow[Y, S]:
    """Return, for each chunk, the pieces it becomes (itself when it fits), as ``StopIteration.value``.

    Args:
        chunks: Elasticsearch chunks (any texts).
        sources: For each chunk, the text its offsets point into.
        limit: The model's token limit, special tokens included.
        prefix: What the client prepends before sending (``document_prefix``): counted too.
        count: How texts are counted: a sub-flow returning one :class:`Tokens` per text, in order.

    Raises:
        ConfigError: ``limit`` leaves no room for one token beside the special tokens and prefix.
    """
    pieces: list[list[Chunk]] = [[chunk] for chunk in chunks]
    jobs = [
        _Job(i, chunk.start, chunk.end, sources[i], chunk)
        for i, chunk in enumerate(chunks)
        if needs_count(prefix + chunk.text, limit)
    ]
    for i in {job.owner for job in jobs}:
        pieces[i] = []
    span_chars = SPAN_CHARS
    while jobs:
        spans = _spans(jobs, span_chars)
        answers = yield from count([prefix + source[start:end] for source, start, end, _ in spans])
        jobs = []
        for (_, start, _, members), tokens in zip(spans, answers, strict=True):
            view = _View(tokens, prefix, start, limit)
            for job in members:
                jobs += _cut(job, view, limit, chunks, pieces)
        span_chars = 0  # what is left is tokenized alone
    for chunk_pieces in pieces:
        chunk_pieces.sort(key=lambda piece: piece.start)
    return pieces


def _spans(jobs: list[_Job], span_chars: int) -> list[tuple[str, int, int, list[_Job]]]:
    """Group jobs into spans to tokenize: neighbours of one text together, up to ``span_chars``."""
    spans: list[tuple[str, int, int, list[_Job]]] = []
    for job in jobs:
        if spans:
            source, start, end, members = spans[-1]
            # A short gap (the space between two word chunks) is tokenized too, to keep one span.
            if source is job.source and start <= job.start <= end + _GAP and job.end - start <= span_chars:
                spans[-1] = (source, start, max(end, job.end), [*members, job])
                continue
        spans.append((job.source, job.start, job.end, [job]))
    return spans


def _cut(job: _Job, view: _View, limit: int, chunks: Sequence[Chunk], pieces: list[list[Chunk]]) -> list[_Job]:
    """Cut one job from its span's tokens; return the ranges whose count the span could not tell."""
    first = view.first_at(job.start)
    stop = view.first_at(job.end, first)
    # A job tokenized alone passes both checks: its span starts and ends where it does.
    if not (view.clean_cut(job.start, first) and view.clean_cut(job.end, stop)):
        return [_Job(job.owner, job.start, job.end, job.source, job.original)]
    done = pieces[job.owner]
    if view.special + (stop - first) <= limit:
        done.append(job.original or _piece(job, job.start, job.end, chunks))
        return []
    if view.budget <= 0:
        raise ConfigError(
            [
                f"max_input_tokens={limit} leaves no room for text: the model adds {view.special} tokens "
                "(special tokens and document_prefix) to every input"
            ]
        )
    again: list[_Job] = []
    start, index, clean = job.start, first, True
    while True:
        if stop - index <= view.budget:
            end, after = job.end, stop
        else:
            # The first token that does not fit starts at ``bound``: the piece ends at the last
            # word end up to it, or, inside a word longer than the limit, at that token.
            bound = view.start_of(index + view.budget)
            end = _last_word_end(job, start, bound)
            if end <= start:  # one character with more tokens than the limit: it goes alone
                end = min(job.end, start + 1)
            after = view.first_at(end, index, index + view.budget + 1)
        clean_end = end == job.end or view.clean_cut(end, after)
        piece = _piece(job, start, end, chunks)
        if clean and clean_end:
            done.append(piece)
        else:  # smaller than the job (whose own ends are clean), so the rounds end
            again.append(_Job(job.owner, start, end, job.source, None))
        if end >= job.end:
            return again
        start, index, clean = end, after, clean_end


def _last_word_end(job: _Job, start: int, bound: int) -> int:
    """The last ICU word end in ``(start, bound]`` (``bound`` itself when there is none).

    ICU reads a window before ``bound`` rather than the whole chunk: word boundaries depend on a
    few characters of context only, and a cut needs just the last one. A word longer than the
    window (rare) falls back to the whole range from ``start``.
    """
    lo = max(start, bound - _WINDOW)
    hi = min(job.end, bound + _LOOKAHEAD)
    while True:
        ends = word_ends_within(job.source, lo, hi)  # ends with hi itself, which is past bound
        w = bisect_right(ends, bound) - 1
        if w >= 0 and ends[w] > lo:
            return ends[w]
        if lo == start:
            return bound
        lo = start


def _piece(job: _Job, start: int, end: int, chunks: Sequence[Chunk]) -> Chunk:
    origin = chunks[job.owner]
    return Chunk(start, end, job.source[start:end], source=(origin.start, origin.end))


def fit_texts_flow(
    texts: Sequence[str], chunks: Sequence[Sequence[Chunk]], limit: int, prefix: str, count: Counter[Y, S]
) -> FitFlow[Y, S]:
    """:func:`fit_flow` over every chunk of every text; returns each text's chunks, fitted."""
    flat = [chunk for text_chunks in chunks for chunk in text_chunks]
    sources = [texts[i] for i, text_chunks in enumerate(chunks) for _ in text_chunks]
    fitted = yield from fit_flow(flat, sources, limit, prefix, count)
    out: list[list[Chunk]] = []
    position = 0
    for text_chunks in chunks:
        out.append([piece for pieces in fitted[position : position + len(text_chunks)] for piece in pieces])
        position += len(text_chunks)
    return out


class Encoding(Protocol):
    """What fitting reads of one text's encoding (a ``tokenizers.Encoding``): its tokens and their characters."""

    def __len__(self) -> int: ...

    def token_to_chars(self, token: int) -> tuple[int, int] | None:
        """The ``(start, end)`` characters of token ``token``; ``None`` for a special token."""
        ...


class Tokenizer(Protocol):
    """What fitting needs of a local tokenizer (a ``tokenizers.Tokenizer``): texts encoded in one batch."""

    def encode_batch(
        self,
        input: Sequence[str],  # noqa: A002 - tokenizers' name for it
        is_pretokenized: bool = False,
        add_special_tokens: bool = True,
    ) -> Sequence[Encoding]:
        """Each text's encoding, special tokens added as the model adds them."""
        ...


def open_tokenizer(tokenizer: object) -> Tokenizer:
    """A ``tokenizers.Tokenizer`` from itself or a ``tokenizer.json`` path, checked now.

    Raises:
        ConfigError: the path does not exist or is not a tokenizer; the object is not a Tokenizer.
        ImportError: a path was given and the ``tokenizers`` package is missing.
    """
    if isinstance(tokenizer, str | os.PathLike):
        try:
            from tokenizers import Tokenizer as HFTokenizer
        except ImportError as err:
            raise ImportError('tokenizer= needs the tokenizers package: pip install "hf-infer[tokenizers]"') from err
        path = os.fspath(tokenizer)
        try:
            tokenizer = HFTokenizer.from_file(path)
        except Exception as err:  # tokenizers raises a bare Exception for a missing or bad file
            raise ConfigError([f"[tokenizer] cannot load a tokenizer.json from {path!r}: {err}"]) from None
    if not callable(getattr(tokenizer, "encode_batch", None)):
        raise ConfigError(
            [f"[tokenizer] must be a tokenizers.Tokenizer or a tokenizer.json path, got {type(tokenizer).__name__}"]
        )
    return cast(Tokenizer, tokenizer)


class LocalTokenizer:
    """A :data:`Tokenize` over a local tokenizer, with a ``fingerprint`` of what it is.

    Chunks fitted by one tokenizer are not another's, so a vector pooled from them is keyed by
    the fingerprint (the digest of the tokenizer's JSON form; of its type when it has none).
    """

    __slots__ = ("_encode_batch", "fingerprint")

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._encode_batch = tokenizer.encode_batch
        to_str = getattr(tokenizer, "to_str", None)
        described = to_str() if callable(to_str) else f"{type(tokenizer).__module__}.{type(tokenizer).__qualname__}"
        self.fingerprint = hashlib.blake2b(described.encode(), digest_size=16).hexdigest()

    def __call__(self, texts: list[str]) -> list[Tokens]:
        return [_encoded(encoding) for encoding in self._encode_batch(texts, add_special_tokens=True)]


def load_tokenizer(tokenizer: object) -> LocalTokenizer:
    """A local tokenizer for fitting, from a ``tokenizers.Tokenizer`` or a ``tokenizer.json`` path (see :func:`open_tokenizer`)."""
    return LocalTokenizer(_untruncated(open_tokenizer(tokenizer)))


def _untruncated(tokenizer: Tokenizer) -> Tokenizer:
    """``tokenizer`` without truncation and padding: a copy when it has either, never the caller's own object.

    The model's own truncation and padding would hide the very overflow being measured; turning
    them off on the caller's tokenizer would change what their own ``encode`` returns.
    """
    if getattr(tokenizer, "truncation", None) is None and getattr(tokenizer, "padding", None) is None:
        return tokenizer
    to_str = getattr(tokenizer, "to_str", None)
    # tokenizers' from_str is a classmethod of the concrete type, not part of what fitting needs.
    from_str: Callable[[str], Tokenizer] | None = getattr(type(tokenizer), "from_str", None)
    copy = from_str(to_str()) if callable(to_str) and from_str is not None else deepcopy(tokenizer)
    for method in ("no_truncation", "no_padding"):
        if callable(getattr(copy, method, None)):
            getattr(copy, method)()
    return copy


def _encoded(encoding: Encoding) -> Tokens:
    """A ``tokenizers.Encoding`` as :class:`Tokens`; special tokens are those with no characters."""
    chars = encoding.token_to_chars
    total = len(encoding)
    lead = 0
    while lead < total and chars(lead) is None:
        lead += 1
    trail = 0
    while trail < total - lead and chars(total - 1 - trail) is None:
        trail += 1
    # Only the text's own tokens are asked for, and each of those has its characters.
    return Tokens(lead + trail, total - lead - trail, lambda k: cast("tuple[int, int]", chars(k + lead)))


def fit_locally(text: str, chunks: list[Chunk], tokenize: Tokenize, limit: int, prefix: str = "") -> list[Chunk]:
    """Fit one text's ``chunks`` to ``limit`` with a local tokenizer (see :func:`load_tokenizer`)."""
    fitted: list[list[Chunk]] = result_of(fit_texts_flow([text], [chunks], limit, prefix, counted_locally(tokenize)))
    return fitted[0]


def token_fitter(
    settings: object, tokenizer: object, max_input_tokens: int | None
) -> Callable[[str, list[Chunk]], list[Chunk]]:
    """What the splitters apply to each text's chunks: fitting with ``tokenizer``, or nothing.

    The limit is ``max_input_tokens``, else the endpoint's when ``settings`` is an
    :class:`~hf_infer_core.InferenceEndpoint`. A limit without a tokenizer (or the reverse) is an
    error: the splitters have no endpoint to ask.
    """
    from ..config import InferenceEndpoint

    limit = max_input_tokens
    if limit is None and isinstance(settings, InferenceEndpoint):
        limit = settings.service_settings.max_input_tokens
    if tokenizer is None and max_input_tokens is None:
        return lambda text, chunks: chunks
    if tokenizer is None or limit is None:
        raise ConfigError(["fitting chunks needs both tokenizer= and max_input_tokens= (or an endpoint's)"])
    if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
        raise ConfigError([f"[max_input_tokens] must be a positive integer, got {limit!r}"])
    tokenize = load_tokenizer(tokenizer)
    return lambda text, chunks: fit_locally(text, chunks, tokenize, limit)
