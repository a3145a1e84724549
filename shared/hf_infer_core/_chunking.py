"""Split text into chunks the way Elasticsearch's inference chunkers do.

This is a port of the behaviour (not the code) of Elasticsearch's
``WordBoundaryChunker``, ``SentenceBoundaryChunker`` and ``RecursiveChunker``,
including their word counting: words come from ICU's word break iterator (root
locale, through icu4py, so CJK text is split on ICU's dictionary words), and a
count that starts at ``start`` begins at the boundary *before* ``start``, as
Elasticsearch's ``countWords``/``skipWords`` do.

Which ICU segments are words: ICU's rule status is not exposed by icu4py, so a
segment counts as a word when it holds a letter (Unicode ``L*`` or ``Nl``) or a
decimal digit (``Nd``). Those are the characters ICU's word rules tag as
letter, number, kana or ideograph; whitespace, punctuation, symbols and emoji
segments hold none of them and are "none" for ICU too.

Offsets are Python string indices into the original text (ICU works in UTF-16;
the segments are measured as Python strings, so text outside the BMP such as
emoji keeps exact offsets). A chunk's text is always ``text[start:end]``.

Empty text gives no chunk (``[]``): there is nothing to embed. Elasticsearch
embeds an empty input as one empty chunk; the client keeps that behaviour for
``embed`` by sending the empty string as is.
"""

from __future__ import annotations

import json
import re
import unicodedata
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, compress
from operator import itemgetter
from typing import Any

from icu4py.breakers import SentenceBreaker, WordBreaker

from ._config import ChunkingSettings, InferenceEndpoint
from ._errors import ConfigError, InvalidInputError

__all__ = ["Chunk", "chunk_text", "count_words", "resolve_chunking_settings", "word_ends_within"]

