"""Elasticsearch's chunker unit tests, ported case by case.

Sources (elastic/elasticsearch, x-pack/plugin/inference/src/test/java/org/elasticsearch/xpack/
inference/chunking/): WordBoundaryChunkerTests.java, SentenceBoundaryChunkerTests.java,
RecursiveChunkerTests.java. Where Elasticsearch draws a random parameter, every value of its
range is tried. Where a test uses sizes outside the 10..300 words the settings allow (1, 500,
10_000), the chunker internals are called directly, as the Java tests call the chunker class.
"""

from __future__ import annotations

import itertools
import re

import pytest

from hf_infer_core import chunk_text
from hf_infer_core.text._chunking import _recursive_chunks, _sentence_chunks, _word_chunks
from hf_infer_core.text._words import WordIndex as _WordIndex

from .es_texts import MULTI_LINGUAL, TEST_TEXT


def word_chunks(text: str, size: int, overlap: int) -> list[str]:
    if not text:
        return [""]  # Elasticsearch's textChunks helper returns the empty input itself
    return [text[s:e] for s, e, _ in _word_chunks(_WordIndex(text).word_ends(), len(text), size, overlap)]


def sentence_chunks(text: str, size: int, overlap: bool) -> list[str]:
    return [text[s:e] for s, e in _sentence_chunks(text, _WordIndex(text), size, overlap)]


def numbers(n: int) -> str:
    return "".join(f"{i} " for i in range(n))


# ------------------------------------------------------------------ WordBoundaryChunkerTests


def test_single_split() -> None:
    assert word_chunks(TEST_TEXT, 10_000, 0) == [TEST_TEXT]


@pytest.mark.parametrize("size", [10, 20, 100, 300])
def test_chunk_size_on_white_space_no_overlap(size: int) -> None:
    whitespace_words = len(re.split(r"\s+", TEST_TEXT))
    assert len(word_chunks(TEST_TEXT, size, 0)) == (whitespace_words + size - 1) // size
    # the public entry point agrees with the internals
    assert (
        len(chunk_text(TEST_TEXT, {"strategy": "word", "max_chunk_size": size, "overlap": 0}))
        == (whitespace_words + size - 1) // size
    )


@pytest.mark.parametrize("text", MULTI_LINGUAL)
def test_multilingual(text: str) -> None:
    assert len(word_chunks(text, 10, 0)) > 1


def expected_number_of_chunks(words: int, size: int, overlap: int) -> int:
    if words < size:
        return 1
    step = size - overlap
    return 1 + (words - size + step - 1) // step


@pytest.mark.parametrize("words", [10, 22, 50, 73, 100])
@pytest.mark.parametrize(("size", "overlap"), [(10, 4), (10, 2), (20, 4), (20, 10)])
def test_number_of_chunks(words: int, size: int, overlap: int) -> None:
    text = numbers(words)
    assert len(word_chunks(text, size, overlap)) == expected_number_of_chunks(words, size, overlap)
    settings = {"strategy": "word", "max_chunk_size": size, "overlap": overlap}
    assert len(chunk_text(text, settings)) == expected_number_of_chunks(words, size, overlap)


def test_window_spanning_with_overlap_num_words_in_overlap_section() -> None:
    for words in (7, 8, 9, 10):
        assert len(word_chunks(numbers(words), 10, 3)) == 1, words
    assert len(word_chunks(numbers(11), 10, 3)) == 2


def assert_chunk_contents(chunks: list[str], words: int, size: int, overlap: int) -> None:
    start = 0
    index = 0
    while True:
        end = min(start + size, words)
        expected = (" " if index else "") + " ".join(str(i) for i in range(start, end))
        assert chunks[index] == expected, (words, size, overlap, index)
        index += 1
        if end == words:
            break
        start += size - overlap
    assert len(chunks) == index


