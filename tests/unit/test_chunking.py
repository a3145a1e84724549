from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hf_infer_core import (
    Chunk,
    ChunkingSettings,
    ConfigError,
    InferenceEndpoint,
    InvalidInputError,
    chunk_text,
    count_words,
)

WORDS = ["alpha", "beta", "gamma", "Delta", "e", "42", "3.5", "don't", "東京", "naïve", "😀", "x_y", "Ω"]
SEPARATORS = [" ", "  ", ", ", ". ", "! ", "\n", "\n\n", " - ", "? ", "。"]

texts = st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(SEPARATORS)), min_size=1, max_size=400).map(
    lambda parts: "".join(w + s for w, s in parts)
)


def word_list(text: str) -> list[str]:
    from hf_infer_core.text._words import WordIndex as _WordIndex

    index = _WordIndex(text)
    out = []
    for i in range(1, len(index.bounds)):
        if index.word_flags[i]:
            out.append(text[index.bounds[i - 1] : index.bounds[i]])
    return out


def check_offsets(text: str, chunks: list[Chunk]) -> None:
    assert chunks, "non-empty text always gives at least one chunk"
    for chunk in chunks:
        assert 0 <= chunk.start < chunk.end <= len(text) or (chunk.start == chunk.end == 0 and not text)
        assert chunk.text == text[chunk.start : chunk.end]
    for before, after in itertools.pairwise(chunks):
        assert before.start <= after.start
        assert before.end <= after.end
    assert chunks[0].start == 0
    # The chunks reach the end of the text, or stop where only a remainder without words is
    # left (Elasticsearch's word chunker drops it).
    assert chunks[-1].end == len(text) or word_list(text[chunks[-1].end :]) == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts, size=st.integers(10, 60), data=st.data())