_ROOT_LOCALE = ""
# Elasticsearch caps the words a sentence carries into the next chunk, and the overlap
# used when one sentence alone is longer than a chunk, at 20.
_MAX_CARRIED_WORDS = 20


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a text: ``text == original[start:end]``; ``word_count`` counts ICU words inside it.

    ``source`` is set on a piece of an Elasticsearch chunk that was split again to fit the
    model's token limit: the ``(start, end)`` of the chunk it came from (``None`` otherwise).
    """

    start: int
    end: int
    text: str
    # Counted on first use when the chunker had no reason to count (a short text is one chunk).
    _words: int | None = field(default=None, repr=False, compare=False)
    source: tuple[int, int] | None = field(default=None, compare=False)

    @property
    def word_count(self) -> int:
        """ICU words inside the chunk (as Elasticsearch counts them)."""
        if self._words is None:
            object.__setattr__(self, "_words", count_words(self.text))
        return self._words  # type: ignore[return-value]


class _WordKind(dict[int, int]):
    """Memo, by code point, of "can a segment starting with this character be a word".

    1 yes, 0 no, 2 look at the whole segment. Used as a ``str.translate`` table so that
    classifying two million segments runs in C.
    """

    def __missing__(self, code: int) -> int:
        ch = chr(code)
        if ch.isalpha() or ch.isdecimal() or unicodedata.category(ch) == "Nl":
            kind = 1
        elif ch == "_" or unicodedata.category(ch).startswith("M"):
            # "_" (ExtendNumLet) and leading combining marks can open a word or stand alone.
            kind = 2
        else:
            kind = 0
        self[code] = kind
        return kind


_WORD_KIND = _WordKind()
# Segments whose first characters are classified at once (a bounded temporary list).
_FLAG_BLOCK = 1 << 16
_first_char = itemgetter(0)


def _holds_word_char(segment: str) -> bool:
    return any(c.isalpha() or c.isdecimal() or unicodedata.category(c) == "Nl" for c in segment)


def _bounds(breaker_cls: type[WordBreaker] | type[SentenceBreaker], text: str) -> array[int]:
    """Every segment boundary of ``text`` (0 first, ``len(text)`` last), as C integers.

    Iterating a breaker yields the segments as Python strings one at a time: measuring them with
    len() gives Python offsets directly (no UTF-16 conversion), and no segment outlives its own
    measurement. An array of C ints, not a list of Python ints or of the segments, keeps memory
    at 4 bytes a boundary: chunking a 20 MB text peaks under 5x its size, not 33x.
    """
    out = array(_offset_type(text), [0])
    start = 0
    cut = _BLOCK_CUTS[breaker_cls]
    while start < len(text):
        # ICU copies what it breaks to UTF-16: a block at a time bounds that copy. A block ends
        # only where ICU breaks whatever the context (see _BLOCK_CUTS), so its segments are
        # exactly the whole text's.
        found = cut.search(text, start + _BREAK_BLOCK) if len(text) - start > _BREAK_BLOCK else None
        end = found.start() if found else len(text)
        try:
            lengths = accumulate(map(len, breaker_cls(text[start:end], _ROOT_LOCALE)), initial=start)
            next(lengths)  # the block's start, already there
            out.extend(lengths)
        except UnicodeEncodeError as err:
            raise _surrogate_error(text, start + err.start) from None
        start = end
    return out


# Where a block may end: ICU breaks words between a space and a letter (no word-break rule joins
# them), and sentences after a line feed (SB4: a paragraph separator always ends a sentence).
_BLOCK_CUTS: dict[type[WordBreaker] | type[SentenceBreaker], re.Pattern[str]] = {
    WordBreaker: re.compile(r"(?<= )(?=[A-Za-z])"),
    SentenceBreaker: re.compile(r"(?<=\n)"),
}
_BREAK_BLOCK = 1 << 20


def _offset_type(text: str) -> str:
    return "i" if len(text) < 2**31 else "q"


def _surrogate_error(text: str, position: int) -> InvalidInputError:
    return InvalidInputError(
        f"text holds a lone surrogate ({text[position]!r}) at position {position}; it is not valid Unicode "
        "and cannot be segmented or sent (decode the source with errors='replace')"
    )


def _word_flags(text: str, bounds: array[int]) -> bytearray:
    """One byte per boundary: 1 when the segment ending there is a word (byte 0 is the text start)."""
    flags = bytearray(b"\0")
    segments = len(bounds) - 1
    # Each segment's first character, block by block: a string of them for all segments at once
    # would first be a list of one pointer per segment.
    for lo in range(0, segments, _FLAG_BLOCK):
        starts = bounds[lo : min(segments, lo + _FLAG_BLOCK)]
        flags += "".join(map(text.__getitem__, starts)).translate(_WORD_KIND).encode("latin-1")
    i = flags.find(2)
    while i != -1:
        flags[i] = _holds_word_char(text[bounds[i - 1] : bounds[i]])
        i = flags.find(2, i + 1)
    return flags


def _word_ends(text: str) -> array[int]:
    """End offsets of the word segments of ``text``; all the word strategy needs."""
    bounds = _bounds(WordBreaker, text)
    return array(bounds.typecode, compress(bounds, _word_flags(text, bounds)))


class _WordIndex:
    """ICU word boundaries of one text, for Elasticsearch-style word counts.

    ``bounds[i]`` is the i-th boundary (``bounds[0] == 0``); ``word_flags[i]`` is 1 when the
    segment ending at ``bounds[i]`` is a word (the ICU rule status that boundary reports).
    Memory is linear in the text: one int and one byte per ICU segment.
    """

    __slots__ = ("_hint", "bounds", "length", "word_flags")

    def __init__(self, text: str) -> None:
        self.length = len(text)
        self.bounds = _bounds(WordBreaker, text)
        self.word_flags = _word_flags(text, self.bounds)
        self._hint = 0

    def word_ends(self) -> array[int]:
        """End offsets of every word segment, in order."""
        return array(self.bounds.typecode, compress(self.bounds, self.word_flags))

    def span_counts(self, ends: Sequence[int]) -> list[int]:
        """``count_words`` for the consecutive spans ``[0, ends[0])``, ``[ends[0], ends[1])``, ...

        One tight loop for all sentences: this is the sentence strategy's hot path.
        """
        bounds, count, n = self.bounds, self.word_flags.count, len(self.bounds)
        out: list[int] = []
        preceding = lo = 0
        for end in ends:
            # Boundaries are distinct integers, so end's index is at most end - bounds[lo] further on.
            j = bisect_right(bounds, end, lo, min(n, lo + end - bounds[lo] + 1)) - 1
            out.append(count(1, preceding, j + 1))
            preceding = j - 1 if bounds[j] == end and j else j
            lo = j
        return out

    def _index_after(self, start: int, end: int) -> int:
        # Index of the last boundary <= end. Callers walk forward, so search from the last
        # answer; boundaries are distinct integers, so the answer is at most end - start further.
        lo = self._hint if self.bounds[self._hint] <= start else 0
        j = bisect_right(self.bounds, end, lo, min(len(self.bounds), lo + end - self.bounds[lo] + 1)) - 1
        self._hint = j
        return j

    def _preceding(self, start: int) -> int:
        # Index of ICU's preceding(start): the last boundary before start (boundary 0 at the text start).
        hint = self._hint
        if hint and self.bounds[hint] == start:
            return hint - 1
        return max(bisect_left(self.bounds, start) - 1, 0)

    def count_words(self, start: int, end: int) -> int:
        """Elasticsearch's countWords: word statuses at boundaries from preceding(start) up to end."""
        j0 = self._preceding(start)
        j1 = self._index_after(start, end)
        return self.word_flags.count(1, j0, j1 + 1)

    def words_within(self, start: int, end: int) -> int:
        """Word segments lying inside ``[start, end)`` (no look-behind), for reporting."""
        return self.word_flags.count(1, bisect_right(self.bounds, start), bisect_right(self.bounds, end))

    def skip_words(self, start: int, n: int) -> int:
        """Elasticsearch's skipWords: the boundary after the n-th word counted from preceding(start)."""
        k = self._preceding(start)
        if n <= 0:
            return self.bounds[k]
        k -= 1
        for _ in range(n):
            k = self.word_flags.find(1, k + 1)
            if k == -1:
                return self.length
        return self.bounds[k + 1] if k + 1 < len(self.bounds) else self.length


