"""BoundedBody: decompression that counts every byte it makes, and stops at the bound."""

from __future__ import annotations

import gzip
import zlib

import pytest

from hf_infer_core import ResponseFormatError
from hf_infer_core.protocol._body import BoundedBody, default_response_limit


def feed_in_pieces(body: BoundedBody, data: bytes, size: int = 7) -> bytes:
    for start in range(0, len(data), size):
        body.feed(data[start : start + size])
    return body.finish()


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        (None, lambda d: d),
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda d: zlib.compress(d)[2:-4]),  # raw deflate, as some servers send it
        ("gzip", lambda d: gzip.compress(d[:10]) + gzip.compress(d[10:])),  # two gzip members
    ],
    ids=["identity", "gzip", "x-gzip", "zlib-deflate", "raw-deflate", "gzip-members"],
)
def test_bodies_decode_exactly(encoding: str | None, encode: object) -> None:
    data = b"[[0.25,0.5],[1.5,2.5]]" * 50
    assert feed_in_pieces(BoundedBody(10_000, encoding), encode(data)) == data  # type: ignore[operator]


def test_a_gzip_bomb_stops_at_the_bound_without_inflating_the_rest() -> None:
    bomb = gzip.compress(b" " * (64 << 20), compresslevel=9)  # 64 KiB that inflate to 64 MiB
    body = BoundedBody(1 << 20, "gzip")
    with pytest.raises(ResponseFormatError, match=r"max_response_bytes=1048576") as info:
        body.feed(bomb)
    assert body.size <= (1 << 20) + 1
    assert not info.value.transient  # a hostile or broken endpoint: not retried


def test_a_declared_length_over_the_bound_fails_before_reading() -> None:
    with pytest.raises(ResponseFormatError, match="declared 5000000 bytes"):
        BoundedBody(1 << 20, None, "5000000")


def test_unknown_encoding_and_corrupt_gzip_are_typed_errors() -> None:
    with pytest.raises(ResponseFormatError, match=r"Content-Encoding \[br\]"):
        BoundedBody(1000, "br")
    with pytest.raises(ResponseFormatError, match="not valid gzip") as info:
        BoundedBody(1000, "gzip").feed(b"not gzip at all")
    assert info.value.transient  # a body cut or mangled on the way: worth a retry


def test_default_limit_grows_with_the_batch() -> None:
    assert default_response_limit(1) == (1 << 20) + (256 << 10)
    assert default_response_limit(32) == (1 << 20) + 32 * (256 << 10)
