"""A response body read under a size bound, decompressed by hf-infer itself (no I/O here).

httpx decompresses a whole network chunk at once, so a 1 MB gzip body that inflates to 1 GiB
would be inflated before anyone could count it. :class:`BoundedBody` is fed the raw bytes as they
arrive, inflates them with ``zlib`` asking for at most what the bound still allows, and raises
:class:`ResponseFormatError` as soon as the decompressed size passes ``limit``: memory stays
under the limit plus one read. Content-Encoding ``gzip`` (several members too), ``deflate`` (zlib
or raw) and ``identity`` are read; the clients ask for no other.
"""

from __future__ import annotations

import zlib

from ..base._errors import ResponseFormatError

__all__ = ["ACCEPT_ENCODING", "BoundedBody", "default_response_limit"]

ACCEPT_ENCODING = "gzip, deflate"

# The default bound: a 4,096-dimensional vector is about 90 kB of JSON; 256 KiB an input leaves
# room for any real model, and 1 MiB for error pages and /info.
_BASE = 1 << 20
_PER_INPUT = 256 << 10


def default_response_limit(inputs: int) -> int:
    """The default ``max_response_bytes`` for a request of ``inputs`` texts (1 MiB + 256 KiB each)."""
    return _BASE + _PER_INPUT * inputs


def _too_large(limit: int, what: str) -> ResponseFormatError:
    return ResponseFormatError(
        f"the response body is {what} than max_response_bytes={limit}; a vector answer is never that "
        "large, so the endpoint is broken or hostile (raise max_response_bytes if it is neither)"
    )


class BoundedBody:
    """Collects one response body, decompressed, refusing more than ``limit`` bytes of it."""

    def __init__(self, limit: int, content_encoding: str | None = None, content_length: str | None = None) -> None:
        self.limit = limit
        self.size = 0
        self._parts: list[bytes] = []
        encoding = (content_encoding or "identity").strip().lower()
        if encoding not in ("identity", "gzip", "x-gzip", "deflate"):
            raise ResponseFormatError(
                f"the endpoint answered with Content-Encoding [{encoding}], which hf-infer does not read"
            )
        self._gzip = encoding in ("gzip", "x-gzip")
        self._inflate: zlib._Decompress | None = None
        if encoding != "identity":
            # 47 = 32 + 15: zlib or gzip header, detected; raw deflate is tried on failure.
            self._inflate = zlib.decompressobj(31 if self._gzip else 47)
        self._raw_deflate = False
        if content_length is not None and encoding == "identity":
            try:
                declared = int(content_length)
            except ValueError:
                declared = 0
            if declared > limit:
                raise _too_large(limit, f"declared {declared} bytes, larger")

    def feed(self, raw: bytes) -> None:
        """Add bytes as they came off the wire."""
        if self._inflate is None:
            self._add(raw)
            return
        data = raw
        while data:
            try:
                # Ask for one byte more than the bound allows: that is enough to know it is passed.
                out = self._inflate.decompress(data, self.limit - self.size + 1)
            except zlib.error as err:
                if self._gzip or self._raw_deflate or self.size:
                    raise ResponseFormatError(
                        f"the response body is not valid {('gzip' if self._gzip else 'deflate')}: {err}", transient=True
                    ) from None
                # "deflate" is sometimes sent raw, without the zlib header it should have.
                self._raw_deflate = True
                self._inflate = zlib.decompressobj(-15)
                continue
            self._add(out)
            if self._inflate.unconsumed_tail:
                data = self._inflate.unconsumed_tail
            elif self._inflate.eof and self._inflate.unused_data and self._gzip:
                data = self._inflate.unused_data  # the next gzip member
                self._inflate = zlib.decompressobj(31)
            else:
                data = b""

    def _add(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        if self.size > self.limit:
            raise _too_large(self.limit, "larger")
        self._parts.append(data)

    def finish(self) -> bytes:
        """The whole decompressed body."""
        if self._inflate is not None:
            self._add(self._inflate.flush())
        return b"".join(self._parts)
