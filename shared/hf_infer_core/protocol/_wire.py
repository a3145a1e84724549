"""The wire every task shares: JSON both ways, and TEI's ``/tokenize``; no I/O and no client state.

A task's own bodies and answers (the embeddings' vectors: ``embeddings/_wire.py``) build on
:func:`dumps` and :func:`loads`. Every failure is a :class:`ResponseFormatError` whose excerpt of
the body went through the caller's ``shown`` (the key redacted).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from itertools import accumulate
from typing import Any

from ..base._errors import ResponseFormatError, body_excerpt
from ..text._fit import Tokens

__all__ = [
    "TOKENIZE_BYTES",
    "dumps",
    "fast_loads",
    "loads",
    "plain_loads",
    "tei_tokens",
    "tokenize_answer_limit",
    "tokenize_body",
]

# Text per /tokenize request. TEI writes at most one token per byte of text and about 90 bytes of
# JSON per token, so an answer is bounded by what was sent (tokenize_answer_limit): with this
# much text a request's answer is at most ~24 MiB (prose gets about 4 MiB).
TOKENIZE_BYTES = 256 * 1024


def tokenize_answer_limit(sent: int) -> int:
    """The largest ``/tokenize`` answer accepted for a request body of ``sent`` bytes."""
    return 96 * sent + 64 * 1024


def tokenize_body(texts: Sequence[str]) -> bytes:
    """TEI's ``/tokenize`` request, special tokens included (they count against the limit)."""
    return dumps({"inputs": list(texts), "add_special_tokens": True})


def dumps(payload: Mapping[str, Any]) -> bytes:
    """A request body: compact JSON, UTF-8 as it is (orjson's bytes are the same as json's, made in a tenth of the time)."""
    if _orjson is not None:
        try:
            return _orjson.dumps(payload)
        except TypeError:  # what orjson cannot write (a lone surrogate): json raises its own error
            pass
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def tei_tokens(texts: Sequence[str], status_code: int, body: bytes, shown: Callable[[bytes], str]) -> list[Tokens]:
    """Each text's tokens from TEI's ``/tokenize`` answer (special tokens counted, the others located)."""
    try:
        data = loads(body)
        return [_tokens_of(text, tokens) for text, tokens in zip(texts, data, strict=True)]
    except (ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise ResponseFormatError(
            f"the endpoint's /tokenize answered {status_code} with something other than "
            f"{len(texts)} token lists with offsets: {body_excerpt(shown(body))!r}"
        ) from None


def _tokens_of(text: str, tokens: list[dict[str, Any]]) -> Tokens:
    """One text's tokens from TEI's ``/tokenize``, whose ``start``/``stop`` count UTF-8 bytes.

    Special tokens are those TEI gives no offsets; the others' byte offsets become characters.
    """
    special = 0
    offsets: list[tuple[int, int]] = []
    for token in tokens:
        start, stop = token["start"], token["stop"]
        if start is None or stop is None:
            special += 1
        elif type(start) is not int or type(stop) is not int:
            raise TypeError("token offsets must be integers")
        else:
            offsets.append((start, stop))
    if not text.isascii():
        # Character index of each UTF-8 byte offset that starts a character (or ends the text).
        where = {b: i for i, b in enumerate(accumulate((len(c.encode("utf-8")) for c in text), initial=0))}
        offsets = [(where[start], where[stop]) for start, stop in offsets]
    return Tokens.from_offsets(special, offsets)


def plain_loads(body: bytes | str) -> Any:
    """``json.loads`` for small answers (/info, error bodies); too deep a nesting is a ValueError."""
    try:
        return json.loads(body)
    except RecursionError:
        raise ValueError("nested too deeply") from None


try:  # orjson parses vectors ~6x faster than the json module; it is optional (extra "fast").
    import orjson

    def loads(body: bytes) -> Any:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            # orjson rejects NaN/Infinity; json accepts them, so the error can say "NaN".
            try:
                return json.loads(body, parse_int=float)
            except RecursionError:
                raise ValueError("nested too deeply") from None

except ImportError:  # pragma: no cover - exercised where orjson is not installed

    def loads(body: bytes) -> Any:
        try:
            return json.loads(body, parse_int=float)
        except RecursionError:
            raise ValueError("nested too deeply") from None


def fast_loads(body: bytes) -> Any:
    """JSON with integers kept integers (a rerank answer's indices), by orjson when installed.

    :func:`loads` reads integers as floats (vectors), which an index must not be. NaN and
    Infinity, which orjson refuses, are read by ``json`` for the caller's checks to name.
    """
    if _orjson is not None:
        try:
            return _orjson.loads(body)
        except _orjson.JSONDecodeError:
            pass
    return plain_loads(body)


try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised where orjson is not installed
    _orjson = None  # type: ignore[assignment]
