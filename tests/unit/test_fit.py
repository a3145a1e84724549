"""Fitting chunks to a token limit: fewest pieces, exact offsets, every word kept."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hf_infer_core import Chunk, chunk_text
from hf_infer_core._fit import FitFlow, fit_flow

from .test_chunking import texts, word_list


def words_plus_two(text: str) -> int:
    """A stand-in tokenizer: one token per word, two per word of 8+ letters, and [CLS] [SEP]."""
    return 2 + sum(1 + (len(w) >= 8) for w in word_list(text))


def drive(flow: FitFlow, count: Callable[[str], int]) -> tuple[list[list[Chunk]], int]:
    rounds = 0
    try:
        request = next(flow)
        while True:
            rounds += 1
            request = flow.send([count(t) for t in request])
    except StopIteration as stop:
        return stop.value, rounds


def fewest_pieces(text: str, chunk: Chunk, limit: int) -> int:
    """The true minimum, by brute force over word ends."""
    from hf_infer_core._chunking import word_ends_within

    ends = word_ends_within(text, chunk.start, chunk.end)
    best = {chunk.start: 0}
    for end in ends:
        options = [best[s] + 1 for s in best if words_plus_two(text[s:end]) <= limit]
        if options:
            best[end] = min(options)
    return best[chunk.end]


@settings(max_examples=60, deadline=None)
@given(text=texts, limit=st.integers(6, 40))
def test_pieces_fit_cover_the_chunk_and_are_fewest(text: str, limit: int) -> None:
    chunks = chunk_text(text, {"strategy": "word", "max_chunk_size": 60, "overlap": 0})
    fitted, _ = drive(fit_flow(chunks, [text] * len(chunks), limit), words_plus_two)
    for chunk, pieces in zip(chunks, fitted, strict=True):
        if words_plus_two(chunk.text) <= limit or len(chunk.text) + 16 <= limit:
            assert pieces == [chunk]
            continue
        assert pieces[0].start == chunk.start and pieces[-1].end == chunk.end
        for before, after in itertools.pairwise(pieces):
            assert before.end == after.start  # contiguous: nothing lost, nothing repeated
        for piece in pieces:
            assert piece.text == text[piece.start : piece.end]
            assert piece.source == (chunk.start, chunk.end)
            if len(word_list(piece.text)) > 1:
                assert words_plus_two(piece.text) <= limit
        assert word_list("".join(p.text for p in pieces)) == word_list(chunk.text)
        assert len(pieces) == fewest_pieces(text, chunk, limit)


def test_rounds_grow_with_the_log_of_the_words() -> None:
    text = " ".join(f"w{i}" for i in range(2000))
    chunk = Chunk(0, len(text), text)
    fitted, rounds = drive(fit_flow([chunk], [text], 258), words_plus_two)
    assert [len(word_list(p.text)) for p in fitted[0]] == [256] * 7 + [2000 - 7 * 256]
    assert rounds <= 1 + 8 * 11  # a first count, then about log2(words) rounds per cut


def test_a_word_longer_than_the_limit_is_cut_between_characters() -> None:
    text = "short " + "x" * 500 + " end"
    chunk = Chunk(0, len(text), text)

    def by_characters(t: str) -> int:
        return 2 + len(t.replace(" ", ""))

    fitted, _ = drive(fit_flow([chunk], [text], 100), by_characters)
    pieces = fitted[0]
    assert "".join(p.text for p in pieces) == text
    assert all(by_characters(p.text) <= 100 for p in pieces)


def test_chunks_that_surely_fit_are_not_counted() -> None:
    chunk = Chunk(0, 10, "ten chars!")
    flow = fit_flow([chunk], ["ten chars!"], 256)
    with pytest.raises(StopIteration) as stop:
        next(flow)
    assert stop.value.value == [[chunk]]
