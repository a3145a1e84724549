"""The sparse vectors' wire: TEI's ``/embed_sparse`` body, and its answer read and checked; no I/O.

An answer is, per input, a list of ``{"index": <vocabulary id>, "value": <weight>}``. Each is
checked: one list per input, integer indices (no bool) from 0 to 2**32 - 1 and none twice, finite
non-negative weights; a sparse vector is a ``dict`` from index to weight, in index order.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping, Sequence

from ..base._errors import ResponseFormatError
from ..protocol._wire import dumps, fast_loads

__all__ = ["SparseVector", "decode_sparse", "encode_sparse", "sparse_body", "sparse_vectors"]

SparseVector = dict[int, float]

_MAX_INDEX = 2**32 - 1
_KIND = b"s"


def sparse_body(texts: Sequence[str], extras: Mapping[str, object]) -> bytes:
    """TEI's ``/embed_sparse`` request: ``{"inputs": [...], **extras}``."""
    return dumps({"inputs": list(texts), **extras})


def sparse_vectors(status: int, body: bytes, count: int, redact: Callable[[bytes], str]) -> list[SparseVector]:
    """The ``count`` sparse vectors of a 2xx answer, each checked; a :class:`ResponseFormatError` names what is wrong."""
    try:
        answer = fast_loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise ResponseFormatError(
            f"the endpoint answered {status} but the /embed_sparse body is not JSON ({err}): {redact(body[:200])!r}",
            transient=True,
        ) from None
    if not isinstance(answer, list) or len(answer) != count:
        got = f"{len(answer)} lists" if isinstance(answer, list) else type(answer).__name__
        raise ResponseFormatError(f"expected {count} sparse vectors (one list per input), got {got}")
    return [_vector(entries, i, status) for i, entries in enumerate(answer)]


def _vector(entries: object, position: int, status: int) -> SparseVector:
    if not isinstance(entries, list):
        raise ResponseFormatError(f"sparse vector {position} is not a list of index-value pairs")
    vector: SparseVector = {}
    for entry in entries:
        index = entry.get("index") if isinstance(entry, dict) else None
        value = entry.get("value") if isinstance(entry, dict) else None
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= _MAX_INDEX:
            raise ResponseFormatError(f"sparse vector {position}: index {index!r} is not a vocabulary id")
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
            raise ResponseFormatError(
                f"sparse vector {position}: weight {value!r} of index {index} is not a finite non-negative number"
            )
        if index in vector:
            raise ResponseFormatError(f"sparse vector {position}: index {index} appears twice")
        vector[index] = float(value)
    return dict(sorted(vector.items()))


def encode_sparse(vector: SparseVector) -> bytes:
    """A sparse vector's stored form: a kind byte, the indices as uint32 and the weights as float64, bit-exact."""
    indices = list(vector)
    return _KIND + struct.pack(f"<I{len(indices)}I{len(indices)}d", len(indices), *indices, *vector.values())


def decode_sparse(blob: bytes | None) -> SparseVector | None:
    """The sparse vector ``blob`` holds, or ``None`` when it is missing or not one (a miss, sent again)."""
    if not isinstance(blob, bytes | bytearray | memoryview) or len(blob) < 5 or bytes(blob[:1]) != _KIND:
        return None
    raw = bytes(blob[1:])
    (count,) = struct.unpack_from("<I", raw)
    if len(raw) != 4 + 12 * count:
        return None
    numbers = struct.unpack_from(f"<{count}I{count}d", raw, 4)
    indices, values = numbers[:count], numbers[count:]
    if any(not math.isfinite(v) or v < 0 for v in values) or list(indices) != sorted(set(indices)):
        return None
    return dict(zip((int(i) for i in indices), (float(v) for v in values), strict=True))
