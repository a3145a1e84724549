"""Errors pickle with their attributes, and a document's error names the caller's texts, not its chunks."""

from __future__ import annotations

import functools

import httpx
import pytest

from .fakes import TOKEN, endpoint, es_body

body = functools.partial(es_body, url="http://h/embed", api_key=TOKEN)


# ------------------------------------------------------------------ errors travel and name texts


def test_every_error_pickles_with_its_attributes() -> None:
    import pickle

    import hf_infer_core
    from hf_infer_core import EndpointError, HFInferError

    for name in hf_infer_core.base._errors.__all__:
        cls = getattr(hf_infer_core, name)
        if cls is hf_infer_core.ConfigError:
            error: HFInferError = cls(["one", "two"])
        elif issubclass(cls, EndpointError):
            error = cls("message", status_code=500, body="body")
        else:
            error = cls("message")
        error.with_context(attempts=3, indices=[4, 5])
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is cls and str(again) == str(error) and vars(again) == vars(error), name


def test_embed_documents_errors_name_texts_not_chunks() -> None:
    from hf_infer_core import AuthenticationError

    from .fakes import FakeEndpoint
    from .test_client import sync_client

    long = " ".join(f"w{i}" for i in range(30))  # three chunks of 10 words
    fake = FakeEndpoint(
        script=lambda n, inputs: httpx.Response(401, json={"error": "no"}) if "last" in inputs else None
    )
    ep = endpoint(chunking={"strategy": "word", "max_chunk_size": 10, "overlap": 0})
    with sync_client(fake, endpoint=ep, batch_size=100) as client, pytest.raises(AuthenticationError) as info:
        client.embed_documents([long, long, "last"])
    assert info.value.indices == (0, 1, 2)  # three texts, although the batch held seven chunks
