"""The embeddings' wire formats: TEI's ``/embed`` JSON and its OpenAI-shaped base64 route, both ways.

Every vector is checked as it is read: its size, finite values, one per input; nothing here
does I/O (the drivers hand over the raw bytes).
"""

from __future__ import annotations

import array
import base64
import binascii
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..base._errors import ResponseFormatError, body_excerpt
from ..protocol._wire import dumps, loads

__all__ = ["base64_body", "base64_vectors", "json_body", "json_vectors"]


def json_body(texts: Sequence[str], extras: Mapping[str, Any]) -> bytes:
    """The JSON body of a batch: ``{"inputs": [...]}`` and TEI's request options that are set."""
    return dumps({"inputs": list(texts), **extras})


def base64_body(texts: Sequence[str], model: str, dimensions: int | None = None) -> bytes:
    """TEI's OpenAI-shaped request (``/v1/embeddings``), asking for base64 float32 vectors (of ``dimensions``)."""
    extra = {"dimensions": dimensions} if dimensions is not None else {}
    return dumps({"input": list(texts), "encoding_format": "base64", "model": model, **extra})


def size_problem(i: int, size: int, dims: int, asked: int | None) -> ResponseFormatError:
    """The error for vector ``i`` of ``size`` values where ``dims`` were expected.

    ``asked``: the configured ``dimensions``, sent to the endpoint; an endpoint that ignores it
    answers every vector at the model's size, which is no ragged answer but an option not honoured.
    """
    if asked is not None and dims == asked:
        return ResponseFormatError(
            f"dimensions={asked} was asked for (sent as TEI's `dimensions`), but the endpoint returned "
            f"{size}-dimensional vectors: it does not truncate them (TEI does from 1.8, for models trained to "
            f"allow it); leave dimensions unset, or set it to {size}"
        )
    return ResponseFormatError(
        f"vector {i} of the batch has {size} dimensions, the others {dims}: vectors of different sizes (ragged)"
    )


def json_vectors(
    status_code: int,
    body: bytes,
    count: int,
    dims: int | None,
    shown: Callable[[bytes], str],
    asked: int | None = None,
) -> tuple[list[list[float]], int]:
    """The ``count`` vectors of a JSON answer (``[[...]]`` or ``{"embeddings": [[...]]}``) and their size.

    ``dims``: the size every vector must have (``None``: learnt from the first). ``shown``: the
    body as a message may show it (the key redacted). ``asked``: the ``dimensions`` configured.
    """
    try:
        data = loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        kind = "HTML" if body.lstrip()[:1] == b"<" else "not JSON (cut off or plain text)"
        raise ResponseFormatError(
            f"the endpoint answered {status_code} but the body is {kind}: {err}; body: {body_excerpt(shown(body))!r}",
            transient=True,
        ) from None
    if isinstance(data, dict) and "embeddings" in data:
        data = data["embeddings"]
    if not isinstance(data, list):
        raise ResponseFormatError(
            f'expected a JSON array of vectors (or {{"embeddings": [...]}}), got a JSON {type(data).__name__}'
        )
    if len(data) != count:
        raise ResponseFormatError(f"sent {count} inputs but received {len(data)} vectors")
    # Checking 400k numbers one by one in Python costs as much as parsing them, so a proof
    # is made from the bytes instead: with no string in the body, each number token holds at
    # most one ".", so exactly one "." per vector value means every value is written as a
    # decimal and orjson/json made it a float (an integer, true, false or null has no ".").
    # One sum() per vector then proves the values numeric and finite (NaN and infinities
    # propagate). Bodies failing the proof take the exact element-by-element path, which
    # also turns JSON integers into floats.
    values = sum(len(v) for v in data if isinstance(v, list))
    proven = b'"' not in body and body.count(b".") == values
    for i, vector in enumerate(data):
        if not isinstance(vector, list) or not vector:
            raise ResponseFormatError(f"vector {i} of the batch is not a non-empty array of numbers")
        if not (proven and _finite_float_sum(vector)):
            data[i] = vector = _exact_floats(vector, i)
        if dims is None:
            dims = len(vector)
        elif len(vector) != dims:
            raise size_problem(i, len(vector), dims, asked)
    assert dims is not None  # a batch has at least one input, so one vector was checked
    return data, dims


