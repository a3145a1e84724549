"""``hf-infer serve`` refuses to start, saying how to mend it, when a later install broke the model's packages."""

from __future__ import annotations

from importlib import metadata

import pytest

from hf_infer_server import _cli
from hf_infer_server._requirements import broken_requirements

DECLARED = {
    "sentence-transformers": ["transformers<6.0.0,>=5.0.0", "huggingface-hub>=1.3.0", "torch>=1.11"],
    "transformers": ["huggingface-hub<3.0,>=1.31.0", "tokenizers<0.24.0,>=0.23.1", 'pytest; extra == "testing"'],
    "tokenizers": ["huggingface-hub>=0.16.4,<3.0"],
    "huggingface-hub": ["filelock"],
}


def fake(versions: dict[str, str]) -> dict[str, object]:
    def version(name: str) -> str:
        if name not in versions:
            raise metadata.PackageNotFoundError(name)
        return versions[name]

    return {"requires": lambda name: DECLARED.get(name), "version": version}


def test_a_downgraded_hub_under_transformers_is_named() -> None:
    sound = {
        "sentence-transformers": "6.3.0",
        "transformers": "5.24.0",
        "tokenizers": "0.23.3",
        "huggingface-hub": "1.33.0",
    }
    assert broken_requirements(**fake(sound)) == []  # type: ignore[arg-type]
    # What `pip install langchain-huggingface==0.3.x` (huggingface-hub<1.0) did beside the server extra.
    broken = broken_requirements(**fake({**sound, "huggingface-hub": "0.36.0"}))  # type: ignore[arg-type]
    assert broken == [
        "sentence-transformers 6.3.0 needs huggingface-hub>=1.3.0 (0.36.0 installed)",
        "transformers 5.24.0 needs huggingface-hub<3.0,>=1.31.0 (0.36.0 installed)",
    ]


def test_serve_refuses_to_start_with_the_command_that_mends_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if _cli.missing_server_modules():
        pytest.skip("without the server extra, serve stops earlier, naming the extra")
    monkeypatch.setattr(
        "hf_infer_server._requirements.broken_requirements",
        lambda: ["transformers 5.24.0 needs huggingface-hub<3.0,>=1.31.0 (0.36.0 installed)"],
    )
    assert _cli.main(["serve", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "no longer fit each other" in err and "pip install 'huggingface-hub<3.0,>=1.31.0'" in err
