"""Keep the api key out of pickles, copies and dumps in readable form.

:class:`SealedSecretStr` is a :class:`pydantic.SecretStr` (so it never shows in a repr, a log or
``model_dump_json``) that also pickles *sealed*: the key is stored XOR-masked and reversed, so a
pickle, a multiprocessing payload or a cache file never holds it verbatim and a grep for the token
finds nothing. This is masking, not encryption: whoever can unpickle the object can use the key,
so pickles of configured objects must still be kept as private as the key itself.
"""

from __future__ import annotations

import base64
from typing import Any

from pydantic import SecretStr

__all__ = ["SealedSecretStr", "seal_secret"]

_MASK = b"hf-infer/sealed-secret"


def _xor(data: bytes) -> bytes:
    return bytes(b ^ _MASK[i % len(_MASK)] for i, b in enumerate(data))


def _unseal(sealed: bytes) -> SealedSecretStr:
    return SealedSecretStr(_xor(base64.b85decode(sealed)[::-1]).decode("utf-8"))


class SealedSecretStr(SecretStr):
    """A ``SecretStr`` whose pickled and copied forms never hold the secret verbatim."""

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return (_unseal, (base64.b85encode(_xor(self.get_secret_value().encode("utf-8"))[::-1]),))

    def __deepcopy__(self, memo: dict[int, Any]) -> SealedSecretStr:
        return self

    def __copy__(self) -> SealedSecretStr:
        return self


def seal_secret(value: SecretStr | str | None) -> SealedSecretStr | None:
    """Return ``value`` as a :class:`SealedSecretStr` (``None`` stays ``None``)."""
    if value is None or isinstance(value, SealedSecretStr):
        return value
    return SealedSecretStr(value.get_secret_value() if isinstance(value, SecretStr) else value)