def test_word_strategy_properties(text: str, size: int, data: st.DataObject) -> None:
    overlap = data.draw(st.integers(0, size // 2))
    chunks = chunk_text(text, {"strategy": "word", "max_chunk_size": size, "overlap": overlap})
    check_offsets(text, chunks)
    for chunk in chunks[:-1]:
        assert chunk.word_count == size
        assert count_words(chunk.text) == size
    assert count_words(chunks[-1].text) <= size
    if overlap == 0:
        for before, after in itertools.pairwise(chunks):
            assert before.end == after.start  # no gap, no overlap
    else:
        for before, after in itertools.pairwise(chunks):
            assert word_list(after.text)[:overlap] == word_list(before.text)[-overlap:]
    # every word of the text is in some chunk, in order
    covered: list[str] = []
    for i, chunk in enumerate(chunks):
        words = word_list(chunk.text)
        covered.extend(words if i == 0 else words[overlap:])
    assert covered == word_list(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts, size=st.integers(20, 80), sentence_overlap=st.sampled_from([0, 1]))
def test_sentence_strategy_properties(text: str, size: int, sentence_overlap: int) -> None:
    chunks = chunk_text(text, {"strategy": "sentence", "max_chunk_size": size, "sentence_overlap": sentence_overlap})
    check_offsets(text, chunks)
    for chunk in chunks:
        assert chunk.word_count <= size + 1  # ES's look-behind count may add the word before a chunk
    if sentence_overlap == 0:
        for before, after in itertools.pairwise(chunks):
            assert before.end == after.start


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts, size=st.integers(10, 60), group=st.sampled_from(["plaintext", "markdown"]))
def test_recursive_strategy_properties(text: str, size: int, group: str) -> None:
    chunks = chunk_text(text, {"strategy": "recursive", "max_chunk_size": size, "separator_group": group})
    check_offsets(text, chunks)
    for before, after in itertools.pairwise(chunks):
        assert before.end == after.start


def test_none_strategy_is_one_chunk() -> None:
    text = "One. Two three. " * 500
    assert chunk_text(text, {"strategy": "none"}) == [Chunk(0, len(text), text, count_words(text))]


def test_default_settings_are_sentence_250() -> None:
    text = "This sentence has exactly seven words. " * 100
    chunks = chunk_text(text)
    assert chunks == chunk_text(text, {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1})
    assert len(chunks) == 3
    assert all(c.text.lstrip().startswith("This") for c in chunks)


def test_emoji_offsets_are_python_indices() -> None:
    text = "😀 " * 5 + "word " * 30 + "🎉 end"
    chunks = chunk_text(text, {"strategy": "word", "max_chunk_size": 10, "overlap": 0})
    assert [c.text for c in chunks] == [text[c.start : c.end] for c in chunks]
    assert "".join(c.text for c in chunks) == text
    assert chunks[0].text.startswith("😀")
    assert chunks[-1].text.endswith("🎉 end")


def test_cjk_is_split_on_dictionary_words() -> None:
    text = "東京タワーに行きました。" * 10
    assert count_words("東京タワーに行きました。") >= 4
    chunks = chunk_text(text, {"strategy": "word", "max_chunk_size": 10, "overlap": 0})
    assert len(chunks) > 1
    assert "".join(c.text for c in chunks) == text[:-1]  # the last "。" holds no word: dropped, as ES drops it
    covering = chunk_text(text, {"strategy": "word", "max_chunk_size": 10, "overlap": 0}, keep_trailing_text=True)
    assert "".join(c.text for c in covering) == text


@pytest.mark.parametrize(
    ("words", "tail"),
    [(18, " 2:1! "), (20, "\n\n"), (20, ". "), (20, "!!! 😀 ")],  # 18 words + "2" and "1": 20 words
)
def test_word_chunks_end_where_elasticsearch_ends_them(words: int, tail: str) -> None:
    text = " ".join(f"w{i}" for i in range(words)) + tail
    settings = {"strategy": "word", "max_chunk_size": 10, "overlap": 0}
    chunks = chunk_text(text, settings)
    # 20 words fill two chunks exactly; the remainder holds no word, and Elasticsearch drops it.
    assert len(chunks) == 2
    assert chunks[-1].end == len(text) - len(tail.lstrip(" 2:1") if words == 18 else tail)
    assert word_list(text[chunks[-1].end :]) == []
    covering = chunk_text(text, settings, keep_trailing_text=True)
    assert [c.start for c in covering] == [c.start for c in chunks]
    assert covering[-1].end == len(text)


def test_word_followed_by_sentence_without_space_is_counted_twice_like_es() -> None:
    # ICU sees two sentences; ES's countWords starts one boundary early, so "東京" counts for both.
    text = "東京。大阪"
    from hf_infer_core.text._words import WordIndex as _WordIndex

    index = _WordIndex(text)
    assert index.count_words(0, 3) == 1
    assert index.count_words(3, 5) == 2


def test_settings_in_every_form() -> None:
    text = "a b c d e f g h i j k l m n o p"
    as_dict = {"strategy": "word", "max_chunk_size": 10, "overlap": 0}
    expected = chunk_text(text, as_dict)
    assert len(expected) == 2
    assert chunk_text(text, ChunkingSettings.from_dict(as_dict)) == expected
    assert chunk_text(text, '{"strategy": "word", "max_chunk_size": 10, "overlap": 0}') == expected
    assert chunk_text(text, {"chunking_settings": as_dict}) == expected
    endpoint = InferenceEndpoint.from_request(
        "text_embedding",
        "x",
        {
            "service": "hugging_face",
            "service_settings": {"url": "http://h", "api_key": "k"},
            "chunking_settings": as_dict,
        },
    )
    assert chunk_text(text, endpoint) == expected


@pytest.mark.parametrize("bad", [None, b"bytes", 5, ["a"]])
def test_non_str_text_is_a_type_error(bad: object) -> None:
    with pytest.raises(TypeError, match=type(bad).__name__):
        chunk_text(bad)  # type: ignore[arg-type]


def test_empty_text_gives_no_chunk() -> None:
    for strategy in ({"strategy": "none"}, {"strategy": "word", "max_chunk_size": 10, "overlap": 1}, None):
        assert chunk_text("", strategy) == []


def test_whitespace_only_text_is_one_chunk() -> None:
    assert chunk_text("   \n ") == [Chunk(0, 5, "   \n ", 0)]


def test_lone_surrogate_is_reported_with_its_position() -> None:
    with pytest.raises(InvalidInputError, match="position 3"):
        chunk_text("abc\ud800def")


def test_bad_settings_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="max_chunk_size"):
        chunk_text("text", {"strategy": "word", "max_chunk_size": 5, "overlap": 0})
    with pytest.raises(ConfigError, match="not valid JSON"):
        chunk_text("text", "{")


def test_markdown_group_splits_on_headings() -> None:
    section = "# Title\n" + "word " * 30 + "\n"
    text = section + "\n## Part\n" + "more " * 30
    chunks = chunk_text(text, {"strategy": "recursive", "max_chunk_size": 40, "separator_group": "markdown"})
    assert len(chunks) == 2
    assert chunks[1].text.startswith("\n## Part")


def test_large_text_memory_and_result_are_linear() -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 20_000
    chunks = chunk_text(text, {"strategy": "word", "max_chunk_size": 250, "overlap": 0})
    assert len(chunks) == (9 * 20_000 + 249) // 250
    # 180,000 words fill 720 chunks exactly: the final ". " holds no word and is dropped, as in ES.
    assert "".join(c.text for c in chunks) + ". " == text


@settings(max_examples=200, deadline=None)
@given(text=texts, block=st.integers(1, 40))
def test_breaking_in_blocks_gives_the_whole_texts_boundaries(text: str, block: int) -> None:
    """ICU runs a block at a time on large texts (its UTF-16 copy bounded); the cuts must not show."""
    from icu4py.breakers import SentenceBreaker, WordBreaker

    import hf_infer_core.text._words as chunking

    text = text.replace(".", ".\n", 3)  # line feeds: where sentence blocks may end
    for breaker in (WordBreaker, SentenceBreaker):
        whole = [0, *itertools.accumulate(map(len, breaker(text, "")))] if text else [0]
        original = chunking._BREAK_BLOCK
        chunking._BREAK_BLOCK = block
        try:
            assert list(chunking.boundaries(breaker, text)) == whole
        finally:
            chunking._BREAK_BLOCK = original