@pytest.mark.parametrize("words", range(4, 121))
def test_window_spanning_words(words: int) -> None:
    text = numbers(words).rstrip()
    for size, overlap in ((20, 10), (10, 4), (15, 3)):
        assert_chunk_contents(word_chunks(text, size, overlap), words, size, overlap)


def test_window_spanning_text_shorter_than_window() -> None:
    assert len(word_chunks(numbers(8), 10, 5)) == 1


def test_empty_string() -> None:
    assert word_chunks("", 10, 5) == [""]
    # hf-infer's public function documents [] for empty text: nothing to embed.
    assert chunk_text("", {"strategy": "word", "max_chunk_size": 10, "overlap": 5}) == []


def test_whitespace() -> None:
    assert word_chunks(" ", 10, 5) == [" "]


def test_punctuation() -> None:
    assert word_chunks("Comma, separated", 1, 0) == ["Comma", ", separated"]
    assert word_chunks("Mme. Thénardier", 1, 0) == ["Mme", ". Thénardier"]
    assert word_chunks("Won't you chunk", 1, 0) == ["Won't", " you", " chunk"]
    assert word_chunks("Won't you chunk", 10, 0) == ["Won't you chunk"]


# ------------------------------------------------------------------ SentenceBoundaryChunkerTests


def sentence_sizes(text: str) -> list[int]:
    return [len(re.split(r"[ \-]+", s.replace("=", ""))) for s in re.split(r"\.\s+", text)]


