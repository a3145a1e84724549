"""Configuration: Elasticsearch's ``hugging_face`` endpoint schema and rules, the task table, the options every task shares."""

from __future__ import annotations

from ._endpoint import InferenceEndpoint
from ._es_rules import (
    DEFAULT_INFERENCE_ID,
    DEFAULT_REQUESTS_PER_MINUTE,
    PositiveLong,
    is_positive_long,
)
from ._options import RequestOptionArgs, RequestOptions, RerankOptionArgs, RerankOptions
from ._settings import (
    DEFAULT_CHUNKING_SETTINGS,
    ChunkingSettings,
    HuggingFaceServiceSettings,
    RateLimitSettings,
    RerankTaskSettings,
    env_api_key,
)
from ._tasks import TASKS, Task

__all__ = [
    "DEFAULT_CHUNKING_SETTINGS",
    "DEFAULT_INFERENCE_ID",
    "DEFAULT_REQUESTS_PER_MINUTE",
    "ChunkingSettings",
    "HuggingFaceServiceSettings",
    "InferenceEndpoint",
    "PositiveLong",
    "RateLimitSettings",
    "RequestOptionArgs",
    "RequestOptions",
    "RerankOptionArgs",
    "RerankOptions",
    "RerankTaskSettings",
    "TASKS",
    "Task",
    "env_api_key",
    "is_positive_long",
]
