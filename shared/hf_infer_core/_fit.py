"""Chunks that fit the model's token limit, without I/O: the counting is asked for, not done.

Elasticsearch's chunks are measured in words; models read a fixed number of word pieces (256 for
all-MiniLM-L6-v2, 512 for e5). A chunk over the limit would get a 413 from a TEI server, or lose
its end to truncation. :func:`fit_flow` splits every such chunk again at word boundaries into the
fewest pieces that fit, keeping exact offsets, and leaves every other chunk as it is.

It is a generator in the manner of the client core: it yields lists of strings whose token
counts it needs (special tokens included) and receives the counts back, so the same flow runs
with a local ``tokenizers.Tokenizer``, or with the endpoint's own ``POST /tokenize`` (rate
limited and retried like any request) from the sync or the async client.

The pieces of one chunk are found greedily: each piece is the longest run of whole words, from
where the last one ended, that fits; since a longer run never has fewer tokens, the greedy cut
gives the fewest pieces. Each cut is a binary search over the chunk's word ends, all chunks
searched in lockstep so that one round of counting serves them all (about log2(words) rounds).
A single word longer than the limit (a URL, a run of digits) is cut between characters.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field

from ._chunking import Chunk, word_ends_within

__all__ = ["SAFE_MARGIN", "fit_flow", "fit_locally", "fit_texts_flow", "load_tokenizer", "needs_count", "token_fitter"]

# A chunk whose UTF-8 length plus this margin is within the limit cannot have more tokens than
# the limit: word-piece and byte-level tokenizers give at most one token per byte, and the
# special tokens a model adds are far fewer than 16. Such chunks are not sent to be counted.
SAFE_MARGIN = 16

FitFlow = Generator[list[str], list[int], list[list[Chunk]]]


def needs_count(text: str, limit: int) -> bool:
    """True when ``text`` might have more than ``limit`` tokens (it is too long to be surely under)."""
    return len(text) + SAFE_MARGIN > limit and len(text.encode("utf-8")) + SAFE_MARGIN > limit


@dataclass
class _Split:
    """The search for the pieces of one chunk over ``limit``."""

    chunk: Chunk
    source: str  # the whole text the chunk's offsets point into
    ends: list[int]  # candidate cut positions (word ends, or characters), ascending, last = chunk end
    start: int  # where the next piece starts
    lo: int = 0  # ends[lo - 1] is known to fit (or lo == 0: nothing known yet)
    hi: int = 0  # ends[hi] is known not to fit (hi == len(ends): unknown)
    pieces: list[Chunk] = field(default_factory=list)


def fit_flow(chunks: Sequence[Chunk], sources: Sequence[str], limit: int, prefix: str = "") -> FitFlow:
    """Return, for each chunk, the pieces it becomes (itself when it fits), as ``StopIteration.value``.

    Args:
        chunks: Elasticsearch chunks (any texts).
        sources: For each chunk, the text its offsets point into.
        limit: The model's token limit, special tokens included.
        prefix: What the client prepends before sending (``document_prefix``): counted too.

    Yields lists of strings to count; send back one count per string, in order.
    """
    out: list[list[Chunk]] = [[chunk] for chunk in chunks]
    candidates = [i for i, chunk in enumerate(chunks) if needs_count(prefix + chunk.text, limit)]
    if not candidates:
        return out
    counts = yield [prefix + chunks[i].text for i in candidates]
    splits: dict[int, _Split] = {}
    for i, count in zip(candidates, counts, strict=True):
        if count > limit:
            chunk = chunks[i]
            ends = word_ends_within(sources[i], chunk.start, chunk.end)
            splits[i] = _Split(chunk, sources[i], ends, chunk.start, hi=len(ends))
    while splits:
        # One probe per unfinished search: the middle of what is still unknown.
        probes = [(i, (split.lo + split.hi) // 2) for i, split in splits.items()]
        texts = [prefix + splits[i].source[splits[i].start : splits[i].ends[mid]] for i, mid in probes]
        counts = yield texts
        for (i, mid), count in zip(probes, counts, strict=True):
            split = splits[i]
            if count <= limit:
                split.lo = mid + 1
            else:
                split.hi = mid
            if split.lo < split.hi:
                continue
            if split.lo == 0:
                # Not even the first word fits: cut inside it, between characters (ends[hi] is
                # the word's end, known not to fit).
                word_end = split.ends[0]
                split.ends = list(range(split.start + 1, word_end + 1)) + split.ends[1:]
                split.hi = word_end - split.start - 1
                if split.hi > 0:
                    continue
                split.lo = 1  # one character over the limit: it goes alone, nothing smaller exists
            end = split.ends[split.lo - 1]
            split.pieces.append(_piece(split, end))
            split.start = end
            if end >= split.chunk.end:
                out[i] = split.pieces
                del splits[i]
                continue
            split.ends = [e for e in split.ends if e > end]
            split.lo, split.hi = 0, len(split.ends)
            # The rest may fit whole: probe it first (the common last piece).
            rest = prefix + split.source[end : split.chunk.end]
            if not needs_count(rest, limit):
                split.pieces.append(_piece(split, split.chunk.end))
                out[i] = split.pieces
                del splits[i]
    return out


def _piece(split: _Split, end: int) -> Chunk:
    start = split.start
    return Chunk(start, end, split.source[start:end], source=(split.chunk.start, split.chunk.end))


def fit_texts_flow(texts: Sequence[str], chunks: Sequence[Sequence[Chunk]], limit: int, prefix: str = "") -> FitFlow:
    """:func:`fit_flow` over every chunk of every text; returns each text's chunks, fitted."""
    flat = [chunk for text_chunks in chunks for chunk in text_chunks]
    sources = [texts[i] for i, text_chunks in enumerate(chunks) for _ in text_chunks]
    fitted = yield from fit_flow(flat, sources, limit, prefix)
    out: list[list[Chunk]] = []
    position = 0
    for text_chunks in chunks:
        out.append([piece for pieces in fitted[position : position + len(text_chunks)] for piece in pieces])
        position += len(text_chunks)
    return out