def chunk_overlaps(lengths: list[int], size: int, single_sentence_overlap: bool) -> list[int]:
    max_overlap = min(size // 2, 20)
    overlaps = [0]
    running = 0
    for i, length in enumerate(lengths):
        if running + length > size:
            running = length
            if single_sentence_overlap and i > 0:
                carried = min(max_overlap, lengths[i - 1])
                overlaps.append(carried)
                running += carried
            else:
                overlaps.append(0)
        else:
            running += length
    return overlaps


@pytest.mark.parametrize("size", [100, 200])
def test_chunk_split_large_chunk_sizes(size: int) -> None:
    chunks = sentence_chunks(TEST_TEXT, size, False)
    assert len(chunks) == len(chunk_overlaps(sentence_sizes(TEST_TEXT), size, False))
    for chunk in chunks:
        assert chunk[0].isupper()
        assert chunk.strip()[-1] == "."
    via_settings = chunk_text(TEST_TEXT, {"strategy": "sentence", "max_chunk_size": size, "sentence_overlap": 0})
    assert [c.text for c in via_settings] == chunks


@pytest.mark.parametrize("size", [70, 80, 100, 120, 150, 200])
def test_chunk_split_large_chunk_sizes_with_overlap(size: int) -> None:
    chunks = sentence_chunks(TEST_TEXT, size, True)
    overlaps = chunk_overlaps(sentence_sizes(TEST_TEXT), size, True)
    assert len(chunks) == len(overlaps)
    assert chunks[0][0].isupper()
    for i, overlap in enumerate(overlaps):
        if overlap == 0:
            assert chunks[i][0].isupper()
        else:
            assert chunks[i - 1][-20:] in chunks[i]
    assert chunks[0].strip()[-1] == "."
    assert chunks[-1].strip()[-1] == "."


def make_sentence(words: int, index: int) -> str:
    return f"SStart{index} " + "".join(f"{i} " for i in range(1, words - 1)) + f"{words - 1}. "


@pytest.mark.parametrize("sentences_per_chunk", [2, 3, 4, 5])
def test_with_overlap_sentences_fit_in_chunks(sentences_per_chunk: int) -> None:
    chunks_wanted, size = 4, 100
    parts: list[str] = []
    starts = [0]
    index = 0
    rough = size // sentences_per_chunk - 1
    for _ in range(sentences_per_chunk):
        parts.append(make_sentence(rough, index))
        index += 1
    for _ in range(1, chunks_wanted):
        starts.append(index - 1)
        count = rough
        while count + rough < size:
            parts.append(make_sentence(rough, index))
            index += 1
            count += rough
    chunks = sentence_chunks("".join(parts), size, True)
    assert len(chunks) == chunks_wanted
    for chunk, start in zip(chunks, starts, strict=True):
        assert chunk.startswith(f"SStart{start}")
        assert chunk.strip().endswith(".")


def test_chunk_size_larger_than_text() -> None:
    assert sentence_chunks(TEST_TEXT, 500, False)[0] == TEST_TEXT
    assert sentence_chunks(TEST_TEXT, 500, True)[0] == TEST_TEXT


@pytest.mark.parametrize(("size", "expected"), [(10, 21), (30, 7), (50, 4)])
def test_chunk_split_sentences_longer_than_chunk_size(size: int, expected: int) -> None:
    chunks = sentence_chunks(TEST_TEXT, size, False)
    assert len(chunks) == expected
    for chunk in chunks:
        split = [w for w in re.split(r"[\s\-]+", chunk.strip().replace("=", "")) if w]
        if chunk.strip().endswith("."):
            assert len(split) <= size
        else:
            assert len(split) == size


@pytest.mark.parametrize("size", [10, 30, 50])
def test_chunk_split_sentences_longer_than_chunk_size_with_overlap(size: int) -> None:
    chunks = sentence_chunks(TEST_TEXT, size, True)
    assert "Word segmentation is the problem of dividing" in chunks[0]
    assert ", with solidification being a stronger norm." in chunks[-1]


def test_short_long_short_sentences_with_overlap() -> None:
    text = "".join(make_sentence(n, i) for i, n in enumerate([15, 30, 20, 5]))
    chunks = sentence_chunks(text, 40, True)
    assert len(chunks) == 5
    assert chunks[0].strip().startswith("SStart0") and chunks[0].strip().endswith(".")
    assert chunks[1].strip().startswith("SStart0") and not chunks[1].strip().endswith(".")
    assert chunks[2].strip().endswith(".")
    assert chunks[3].strip().endswith(".")
    assert chunks[4].strip().startswith("SStart2")
    assert "SStart3" in chunks[4]
    assert chunks[4].strip().endswith(".")


def sentence_bounds(text: str) -> list[int]:
    from icu4py.breakers import SentenceBreaker

    return list(itertools.accumulate(map(len, SentenceBreaker(text, ""))))


def test_count_words() -> None:
    index = _WordIndex(TEST_TEXT)
    ends = sentence_bounds(TEST_TEXT)
    assert len(ends) == 4
    starts = [0, *ends[:-1]]
    assert [index.count_words(s, e) for s, e in zip(starts, ends, strict=True)] == sentence_sizes(TEST_TEXT)


def test_count_words_short() -> None:
    text = "This is a short sentence. Followed by another."
    index = _WordIndex(text)
    ends = sentence_bounds(text)
    assert len(ends) == 2
    assert index.count_words(0, ends[0]) == 5
    assert index.count_words(ends[0], ends[1]) == 3


@pytest.mark.parametrize("text", ["foo != bar", "foo & bar", "m&s"])
def test_count_words_with_symbols(text: str) -> None:
    assert _WordIndex(text).count_words(0, len(text)) == 2


def test_skip_words() -> None:
    text = "".join(f"word{i} " for i in range(50))
    index = _WordIndex(text)
    pos = index.skip_words(0, 3)
    assert text[pos:].startswith("word3 ")
    pos = index.skip_words(pos + 1, 1)
    assert text[pos:].startswith("word4 ")
    pos = index.skip_words(pos + 1, 5)
    assert text[pos:].startswith("word9 ")
    assert index.skip_words(0, 60) > 0


# ------------------------------------------------------------------ RecursiveChunkerTests

TEST_SEPARATORS = ["\n\n", "\n", "\f", "\t", "#"]
TEST_SENTENCE = "This is a test sentence that has ten total words. "
# Elasticsearch draws 2 or 3 of these separators in random order. Draws holding both "\n\n" and
# "\n" are left out: the finer "\n" then splits a "\n\n" into one-character pieces (Elasticsearch's
# chunker does the same, giving a chunk of just "\n"), so the offsets its test states do not hold
# for them and its test passes only when the draw avoids that pair.
SEPARATOR_CHOICES = [
    list(p) for n in (2, 3) for p in itertools.permutations(TEST_SEPARATORS, n) if not ("\n" in p and "\n\n" in p)
]


def recursive(text: str, separators: list[str], size: int) -> list[tuple[int, int]]:
    return _recursive_chunks(text, tuple(separators), size)


def generate(sentences: int, splitters: list[str]) -> str:
    assert len(splitters) == sentences - 1
    return "".join(TEST_SENTENCE + (splitters[i] if i < sentences - 1 else "") for i in range(sentences))


def test_recursive_empty_input() -> None:
    # Elasticsearch answers [(0, 0)]; hf-infer documents [] for empty text.
    assert chunk_text("", {"strategy": "recursive", "max_chunk_size": 10, "separators": ["\n"]}) == []


@pytest.mark.parametrize("separators", SEPARATOR_CHOICES)
def test_recursive_single_character_input(separators: list[str]) -> None:
    assert recursive("a", separators, 10) == [(0, 1)]


@pytest.mark.parametrize("size", [10, 57, 300])
def test_recursive_input_shorter_than_max_chunk_size(size: int) -> None:
    text = "a" * (size - 1)
    assert recursive(text, ["\n", "#"], size) == [(0, len(text))]


@pytest.mark.parametrize("separators", SEPARATOR_CHOICES)
def test_recursive_requires_one_split(separators: list[str]) -> None:
    text = generate(2, [separators[0]])
    n = len(TEST_SENTENCE)
    assert recursive(text, separators, 10) == [(0, n), (n, len(text))]


@pytest.mark.parametrize("separators", SEPARATOR_CHOICES)
def test_recursive_requires_multiple_splits(separators: list[str]) -> None:
    text = generate(4, [separators[1], separators[0], separators[1]])
    n = len(TEST_SENTENCE)
    first = n
    second = n * 2 + len(separators[1])
    third = n * 3 + len(separators[0]) + len(separators[1])
    assert recursive(text, separators, 15) == [(0, first), (first, second), (second, third), (third, len(text))]


@pytest.mark.parametrize("separators", SEPARATOR_CHOICES)
def test_recursive_requires_backup_chunking_strategy(separators: list[str]) -> None:
    text = generate(4, ["", separators[0], ""])
    n = len(TEST_SENTENCE)
    first, second, third = n, n * 2, n * 3 + len(separators[0])
    assert recursive(text, separators, 10) == [(0, first), (first, second), (second, third), (third, len(text))]


def test_recursive_with_regex_separator() -> None:
    separators = ["(?<!\\n)\\n(?!\\n)", "(?<!\\n)\\n\\n(?!\\n)"]
    text = generate(4, ["\n", "\n", "\n\n"])
    n = len(TEST_SENTENCE)
    first, second, third = n, n * 2 + 1, n * 3 + 2
    assert recursive(text, separators, 10) == [(0, first), (first, second), (second, third), (third, len(text))]


@pytest.mark.parametrize("seed", range(10))
def test_recursive_long_document(seed: int) -> None:
    import random

    rng = random.Random(seed)
    separators = SEPARATOR_CHOICES[seed * 7 % len(SEPARATOR_CHOICES)]
    sentences = rng.randint(50, 100)
    splitters = [rng.choice(separators) for _ in range(sentences - 1)]
    text = generate(sentences, splitters)
    expected = []
    offset = 0
    for i in range(sentences):
        length = len(TEST_SENTENCE) + (len(splitters[i - 1]) if i else 0)
        expected.append((offset, offset + length))
        offset += length
    assert recursive(text, separators, 15) == expected
