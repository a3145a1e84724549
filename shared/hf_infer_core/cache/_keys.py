"""What a cached vector is keyed by and stored as: no I/O, no store.

A key is the BLAKE2b hash of a namespace and the text actually sent (after chunking and fitting,
prefix included). The namespace hashes everything else that decides the vector (see the
embedding core's ``cache_keys``): the model's verified identity (``_identity``), the URL and the
credential (each hashed apart), TEI's request options, the prompt, the vector size, the wire
format and whether the text is a query.

A value is one type byte and the vector's bytes: ``d`` float64 (the JSON route's Python floats,
exactly) or ``f`` float32 (the base64 route's values, exactly), so a vector read back is
bit-identical to the one the endpoint gave for the same options.
"""

from __future__ import annotations

import array
import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["decode_vector", "encode_vector", "keys_for", "namespace_of"]

_INF = float("inf")
_FLOAT64 = b"d"
_FLOAT32 = b"f"


def namespace_of(parts: Mapping[str, object]) -> bytes:
    """The digest of everything besides the text that decides a vector (JSON, keys sorted)."""
    return hashlib.blake2b(json.dumps(parts, sort_keys=True, default=str).encode(), digest_size=32).digest()


def keys_for(namespace: bytes, texts: Sequence[str]) -> list[str]:
    """One key per text: hex BLAKE2b of the namespace and the text's UTF-8 (lone surrogates kept)."""
    keys = []
    for text in texts:
        digest = hashlib.blake2b(namespace, digest_size=32)
        digest.update(text.encode("utf-8", "surrogatepass"))
        keys.append(digest.hexdigest())
    return keys


def encode_vector(vector: Any, float32: bool) -> bytes:
    """The stored form of one vector: float32 for the base64 route, float64 for JSON."""
    if float32:
        if hasattr(vector, "tobytes"):  # a float32 numpy row (as_numpy over base64)
            raw: bytes = vector.astype("<f4", copy=False).tobytes()
            return _FLOAT32 + raw
        return _FLOAT32 + _little(array.array("f", vector)).tobytes()
    return _FLOAT64 + _little(array.array("d", vector)).tobytes()


def _little(values: array.array[float]) -> array.array[float]:
    # Stored little-endian, so a cache shared through Redis reads the same on every machine.
    if sys.byteorder == "big":
        values.byteswap()
    return values


def decode_vector(blob: bytes | None, float32: bool, dimensions: int | None, as_array: bool) -> object:
    """The vector ``blob`` holds, or ``None`` when it is missing or not what these options store.

    A value of another type, a length that is not whole values, or another size than the
    endpoint's is a miss (sent again), never a wrong vector.
    """
    if not isinstance(blob, bytes | bytearray | memoryview) or len(blob) < 1:
        return None
    blob = bytes(blob)
    kind, raw = blob[:1], blob[1:]
    if kind != (_FLOAT32 if float32 else _FLOAT64):
        return None
    size = 4 if float32 else 8
    if not raw or len(raw) % size or (dimensions is not None and len(raw) // size != dimensions):
        return None
    if as_array:
        import numpy

        return numpy.frombuffer(raw, dtype="<f4")
    values = array.array("f" if float32 else "d")
    values.frombytes(raw)
    vector = _little(values).tolist()
    total = sum(vector)  # NaN or an infinity anywhere makes the sum one (a C loop, not a Python one)
    if total != total or total in (_INF, -_INF):
        return None  # the endpoint's answers are checked finite: a stored one is too
    return vector
