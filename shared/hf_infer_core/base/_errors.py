"""The exceptions hf-infer raises.

Every exception the package raises on purpose derives from :class:`HFInferError`,
so ``except HFInferError`` catches them all; no raw ``httpx`` exception escapes
(the original is kept as ``__cause__``). Bad configuration and bad input also
derive from the built-in :class:`ValueError` / :class:`TypeError` so framework
code that expects those keeps working::

    HFInferError
    ├── ConfigError (ValueError)         the endpoint JSON breaks a rule; .errors lists each one
    ├── InvalidInputError (ValueError)   a text cannot be sent (e.g. lone surrogates); .index
    ├── EndpointError                    the endpoint answered with an error status
    │   ├── AuthenticationError          401 / 403
    │   ├── InvalidRequestError          400 / 422 (TEI "Validation"/"Tokenizer" errors)
    │   ├── PayloadTooLargeError         413, or TEI 1.9's 422 stating a batch, token or character
    │   │                                limit: the batch is halved, a chunk split; .index
    │   ├── RateLimitError               429 after the retries; .retry_after
    │   ├── ModelLoadingError            503 "model is loading"; .estimated_time
    │   └── ServerError                  other 5xx and 424
    ├── TransportError                   the request never got an answer (refused, reset, protocol)
    │   └── TimeoutError (builtins.TimeoutError)  an attempt passed its deadline (timeout, retry_deadline)
    ├── ClientClosedError                the client was closed while a call was using it
    ├── RateLimitBackendError            the shared (Redis) rate budget could not be reached in time
    └── ResponseFormatError              a 2xx answer that is not one finite vector per input

Errors raised by the client carry ``attempts`` (how many requests were sent for
the failing batch) and ``indices`` (the positions, in the caller's list, of the
inputs in that batch). No message, repr or attribute ever holds the api key:
request headers are never stored on an exception.
"""

from __future__ import annotations

import builtins
import json
import re
import time
from collections.abc import Sequence
from email.utils import parsedate_to_datetime
from typing import Any

__all__ = [
    "AuthenticationError",
    "ClientClosedError",
    "ConfigError",
    "EndpointError",
    "HFInferError",
    "InvalidInputError",
    "InvalidRequestError",
    "ModelLoadingError",
    "PayloadTooLargeError",
    "RateLimitBackendError",
    "RateLimitError",
    "ResponseFormatError",
    "ServerError",
    "TimeoutError",
    "TransportError",
]

# Bodies are echoed in messages to help debugging; a proxy's multi-megabyte HTML
# page would drown the useful part, so the message shows a bounded excerpt.
_BODY_EXCERPT = 300


class HFInferError(Exception):
    """Base class of every error hf-infer raises."""

    attempts: int
    indices: tuple[int, ...]

    def __init__(self, message: str, *, attempts: int = 0, indices: Sequence[int] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.attempts = attempts
        self.indices = tuple(indices)

    def __str__(self) -> str:
        parts = [self.message]
        if self.attempts:
            parts.append(f"after {self.attempts} attempt{'s' if self.attempts != 1 else ''}")
        if self.indices:
            parts.append(f"inputs {_describe_indices(self.indices)}")
        return "; ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions pickle as cls(*args), which the keyword-only arguments of the subclasses
        # break; every attribute travels instead (multiprocessing and Ray ship errors this way).
        return (_restore, (type(self), self.args, self.__dict__))

    def with_context(self, *, attempts: int, indices: Sequence[int]) -> HFInferError:
        """Return this error after recording the attempt count and the batch's input indices."""
        self.attempts = attempts
        self.indices = tuple(indices)
        return self


class ConfigError(HFInferError, ValueError):
    """The endpoint configuration is invalid; ``errors`` lists every problem found."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        # Elasticsearch reports all validation failures at once in this shape.
        text = "Validation Failed: " + "".join(f"{i}: {e};" for i, e in enumerate(self.errors, 1))
        super().__init__(text)


class InvalidInputError(HFInferError, ValueError):
    """An input text cannot be embedded as given; ``index`` names it."""

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class EndpointError(HFInferError):
    """The endpoint answered with an error status; ``status_code`` and ``body`` hold it."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: str = "",
        error_type: str | None = None,
        attempts: int = 0,
        indices: Sequence[int] = (),
    ) -> None:
        super().__init__(message, attempts=attempts, indices=indices)
        self.status_code = status_code
        self.body = body
        self.error_type = error_type

    def __str__(self) -> str:
        return f"[{self.status_code}] {super().__str__()}"