def _word_chunks(
    words: Sequence[int], length: int, size: int, overlap: int, keep_trailing: bool = False
) -> list[tuple[int, int, int]]:
    """Elasticsearch's word-boundary windows over the word end offsets ``words``.

    Returns ``(start, end, words_including_overlap)``. A full window holds ``size`` words;
    each next window starts where the last ``overlap`` words of the previous began (at its
    end when overlap is 0), so window i ends at word ``size - 1 + i * step`` and starts at the
    end of word ``i * step - 1``. The remainder becomes a chunk only if it adds new words,
    or if it is the only chunk; otherwise it is dropped, as Elasticsearch drops it (a last
    chunk then ends at its last word), unless ``keep_trailing`` extends the last chunk over it.
    """
    step = size - overlap
    total = len(words)
    full = 0 if total < size else 1 + (total - size) // step
    out: list[tuple[int, int, int]] = []
    start = 0
    for i in range(full):
        if i:
            start = words[i * step - 1]
        out.append((start, words[size - 1 + i * step], size))
    if full:
        start = words[full * step - 1]
        remaining = overlap + total - size - (full - 1) * step
    else:
        remaining = total
    if remaining > overlap or not out:
        out.append((start, length, remaining))
    elif keep_trailing and out[-1][1] < length:
        # Elasticsearch drops a remainder that adds no word (trailing punctuation or space), and
        # so does hf-infer by default: the same offsets give the same vectors, so one index can
        # hold both. keep_trailing_text asks for chunks that cover the whole text instead.
        out[-1] = (out[-1][0], length, out[-1][2])
    return out


