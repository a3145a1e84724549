"""Configuration: Elasticsearch's ``hugging_face`` endpoint schema and rules, and the client options."""

from __future__ import annotations

from ._endpoint import InferenceEndpoint
from ._es_rules import (
    DEFAULT_INFERENCE_ID,
    DEFAULT_REQUESTS_PER_MINUTE,
    PositiveLong,
    is_positive_long,
)
from ._options import ClientOptionArgs, ClientOptions, RerankOptionArgs, RerankOptions
from ._settings import (
    DEFAULT_CHUNKING_SETTINGS,
    ChunkingSettings,
    HuggingFaceServiceSettings,
    RateLimitSettings,
    RerankTaskSettings,
    env_api_key,
)

__all__ = [
    "DEFAULT_CHUNKING_SETTINGS",
    "DEFAULT_INFERENCE_ID",
    "DEFAULT_REQUESTS_PER_MINUTE",
    "ChunkingSettings",
    "ClientOptionArgs",
    "ClientOptions",
    "HuggingFaceServiceSettings",
    "InferenceEndpoint",
    "PositiveLong",
    "RateLimitSettings",
    "RerankOptionArgs",
    "RerankOptions",
    "RerankTaskSettings",
    "env_api_key",
    "is_positive_long",
]
