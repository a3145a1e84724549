"""Keep the api key out of pickles, copies and dumps in readable form.

:class:`SealedSecretStr` is a :class:`pydantic.SecretStr` (so it never shows in a repr, a log or
``model_dump_json``) that also pickles *sealed*: the key is stored XOR-masked and reversed, so a
pickle, a multiprocessing payload or a cache file never holds it verbatim and a grep for the token
finds nothing. This is masking, not encryption: whoever can unpickle the object can use the key,
so pickles of configured objects must still be kept as private as the key itself.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from typing import Any

from pydantic import SecretStr

__all__ = ["REDACTED", "SealedSecretStr", "checked_key", "key_problem", "redact", "seal_secret", "shown_url"]

REDACTED = "[REDACTED]"
# A Hugging Face user access token: "hf_" and 30 or more letters and digits.
_HF_TOKEN = re.compile(r"hf_[A-Za-z0-9]{30,}")


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Return ``text`` with each of ``secrets`` and anything shaped like a Hugging Face token replaced.

    Applied to every message, body excerpt and echoed value hf-infer shows, so that neither the
    configured key (when a server echoes it, or a user puts it in the wrong field) nor a token
    elsewhere in the text reaches a log or a traceback.
    """
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return _HF_TOKEN.sub(REDACTED, text)


def shown_url(url: str) -> str:
    """``url`` as reprs, dumps and messages show it: each query-string value replaced by ``[REDACTED]``.

    A query string is where some gateways take a token (``?api_key=...``); the names stay, so two
    such URLs can still be told apart by eye.
    """
    head, sep, query = url.partition("?")
    if not sep:
        return url
    fragment = ""
    query, hashmark, rest = query.partition("#")
    if hashmark:
        fragment = "#" + rest
    shown = "&".join(part.split("=", 1)[0] + ("=" + REDACTED if "=" in part else "") for part in query.split("&"))
    return f"{head}?{shown}{fragment}"


def key_problem(key: str) -> str | None:
    """Why ``key`` (already stripped of surrounding whitespace) cannot be a bearer token, or ``None``.

    The key is never part of the answer. A token is printable ASCII: a control character (the
    newline of a key read from a file, CR, NUL) would be refused by the HTTP layer at the first
    request with the whole header, key included, in its message; a non-ASCII character or a lone
    surrogate cannot be encoded into a header at all.
    """
    if not key:
        return "[secret_settings] Invalid value empty string. [api_key] must be a non-empty string"
    if not (key.isascii() and key.isprintable()):
        bad = next(i for i, c in enumerate(key) if not (c.isascii() and c.isprintable()))
        return (
            f"[secret_settings] [api_key] holds a character that cannot be sent in an HTTP header at position "
            f"{bad} (a control character, or not ASCII): a token is printable ASCII"
        )
    return None


def checked_key(raw: str) -> str:
    """``raw`` without surrounding whitespace (a key read from a file ends with a newline), checked.

    Raises:
        ValueError: with :func:`key_problem`'s message (never the key).
    """
    key = raw.strip()
    if (problem := key_problem(key)) is not None:
        raise ValueError(problem)
    return key


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