def load_tokenizer(tokenizer: object) -> Callable[[list[str]], list[int]]:
    """A token counter (special tokens included) from a ``tokenizers.Tokenizer`` or a ``tokenizer.json`` path."""
    if isinstance(tokenizer, str | os.PathLike):
        try:
            from tokenizers import Tokenizer
        except ImportError as err:
            raise ImportError('tokenizer= needs the tokenizers package: pip install "hf-infer[tokenizers]"') from err
        tokenizer = Tokenizer.from_file(os.fspath(tokenizer))
    encode_batch = getattr(tokenizer, "encode_batch", None)
    if not callable(encode_batch):
        raise TypeError(
            f"tokenizer must be a tokenizers.Tokenizer or a tokenizer.json path, got {type(tokenizer).__name__}"
        )
    # The model's own truncation and padding would hide the very overflow being measured.
    for method in ("no_truncation", "no_padding"):
        if callable(getattr(tokenizer, method, None)):
            getattr(tokenizer, method)()

    def count(texts: list[str]) -> list[int]:
        return [len(encoding.ids) for encoding in encode_batch(texts, add_special_tokens=True)]

    return count


def fit_locally(
    text: str, chunks: list[Chunk], count: Callable[[list[str]], list[int]], limit: int, prefix: str = ""
) -> list[Chunk]:
    """Fit one text's ``chunks`` to ``limit`` with a local counter (see :func:`load_tokenizer`)."""
    flow = fit_texts_flow([text], [chunks], limit, prefix)
    try:
        request = next(flow)
        while True:
            request = flow.send(count(request))
    except StopIteration as stop:
        fitted: list[list[Chunk]] = stop.value
        return fitted[0]


def token_fitter(
    settings: object, tokenizer: object, max_input_tokens: int | None
) -> Callable[[str, list[Chunk]], list[Chunk]]:
    """What the splitters apply to each text's chunks: fitting with ``tokenizer``, or nothing.

    The limit is ``max_input_tokens``, else the endpoint's when ``settings`` is an
    :class:`~hf_infer_core.InferenceEndpoint`. A limit without a tokenizer (or the reverse) is an
    error: the splitters have no endpoint to ask.
    """
    from ._config import InferenceEndpoint

    limit = max_input_tokens
    if limit is None and isinstance(settings, InferenceEndpoint):
        limit = settings.service_settings.max_input_tokens
    if tokenizer is None and max_input_tokens is None:
        return lambda text, chunks: chunks
    if tokenizer is None or limit is None:
        raise ValueError("fitting chunks needs both tokenizer= and max_input_tokens= (or an endpoint's)")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
        raise ValueError(f"max_input_tokens must be a positive integer, got {limit!r}")
    count = load_tokenizer(tokenizer)
    return lambda text, chunks: fit_locally(text, chunks, count, limit)
