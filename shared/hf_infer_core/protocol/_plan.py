"""The batching plan, without I/O: inputs checked, grouped into batches, results put back in order.

Both drivers use it as it is: the same checks of every input (naming the caller's index), the
same grouping of similar lengths into a batch, the same reassembly by position.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TypeVar

from ..base._errors import HFInferError, InvalidInputError
from ..config import ChunkingSettings
from ..text._chunking import Chunk, chunk_text
from ..text._words import word_ends_within
from ._wire import TOKENIZE_BYTES

__all__ = ["assemble", "check_texts", "chunk_all", "plan", "split_in_two", "texts_named", "tokenize_groups"]

T = TypeVar("T")


def check_texts(texts: Sequence[str], first: int = 0) -> list[str]:
    """Return ``texts`` as a list after checking every item is a valid ``str``.

    ``first``: the position of ``texts[0]`` in the caller's input (a streamed text), so an
    error names the caller's index.

    Raises:
        TypeError: ``texts`` is a single string, or an item is not a ``str`` (naming its index).
        InvalidInputError: an item holds a lone surrogate, which cannot be sent as UTF-8.
    """
    if isinstance(texts, str | bytes):
        raise TypeError(f"texts must be a list of str, not a single {type(texts).__name__}")
    try:
        items = list(texts)
    except TypeError:
        raise TypeError(f"texts must be a list of str, got {type(texts).__name__}") from None
    for i, text in enumerate(items, first):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] must be a str, got {type(text).__name__}")
    if not "".join(items).isascii():
        for i, text in enumerate(items, first):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as err:
                raise InvalidInputError(
                    f"texts[{i}] holds a lone surrogate at position {err.start}; it is not valid Unicode "
                    "and cannot be sent as JSON (decode the source with errors='replace')",
                    index=i,
                ) from None
    return items


def plan(texts: Sequence[str], size: int) -> list[list[int]]:
    """Group the inputs' indices into batches of at most ``batch_size``, similar lengths together.

    Transformer servers pad every input of a batch to the longest one, so batching texts of
    similar length cuts the server's work (the model behind ``make demo`` runs ~1.6x faster on
    mixed-length texts). Only the grouping changes: each batch lists its indices in ascending
    order, and results are always returned in input order.
    """
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
    return [sorted(order[start : start + size]) for start in range(0, len(order), size)]


def assemble(count: int, batches: Sequence[Sequence[int]], results: Sequence[list[T]]) -> list[T]:
    """Put each batch's results (vectors, scores) back at their inputs' positions; every position filled once."""
    out: list[T | None] = [None] * count
    for indices, vectors in zip(batches, results, strict=True):
        for index, vector in zip(indices, vectors, strict=True):
            out[index] = vector
    if any(v is None for v in out):  # pragma: no cover - a bug, never a server's doing
        raise RuntimeError("internal error: an input got no result")
    return out  # type: ignore[return-value]


def chunk_all(texts: Sequence[str], settings: ChunkingSettings, keep_trailing_text: bool = False) -> list[list[Chunk]]:
    """Chunk every text with the endpoint's settings; an empty text is one empty chunk (sent as is)."""
    out: list[list[Chunk]] = []
    for text in texts:
        chunks = chunk_text(text, settings, keep_trailing_text=keep_trailing_text)
        out.append(chunks or [Chunk(0, 0, "", 0)])
    return out


def split_in_two(sent: str, prefix: str) -> list[tuple[int, int, str]] | None:
    """Cut a chunk input (``prefix`` + text) in two at its middle word end; ``None``: one character.

    What the endpoint refused whole (413) is sent again as these halves, each with the prefix;
    offsets are into the text.
    """
    text = sent[len(prefix) :]
    inner = word_ends_within(text, 0, len(text))[:-1]
    if inner:
        cut = inner[len(inner) // 2]
    elif len(text) > 1:
        cut = len(text) // 2  # one word longer than the limit: between characters
    else:
        return None
    return [(0, cut, prefix + text[:cut]), (cut, len(text), prefix + text[cut:])]


def tokenize_groups(texts: Sequence[str], batch_size: int) -> list[range]:
    """Consecutive groups of ``texts`` for ``/tokenize``: ``batch_size`` texts and ~TOKENIZE_BYTES each.

    The answer to a group is bounded by what it sends (see ``tokenize_answer_limit``), so sizing
    the groups by their text sizes the answers too.
    """
    groups: list[range] = []
    start = size = 0
    for i, text in enumerate(texts):
        length = len(text) if text.isascii() else len(text.encode("utf-8"))
        if i > start and (i - start >= batch_size or size + length > TOKENIZE_BYTES):
            groups.append(range(start, i))
            start, size = i, 0
        size += length
    if start < len(texts):
        groups.append(range(start, len(texts)))
    return groups


@contextlib.contextmanager
def texts_named(owners: Sequence[int]) -> Iterator[None]:
    """Make a failed call's ``indices`` name texts (the caller's positions), not their chunks."""
    try:
        yield
    except HFInferError as err:
        err.indices = tuple(sorted({owners[i] for i in err.indices if 0 <= i < len(owners)}))
        raise
