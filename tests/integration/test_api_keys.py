"""A key as users paste it: surrounding whitespace stripped, a control or non-ASCII character refused unseen."""

from __future__ import annotations

import pytest

from hf_infer_core import (
    ConfigError,
    EmbeddingClient,
    InferenceEndpoint,
)
from langchain_hf_infer import HFInferEmbeddings

from ..fake_endpoint import fake_endpoint

TOKEN = "hf_abcdefghijklmnopqrstuvwxyz0123456789"

# ------------------------------------------------------------------ a key read from a file


@pytest.mark.parametrize("tail", ["\n", "\r\n", " \t\n"])
def test_surrounding_whitespace_of_a_key_is_stripped(tail: str) -> None:
    with fake_endpoint() as server:
        endpoint = InferenceEndpoint.from_url(server.embed_url, TOKEN + tail, requests_per_minute=None)
        with EmbeddingClient(endpoint, discover=False) as client:
            client.embed(["x"])
        assert server.log[0].authorization == f"Bearer {TOKEN}"
        model = HFInferEmbeddings(url=server.embed_url, api_key=TOKEN + tail, discover=False)
        assert model.api_key is not None and model.api_key.get_secret_value() == TOKEN


@pytest.mark.parametrize("inner", ["\n", "\r", "\x00", "\x7f", "é", "\ud800"])
def test_a_key_with_a_control_or_non_ascii_character_is_a_config_error_that_never_shows_it(inner: str) -> None:
    key = TOKEN[:10] + inner + TOKEN[10:]
    body = {"service": "hugging_face", "service_settings": {"url": "http://127.0.0.1:9/embed", "api_key": key}}
    for build in (
        lambda: InferenceEndpoint.from_request("text_embedding", "x", body),
        lambda: InferenceEndpoint.from_url("http://127.0.0.1:9/embed", key),
        lambda: HFInferEmbeddings(url="http://127.0.0.1:9/embed", api_key=key),
    ):
        with pytest.raises(ConfigError) as info:
            build()
        assert "cannot be sent in an HTTP header" in str(info.value)
        assert TOKEN[:10] not in str(info.value) and TOKEN[10:] not in str(info.value)