def _sentence_chunks(text: str, index: _WordIndex, size: int, carry_sentence: bool) -> list[tuple[int, int]]:
    """Elasticsearch's sentence-boundary chunking, ``carry_sentence`` being sentence_overlap 1."""
    chunks: list[tuple[int, int]] = []
    chunk_start = chunk_end = sentence_start = chunk_words = 0
    previous_words = previous_start = 0
    carried_max = min(size // 2, _MAX_CARRIED_WORDS)
    split_overlap = min(_MAX_CARRIED_WORDS, (size - 1) // 2)

    sentence_ends = _bounds(SentenceBreaker, text)[1:]
    for sentence_end, words in zip(sentence_ends, index.span_counts(sentence_ends), strict=True):
        if chunk_words + words > size:
            next_words = words
            if chunk_words > 0:
                chunks.append((chunk_start, chunk_end))
                if carry_sentence:
                    if previous_words + words > size:
                        skip = previous_words - carried_max if previous_words > carried_max else 0
                        chunk_start = index.skip_words(previous_start, skip)
                        chunk_words = previous_words - skip + words
                    else:
                        chunk_words = previous_words + words
                        chunk_start = previous_start
                    next_words = chunk_words
                else:
                    chunk_start = chunk_end
                    chunk_words = words
            if next_words > size:
                # One sentence (with its carried overlap) is longer than a chunk: cut it into word
                # windows; all but the last are chunks, the last opens the next chunk.
                piece = text[chunk_start:sentence_end]
                splits = _word_chunks(_word_ends(piece), len(piece), size, split_overlap)
                chunks.extend((chunk_start + s, chunk_start + e) for s, e, _ in splits[:-1])
                chunk_start += splits[-1][0]
                chunk_words = splits[-1][2]
        else:
            chunk_words += words
        if carry_sentence:
            previous_start = sentence_start
            previous_words = words
        sentence_start = chunk_end = sentence_end

    if chunk_words > 0:
        chunks.append((chunk_start, len(text)))
    if not chunks:
        chunks.append((0, len(text)))
    return chunks


def _recursive_chunks(text: str, separators: tuple[str, ...], size: int) -> list[tuple[int, int]]:
    """Elasticsearch's recursive chunking: split on each separator in turn, merge, recurse, fall back."""
    patterns = [re.compile(s) for s in separators]

    def chunk(piece: str, level: int, offset: int) -> list[tuple[int, int]]:
        index = _WordIndex(piece)
        if len(piece) < 2 or index.count_words(0, len(piece)) <= size:
            return [(offset, offset + len(piece))]
        if level >= len(patterns):
            return [(offset + s, offset + e) for s, e in _sentence_chunks(piece, index, size, False)]
        out: list[tuple[int, int]] = []
        for s, e in _merge(piece, index, _split(piece, patterns[level]), size):
            if index.count_words(s, e) <= size:
                out.append((offset + s, offset + e))
            else:
                out.extend(chunk(piece[s:e], level + 1, offset + s))
        return out

    return chunk(text, 0, 0)


def _split(text: str, pattern: re.Pattern[str]) -> list[tuple[int, int]]:
    # Each separator match begins the next piece, so no character is lost or moved.
    pieces: list[tuple[int, int]] = []
    piece_start = 0
    pos = 0
    while pos <= len(text) and (match := pattern.search(text, pos)) is not None:
        if piece_start < match.start():
            pieces.append((piece_start, match.start()))
        piece_start = match.start()
        # An empty match would never move on (Elasticsearch loops forever on one); step past it.
        pos = match.end() if match.end() > match.start() else match.end() + 1
    if piece_start < len(text):
        pieces.append((piece_start, len(text)))
    return pieces


def _merge(text: str, index: _WordIndex, pieces: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    if len(pieces) < 2:
        return pieces
    merged: list[tuple[int, int]] = []
    current = pieces[0]
    for piece in pieces[1:]:
        candidate = (current[0], piece[1])
        if index.count_words(*candidate) <= size:
            current = candidate
        else:
            merged.append(current)
            current = piece
    merged.append(current)
    return merged


def _surely_one_chunk(text: str, config: ChunkingSettings) -> bool:
    """True when ``text`` is too short to be split, so ICU need not run (the common case for queries).

    Every word takes at least one character, so a text of at most ``max_chunk_size`` characters
    holds at most that many words: one chunk for the word and recursive strategies. The sentence
    strategy's look-behind count adds at most one word per sentence, and every sentence takes a
    character too, so half that length is enough there.
    """
    if config.strategy == "none":
        return True
    size = config.max_chunk_size or 0
    limit = size // 2 if config.strategy == "sentence" else size
    return len(text) <= limit


def resolve_chunking_settings(
    settings: ChunkingSettings | InferenceEndpoint | Mapping[str, Any] | str | None,
) -> ChunkingSettings:
    """Accept chunking settings as a model, an endpoint, an Elasticsearch dict or its JSON text."""
    if settings is None or isinstance(settings, ChunkingSettings):
        return settings or ChunkingSettings()
    if isinstance(settings, InferenceEndpoint):
        return settings.chunking_settings
    if isinstance(settings, str):
        try:
            settings = json.loads(settings)
        except json.JSONDecodeError as err:
            raise ConfigError([f"chunking settings are not valid JSON: {err.msg}"]) from None
    if isinstance(settings, Mapping) and "chunking_settings" in settings:
        settings = settings["chunking_settings"]
    if settings is not None and not isinstance(settings, Mapping):
        raise ConfigError([f"[chunking_settings] must be an object, got {type(settings).__name__}"])
    return ChunkingSettings.from_dict(settings)


def chunk_text(
    text: str,
    settings: ChunkingSettings | InferenceEndpoint | Mapping[str, Any] | str | None = None,
    *,
    keep_trailing_text: bool = False,
) -> list[Chunk]:
    """Split ``text`` into chunks exactly as Elasticsearch would for these chunking settings.

    Args:
        text: The text to split.
        settings: Chunking settings (model, endpoint, Elasticsearch dict or JSON); ``None``
            means Elasticsearch's default (sentence, 250 words, sentence_overlap 1).
        keep_trailing_text: The word strategy drops a trailing remainder that holds no word
            (``"... end. "``), as Elasticsearch does; True extends the last chunk over it, so
            the chunks cover the whole text (offsets then differ from Elasticsearch's).

    Returns:
        The chunks in text order, each with its ``[start, end)`` offsets; ``[]`` for empty text.

    Raises:
        TypeError: if ``text`` is not a ``str``.
        InvalidInputError: if ``text`` holds lone surrogates.
        ConfigError: if the settings are invalid.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    config = resolve_chunking_settings(settings)
    if not text:
        return []
    if _surely_one_chunk(text, config):
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as err:
                raise _surrogate_error(text, err.start) from None
        return [Chunk(0, len(text), text)]
    if config.strategy == "none":
        index = None
        spans = [(0, len(text))]
    else:
        size = config.max_chunk_size
        assert size is not None  # guaranteed by ChunkingSettings validation
        if config.strategy == "recursive":
            index = None
            spans = _recursive_chunks(text, config.effective_separators, size)
        elif config.strategy == "word":
            return [
                Chunk(s, e, text[s:e], n)
                for s, e, n in _word_chunks(_word_ends(text), len(text), size, config.overlap or 0, keep_trailing_text)
            ]
        else:
            index = _WordIndex(text)
            spans = _sentence_chunks(text, index, size, bool(config.sentence_overlap))
    if index is None:
        index = _WordIndex(text)
    return [Chunk(s, e, text[s:e], index.words_within(s, e)) for s, e in spans]


def word_ends_within(text: str, start: int, end: int) -> list[int]:
    """Offsets in ``text`` where an ICU word inside ``text[start:end]`` ends, and ``end`` itself.

    The places a chunk can be cut without cutting a word; whitespace and punctuation after a word
    go to the start of the next piece, as Elasticsearch's chunks begin.
    """
    ends = [start + e for e in _word_ends(text[start:end]) if 0 < e < end - start]
    return [*ends, end]


def count_words(text: str) -> int:
    """Count the words in ``text`` as Elasticsearch's chunkers count them (ICU word segments)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return _WordIndex(text).word_flags.count(1) if text else 0
