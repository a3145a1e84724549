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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..base._errors import ConfigError
from ..config import ChunkingSettings, InferenceEndpoint
from ._words import WordIndex, count_words, sentence_ends, surrogate_error, word_ends, word_ends_within

__all__ = ["Chunk", "ChunkEmbedding", "chunk_text", "count_words", "resolve_chunking_settings", "word_ends_within"]

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


@dataclass(frozen=True, slots=True)
class ChunkEmbedding:
    """One chunk of an input text with its vector, as Elasticsearch returns chunked inference."""

    text: str
    start: int
    end: int
    embedding: list[float]
    _chunk: Chunk | None = field(default=None, repr=False, compare=False)

    @property
    def word_count(self) -> int:
        """ICU words in the chunk (as Elasticsearch counts them)."""
        return self._chunk.word_count if self._chunk is not None else count_words(self.text)

    @property
    def source(self) -> tuple[int, int]:
        """Offsets of the Elasticsearch chunk this one is (or, when split to fit the model, came from)."""
        if self._chunk is not None and self._chunk.source is not None:
            return self._chunk.source
        return (self.start, self.end)

    def to_dict(self) -> dict[str, Any]:
        """Return the chunk as Elasticsearch shows it: text, offsets and embeddings."""
        return {"text": self.text, "offset": {"start": self.start, "end": self.end}, "embeddings": self.embedding}


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


def _sentence_chunks(text: str, index: WordIndex, size: int, carry_sentence: bool) -> list[tuple[int, int]]:
    """Elasticsearch's sentence-boundary chunking, ``carry_sentence`` being sentence_overlap 1."""
    chunks: list[tuple[int, int]] = []
    chunk_start = chunk_end = sentence_start = chunk_words = 0
    previous_words = previous_start = 0
    carried_max = min(size // 2, _MAX_CARRIED_WORDS)
    split_overlap = min(_MAX_CARRIED_WORDS, (size - 1) // 2)

    ends = sentence_ends(text)
    for sentence_end, words in zip(ends, index.span_counts(ends), strict=True):
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
                splits = _word_chunks(word_ends(piece), len(piece), size, split_overlap)
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
        index = WordIndex(piece)
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


def _merge(text: str, index: WordIndex, pieces: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
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
                raise surrogate_error(text, err.start) from None
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
                for s, e, n in _word_chunks(word_ends(text), len(text), size, config.overlap or 0, keep_trailing_text)
            ]
        else:
            index = WordIndex(text)
            spans = _sentence_chunks(text, index, size, bool(config.sentence_overlap))
    if index is None:
        index = WordIndex(text)
    return [Chunk(s, e, text[s:e], index.words_within(s, e)) for s, e in spans]
