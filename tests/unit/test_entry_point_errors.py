"""Whatever the transport or the server does, every public entry point raises only the package's typed errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from hf_infer_core import (
    EmbeddingClient,
    HFInferError,
    InferenceEndpoint,
    chunk_text,
)
from langchain_hf_infer import HFInferEmbeddings, HFInferTextSplitter
from llama_index_hf_infer import HFInferEmbedding, HFInferNodeParser

from .fakes import URL, endpoint
from .fakes import es_body as body

# ------------------------------------------------------------------ only typed errors escape

BAD_SETTINGS: list[dict[str, Any]] = [
    {"api_key": "hf_key\n\x00"},
    {"api_key": "\ud800"},
    {"url": "http://[::1:8080"},
    {"dimensions": 10**30},
    {"max_input_tokens": 0},
    {"requests_per_minute": -1},
    {"batch_size": 0},
    {"rate_limit_backend": "redis://host:99999/0"},
    {"rate_limit_backend": "ftp://x"},
    {"tokenizer": "/nonexistent/tokenizer.json"},
    {"wire_format": "base64", "prompt_name": "q"},
    {"chunking_settings": {"strategy": "word", "max_chunk_size": 5}},
]


def _entry_points() -> list[tuple[str, Callable[[dict[str, Any]], object]]]:
    def from_request(bad: dict[str, Any]) -> object:
        settings = {k: v for k, v in bad.items() if k in ("api_key", "url", "dimensions", "max_input_tokens")}
        b = body(**settings)
        if "requests_per_minute" in bad:
            b["service_settings"]["rate_limit"] = {"requests_per_minute": bad["requests_per_minute"]}
        if "chunking_settings" in bad:
            b["chunking_settings"] = bad["chunking_settings"]
        return InferenceEndpoint.from_request("text_embedding", "x", b)

    def from_url(bad: dict[str, Any]) -> object:
        options = {k: v for k, v in bad.items() if k in ("dimensions", "max_input_tokens", "chunking_settings")}
        rpm = bad.get("requests_per_minute", 3000)
        return InferenceEndpoint.from_url(
            bad.get("url", URL), bad.get("api_key", "k"), requests_per_minute=rpm, **options
        )

    def client(bad: dict[str, Any]) -> object:
        ep = from_url(
            {
                k: v
                for k, v in bad.items()
                if k not in ("batch_size", "rate_limit_backend", "tokenizer", "wire_format", "prompt_name")
            }
        )
        options = {
            k: v for k, v in bad.items() if k in ("batch_size", "rate_limit_backend", "wire_format", "prompt_name")
        }
        return EmbeddingClient(ep, tokenizer=bad.get("tokenizer"), **options)

    def adapter(cls: Any) -> Callable[[dict[str, Any]], object]:
        return lambda bad: cls(**{"url": URL, "api_key": "k", **bad})

    def splitter(cls: Any) -> Callable[[dict[str, Any]], object]:
        return lambda bad: cls(
            bad.get("chunking_settings"), tokenizer=bad.get("tokenizer"), max_input_tokens=bad.get("max_input_tokens")
        )

    return [
        ("InferenceEndpoint.from_request", from_request),
        ("InferenceEndpoint.from_url", from_url),
        ("EmbeddingClient", client),
        ("HFInferEmbeddings", adapter(HFInferEmbeddings)),
        ("HFInferEmbedding", adapter(HFInferEmbedding)),
        ("HFInferTextSplitter", splitter(HFInferTextSplitter)),
        ("HFInferNodeParser", splitter(HFInferNodeParser)),
        ("chunk_text", lambda bad: chunk_text("some text " * 50, bad.get("chunking_settings"))),
    ]


@pytest.mark.parametrize(("name", "build"), _entry_points(), ids=[n for n, _ in _entry_points()])
def test_every_public_entry_point_raises_only_typed_errors(
    name: str, build: Callable[[dict[str, Any]], object]
) -> None:
    for bad in BAD_SETTINGS:
        try:
            build(bad)
        except (HFInferError, TypeError) as err:  # TypeError: a wrong Python type passed by the caller
            message = str(err)
        except ImportError as err:  # an optional extra that is not installed, named (the lowest-versions run)
            message = str(err)
            if "pip install" not in message or "hf-infer[" not in message:
                pytest.fail(f"{name} raised an ImportError that names no extra: {message}")
        except Exception as err:
            pytest.fail(f"{name} with {list(bad)} raised {type(err).__name__}: {err}")
        else:
            continue
        assert "hf_key" not in message and "\ud800" not in message


def test_a_local_protocol_error_is_not_retried_and_does_not_carry_the_header() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.LocalProtocolError(f"Illegal header value b'Bearer {request.headers.get('authorization')}'")

    with (
        EmbeddingClient(endpoint(), transport=httpx.MockTransport(handler), discover=False, max_retries=5) as client,
        pytest.raises(HFInferError) as info,
    ):
        client.embed(["x"])
    assert calls == 1  # not retried: nothing was sent, and sending again cannot help
    assert info.value.attempts == 1
    assert "SECRET" not in str(info.value) and info.value.__cause__ is None
