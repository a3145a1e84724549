"""The foundation every layer stands on: the error tree and the handling of secrets."""

from __future__ import annotations

from ._errors import (
    AuthenticationError,
    ClientClosedError,
    ConfigError,
    EndpointError,
    HFInferError,
    InvalidInputError,
    InvalidRequestError,
    ModelLoadingError,
    PayloadTooLargeError,
    RateLimitBackendError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    TimeoutError,
    TransportError,
)

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