def base64_vectors(
    status_code: int,
    body: bytes,
    count: int,
    dims: int | None,
    arrays: bool,
    shown: Callable[[bytes], str],
    asked: int | None = None,
) -> tuple[list[list[float]], int]:
    """TEI's OpenAI answer with ``encoding_format: base64``: little-endian float32 bytes per vector."""
    try:
        data = loads(body)
        items = data["data"]
        if any(item["index"] != i for i, item in enumerate(items)):
            items = sorted(items, key=lambda item: item["index"])
            if [item["index"] for item in items] != list(range(len(items))):
                raise ValueError("the vectors' indices are not 0..n-1, each once (a duplicate or a gap)")
        encoded: list[str] = [item["embedding"] for item in items]
        if not all(isinstance(e, str) for e in encoded):
            raise TypeError("an embedding is not a string")
        sizes = [len(e) // 4 * 3 - e.count("=", -2) for e in encoded]
        if len({len(e) for e in encoded}) == 1 and len(encoded[0]) % 4 == 0 and encoded[0][-1:] != "=":
            # Equal unpadded pieces (any dimension count divisible by 3) decode as one string:
            # one C call per body instead of one per vector.
            raw = _b64decode("".join(encoded))
        else:
            raw = b"".join(_b64decode(e) for e in encoded)
        if len(raw) != sum(sizes):  # pragma: no cover - strict decoding of whole pieces ensures it
            raise ValueError("the decoded bytes do not add up to the pieces")
    except (ValueError, UnicodeDecodeError, TypeError, KeyError, binascii.Error) as err:
        raise ResponseFormatError(
            f"the endpoint answered {status_code} but not with base64 vectors in OpenAI's shape "
            f"({type(err).__name__}); body: {body_excerpt(shown(body))!r}",
            transient=body.lstrip()[:1] != b"{",
        ) from None
    if len(sizes) != count:
        raise ResponseFormatError(f"sent {count} inputs but received {len(sizes)} vectors")
    for i, size in enumerate(sizes):
        if not size or size % 4:
            raise ResponseFormatError(f"vector {i} of the batch is {size} bytes, not whole float32 values")
        if dims is None:
            dims = size // 4
        elif size != dims * 4:
            raise size_problem(i, size // 4, dims, asked)
    if dims is None:  # pragma: no cover - a batch has at least one input, so one vector was checked
        raise ResponseFormatError("the batch has no vectors")
    return _float32_rows(raw, count, dims, arrays), dims


try:  # pybase64 (SIMD) decodes ~30x faster than binascii, with the same strict errors (extra "fast").
    import pybase64

    def _b64decode(text: str) -> bytes:
        return pybase64.b64decode(text, validate=True)

except ImportError:  # pragma: no cover - exercised where pybase64 is not installed

    def _b64decode(text: str) -> bytes:
        return base64.b64decode(text, validate=True)


def _float32_rows(raw: bytes, count: int, dims: int, arrays: bool) -> list[list[float]]:
    """``count`` vectors of ``dims`` little-endian float32 values from ``raw``, all finite.

    ``arrays``: float32 numpy rows of one array over the bytes, no Python float made. Otherwise
    lists of floats, through numpy when it is installed (one C pass) and ``array`` when not.
    """
    try:
        import numpy
    except ImportError:  # pragma: no cover - exercised where numpy is not installed
        if arrays:
            raise
        return [_float32_list(raw[i * dims * 4 : (i + 1) * dims * 4], i) for i in range(count)]
    matrix = numpy.frombuffer(raw, dtype="<f4").reshape(count, dims)
    if not numpy.isfinite(matrix).all():
        bad = int(numpy.flatnonzero(~numpy.isfinite(matrix).all(axis=1))[0])
        raise ResponseFormatError(f"vector {bad} of the batch holds NaN or infinite values")
    return list(matrix) if arrays else _float_lists(matrix)


def _float_lists(matrix: Any) -> list[list[float]]:
    """The rows of a float32 matrix as lists of Python floats (the only place base64 makes them)."""
    rows: list[list[float]] = matrix.tolist()
    return rows


def _float32_list(blob: bytes, i: int) -> list[float]:
    values = array.array("f")
    values.frombytes(blob)
    if sys.byteorder != "little":  # pragma: no cover - the wire is little-endian
        values.byteswap()
    vector = values.tolist()
    # float32 values summed as doubles cannot overflow, so the sum is finite iff every value is.
    if not math.isfinite(sum(vector)):
        raise ResponseFormatError(f"vector {i} of the batch holds NaN or infinite values")
    return vector


def _finite_float_sum(vector: list[Any]) -> bool:
    try:
        total = sum(vector)
    except TypeError:
        return False
    return type(total) is float and math.isfinite(total)


def _exact_floats(vector: list[Any], i: int) -> list[float]:
    """Check every value of one vector; return it as plain floats (JSON integers converted)."""
    out: list[float] = []
    for x in vector:
        if type(x) is float:
            out.append(x)
        elif type(x) is int:
            out.append(float(x))
        else:
            raise ResponseFormatError(f"vector {i} of the batch holds a non-numeric value {x!r}")
    if not all(map(math.isfinite, out)):
        raise ResponseFormatError(f"vector {i} of the batch holds NaN or infinite values")
    return out
