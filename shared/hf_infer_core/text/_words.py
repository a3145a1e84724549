"""ICU word segmentation as Elasticsearch counts words: boundaries, word flags, and counts.

The chunkers measure everything in these words. A segment is a word when it holds a letter or a
decimal digit (icu4py does not expose ICU's rule status); boundaries are kept as C integers and ICU
is fed large texts a block at a time, so memory stays a few times the text's size.
"""

from __future__ import annotations

import re
import unicodedata
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from itertools import accumulate, compress
from operator import itemgetter

from icu4py.breakers import SentenceBreaker, WordBreaker

from ..base._errors import InvalidInputError

__all__ = [
    "ROOT_LOCALE",
    "WordIndex",
    "boundaries",
    "count_words",
    "sentence_ends",
    "surrogate_error",
    "word_ends",
    "word_ends_within",
]

ROOT_LOCALE = ""


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
_first_char = itemgetter(0)


def _holds_word_char(segment: str) -> bool:
    return any(c.isalpha() or c.isdecimal() or unicodedata.category(c) == "Nl" for c in segment)


def boundaries(breaker_cls: type[WordBreaker] | type[SentenceBreaker], text: str) -> array[int]:
    """Every segment boundary of ``text`` (0 first, ``len(text)`` last), as C integers."""
    return _segment(breaker_cls, text, None)


def _segment(breaker_cls: type[WordBreaker] | type[SentenceBreaker], text: str, flags: bytearray | None) -> array[int]:
    """The boundaries of ``text``; with ``flags``, each segment's word flag appended to it too.

    A block of text at a time: ICU copies what it breaks to UTF-16, and the block's segments (as
    Python strings, measured with len(): Python offsets, no UTF-16 conversion) live only while it
    is read. What stays is 4 bytes per boundary and 1 per flag: chunking a 20 MB text peaks at a
    few times its size, not 33x. A block ends only where ICU breaks whatever the context
    (:data:`_BLOCK_CUTS`), so its segments are exactly the whole text's.
    """
    out = array(_offset_type(text), [0])
    start = 0
    cut = _BLOCK_CUTS[breaker_cls]
    while start < len(text):
        found = cut.search(text, start + _BREAK_BLOCK) if len(text) - start > _BREAK_BLOCK else None
        end = found.start() if found else len(text)
        try:
            segments = list(breaker_cls(text[start:end], ROOT_LOCALE))
        except UnicodeEncodeError as err:
            raise surrogate_error(text, start + err.start) from None
        lengths = accumulate(map(len, segments), initial=start)
        next(lengths)  # the block's start, already there
        out.extend(lengths)
        if flags is not None:
            flags += _word_flags(segments)
        start = end
    return out


# Where a block may end: ICU breaks words between a space and a letter (no word-break rule joins
# them), and sentences after a line feed (SB4: a paragraph separator always ends a sentence).
_BLOCK_CUTS: dict[type[WordBreaker] | type[SentenceBreaker], re.Pattern[str]] = {
    WordBreaker: re.compile(r"(?<= )(?=[A-Za-z])"),
    SentenceBreaker: re.compile(r"(?<=\n)"),
}
_BREAK_BLOCK = 1 << 18  # characters; the block's segment strings are its temporary memory


def _offset_type(text: str) -> str:
    return "i" if len(text) < 2**31 else "q"


def surrogate_error(text: str, position: int) -> InvalidInputError:
    return InvalidInputError(
        f"text holds a lone surrogate ({text[position]!r}) at position {position}; it is not valid Unicode "
        "and cannot be segmented or sent (decode the source with errors='replace')"
    )


def _word_flags(segments: list[str]) -> bytearray:
    """One byte per segment: 1 when it is a word (its first character says so, or, rarely, the rest)."""
    flags = bytearray("".join(map(_first_char, segments)).translate(_WORD_KIND).encode("latin-1"))
    i = flags.find(2)
    while i != -1:
        flags[i] = _holds_word_char(segments[i])
        i = flags.find(2, i + 1)
    return flags


def word_ends(text: str) -> array[int]:
    """End offsets of the word segments of ``text``; all the word strategy needs."""
    flags = bytearray(b"\0")  # byte 0: the text start
    bounds = _segment(WordBreaker, text, flags)
    return array(bounds.typecode, compress(bounds, flags))


class WordIndex:
    """ICU word boundaries of one text, for Elasticsearch-style word counts.

    ``bounds[i]`` is the i-th boundary (``bounds[0] == 0``); ``word_flags[i]`` is 1 when the
    segment ending at ``bounds[i]`` is a word (the ICU rule status that boundary reports).
    Memory is linear in the text: one int and one byte per ICU segment.
    """

    __slots__ = ("_hint", "bounds", "length", "word_flags")

    def __init__(self, text: str) -> None:
        self.length = len(text)
        self.word_flags = bytearray(b"\0")  # byte 0: the text start
        self.bounds = _segment(WordBreaker, text, self.word_flags)
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


def word_ends_within(text: str, start: int, end: int) -> list[int]:
    """Offsets in ``text`` where an ICU word inside ``text[start:end]`` ends, and ``end`` itself.

    The places a chunk can be cut without cutting a word; whitespace and punctuation after a word
    go to the start of the next piece, as Elasticsearch's chunks begin.
    """
    ends = [start + e for e in word_ends(text[start:end]) if 0 < e < end - start]
    return [*ends, end]


def count_words(text: str) -> int:
    """Count the words in ``text`` as Elasticsearch's chunkers count them (ICU word segments)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return WordIndex(text).word_flags.count(1) if text else 0


def sentence_ends(text: str) -> array[int]:
    """End offsets of the ICU sentences of ``text``, in order (the last is ``len(text)``)."""
    return boundaries(SentenceBreaker, text)[1:]
