"""No key is echoed: not by a configuration error, not by a server that echoes headers, not by a repr."""

from __future__ import annotations

import functools
import json
from typing import Any

import httpx
import pytest

from hf_infer_core import (
    ConfigError,
    EmbeddingClient,
    InferenceEndpoint,
    InvalidRequestError,
)

from .fakes import TOKEN, endpoint, es_body

body = functools.partial(es_body, url="http://h/embed", api_key=TOKEN)


# ------------------------------------------------------------------ no echoed secrets


@pytest.mark.parametrize(
    "attempt",
    [
        lambda: InferenceEndpoint.from_url(TOKEN, "http://h/embed"),  # arguments swapped
        lambda: InferenceEndpoint.from_request("text_embedding", "x", body(similarity=TOKEN)),
        lambda: InferenceEndpoint.from_request("text_embedding", "x", {**body(), "service": TOKEN}),
        lambda: InferenceEndpoint.from_request("text_embedding", "x", {**body(), "task_settings": {TOKEN: 1}}),
        lambda: InferenceEndpoint.from_request("text_embedding", "x", body(**{TOKEN: "x"})),
        lambda: InferenceEndpoint.from_request("text_embedding", TOKEN, body()),
    ],
    ids=["swapped", "similarity", "service", "task_settings-key", "unknown-key", "inference_id"],
)
def test_config_errors_never_echo_a_token(attempt: Any) -> None:
    with pytest.raises(ConfigError) as info:
        attempt()
    text = str(info.value) + repr(info.value) + json.dumps(info.value.errors)
    assert TOKEN not in text
    assert "[REDACTED]" in text


def test_a_server_echoing_the_authorization_header_does_not_leak_the_key() -> None:
    key = "plain-key-without-token-shape"

    def handler(request: httpx.Request) -> httpx.Response:
        echoed = request.headers["authorization"]
        return httpx.Response(400, json={"error": f"bad request, header was {echoed} (also {TOKEN})"})

    ep = InferenceEndpoint.from_url("http://h/embed", key, requests_per_minute=10**6)
    client = EmbeddingClient(ep, transport=httpx.MockTransport(handler))
    with pytest.raises(InvalidRequestError) as info:
        client.embed(["a"])
    for text in (str(info.value), repr(info.value), info.value.body, info.value.message):
        assert key not in text
        assert TOKEN not in text
        assert "[REDACTED]" in text


def test_the_key_lives_only_in_a_redacting_auth_object() -> None:
    client = EmbeddingClient(endpoint())
    assert "SECRET" not in repr(client._wire.settings.auth)
    assert all("SECRET" not in str(v) for v in vars(client._core).values())
    assert "authorization" not in {k.lower() for k in client._core.headers}