class AuthenticationError(EndpointError):
    """The endpoint refused the api key (401) or its permissions (403)."""


class InvalidRequestError(EndpointError):
    """The endpoint rejected the request as invalid (400 / 422); retrying cannot help."""


class PayloadTooLargeError(EndpointError):
    """A request too large for the endpoint (413, or TEI 1.9's 422 stating a size limit); ``index`` names a single input."""

    def __init__(self, message: str, *, index: int | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.index = index


class RateLimitError(EndpointError):
    """The endpoint kept answering 429; ``retry_after`` is its last hint in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class ModelLoadingError(EndpointError):
    """The model was still loading (503) when retries ran out; ``estimated_time`` in seconds."""

    def __init__(self, message: str, *, estimated_time: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.estimated_time = estimated_time


class ServerError(EndpointError):
    """The endpoint failed on its side (5xx, or TEI's 424 backend error)."""


class TransportError(HFInferError):
    """The request got no HTTP answer: connection refused or reset, host unknown, protocol error.

    ``refused`` is True when nothing answered at that address: the connection was refused, or
    the host name does not resolve (``unresolved``). Those are retried only within
    ``connect_retry_deadline``, in both drivers alike. ``untrusted`` is True when the endpoint's
    TLS certificate failed verification (never retried).
    """

    refused: bool = False
    unresolved: bool = False
    # Raised before anything was sent (a header or URL that is not valid HTTP): never retried.
    local: bool = False
    # The endpoint's TLS certificate failed verification: nothing was sent, and nothing would
    # be on a retry (a certificate does not become trusted in a few seconds): never retried.
    untrusted: bool = False


class TimeoutError(TransportError, builtins.TimeoutError):  # noqa: A001 - the documented public name
    """The endpoint did not answer within the timeout."""


class ClientClosedError(HFInferError):
    """The client was closed (``close()``) while a call was still using it; not retried."""


class RateLimitBackendError(HFInferError):
    """The shared rate budget (``rate_limit_backend``) did not answer within ``retry_deadline``; not retried."""


class ResponseFormatError(HFInferError):
    """A success answer that is not one finite vector per input, of one dimension.

    ``transient`` is True when the body was cut off or is not JSON at all (a proxy's doing,
    worth a retry), False when it is well-formed but wrong (a server bug, not retried).
    """

    def __init__(self, message: str, *, transient: bool = False, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.transient = transient


def _restore(cls: type[HFInferError], args: tuple[Any, ...], state: dict[str, Any]) -> HFInferError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


def body_excerpt(body: str) -> str:
    """Return ``body`` cut to a length fit for an error message."""
    body = body.strip()
    if len(body) <= _BODY_EXCERPT:
        return body
    return body[:_BODY_EXCERPT] + f"... ({len(body)} characters)"


def _describe_indices(indices: tuple[int, ...]) -> str:
    # A batch is usually a contiguous run: "[64..95]" reads better than 32 numbers.
    if len(indices) > 2 and indices == tuple(range(indices[0], indices[0] + len(indices))):
        return f"[{indices[0]}..{indices[-1]}]"
    if len(indices) > 20:
        head = ", ".join(map(str, indices[:20]))
        return f"[{head}, ... ({len(indices)} in all)]"
    return "[" + ", ".join(map(str, indices)) + "]"


# --------------------------------------------------------------------------- statuses to errors


def status_error(
    status_code: int, text: str, retry_after: str | None, inference_id: str, base64_route: str | None = None
) -> EndpointError:
    """The error class an error status maps to, with its message; ``text`` is the body, redacted.

    ``base64_route``: the path of TEI's OpenAI route when ``wire_format="base64"`` sent there (a
    404/405 then means the route is missing, not the model).
    """
    message, error_type, estimated = _error_fields(text)
    code = status_code
    kind = (error_type or "").lower()
    where = f"the hugging_face endpoint [{inference_id}] answered status [{code}]"
    detail = f"{where}. Error message: [{message or body_excerpt(text)}]"
    kwargs: dict[str, Any] = {"status_code": code, "body": body_excerpt(text), "error_type": error_type}
    if code in (401, 403):
        hint = "check api_key (or the HF_TOKEN environment variable it defaults to): the endpoint " + (
            "refused it" if code == 403 else "did not accept it, or needs one and none was sent"
        )
        said = message or body_excerpt(text)
        return AuthenticationError(f"{where}: {hint}" + (f". Error message: [{said}]" if said else ""), **kwargs)
    if code in (404, 405) and base64_route is not None:
        return InvalidRequestError(
            f"wire_format='base64' needs TEI's POST /v1/embeddings beside the configured URL, and "
            f"{base64_route} answered {code}: use wire_format='json' with this endpoint",
            **kwargs,
        )
    if code == 404:
        return EndpointError(
            f"{detail}; check the URL's path: a TEI server answers embeddings at /embed (or its root), reranking "
            "at /rerank, sparse vectors at /embed_sparse, and an Inference Endpoint at its root",
            **kwargs,
        )
    if code == 413 or (code == 422 and size_refusal(message or text)):
        # TEI up to 1.8 refused a batch or an input over its limits with 413; 1.9 with 422 and
        # the same messages. Both are the same refusal: halve the batch, split the input.
        return PayloadTooLargeError(detail, **kwargs)
    if code == 429 or kind == "overloaded":
        return RateLimitError(detail, retry_after=_retry_after_seconds(retry_after), **kwargs)
    if code == 503 and (estimated is not None or "loading" in (message or "").lower()):
        return ModelLoadingError(detail, estimated_time=estimated, **kwargs)
    if code >= 500 or code == 424 or kind in ("backend", "unhealthy"):
        return ServerError(detail, **kwargs)
    if code in (400, 422) or kind in ("validation", "tokenizer", "empty"):
        return InvalidRequestError(detail, **kwargs)
    return EndpointError(detail, **kwargs)


# TEI's refusals of a request's size (core/src/tokenization.rs, router/src/http/server.rs): the
# batch over --max-client-batch-size, an input over the model's tokens or over its character cap.
# "batch size 40 > maximum allowed batch size 32": its group is the limit, which clients learn.
BATCH_LIMIT = re.compile(r"batch size \d+ > maximum allowed batch size (\d{1,9})")
_SIZE_REFUSALS = (BATCH_LIMIT, re.compile(r"must have less than \d+ (?:tokens|characters)\. Given: \d+"))


def size_refusal(message: str) -> bool:
    """True when an endpoint's refusal states a size limit (TEI's messages, 413 or 422 alike)."""
    return any(pattern.search(message) for pattern in _SIZE_REFUSALS)


def _error_fields(text: str) -> tuple[str | None, str | None, float | None]:
    """Return (message, TEI error_type, HF estimated_time) from an error body, when it is JSON."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None, None, None
    if not isinstance(data, dict):
        return None, None, None
    error = data.get("error")
    if isinstance(error, list):
        error = "; ".join(map(str, error))
    message = str(error) if error is not None else None
    error_type = data.get("error_type")
    estimated = data.get("estimated_time")
    estimated_time = (
        float(estimated) if isinstance(estimated, int | float) and not isinstance(estimated, bool) else None
    )
    return message, str(error_type) if error_type is not None else None, estimated_time


def _retry_after_seconds(value: str | None) -> float | None:
    """Parse ``Retry-After``: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def caused_by(err: BaseException, kinds: type[BaseException] | tuple[type[BaseException], ...]) -> bool:
    """True when ``err`` comes from an error of ``kinds``, however deep in its causes (see :func:`cause_of`)."""
    return cause_of(err, kinds) is not None


def cause_of(err: BaseException, kinds: type[BaseException] | tuple[type[BaseException], ...]) -> BaseException | None:
    """The error of ``kinds`` that ``err`` comes from, however deep in its causes; None if none.

    httpx-aiohttp reports a refusal, an unknown host or an untrusted certificate as
    ConnectTimeout, the OS error three causes down (aiohttp keeps the ``socket.gaierror`` as its
    DNS error's ``os_error``, the ``ssl.SSLCertVerificationError`` as its ``certificate_error``);
    redis-py chains it as the context of its ConnectionError.
    """
    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        for found in (cause, getattr(cause, "os_error", None), getattr(cause, "certificate_error", None)):
            if isinstance(found, kinds):
                return found
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None
