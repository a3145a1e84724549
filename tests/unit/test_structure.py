"""The package's shape: what importing pulls in, first-contact messages, options declared once."""

from __future__ import annotations

import subprocess
import sys
import typing

import pytest

from hf_infer_core import AsyncEmbeddingClient, ClientOptionArgs, ClientOptions, EmbeddingClient
from langchain_hf_infer import HFInferEmbeddings
from llama_index_hf_infer import HFInferEmbedding


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)


def test_importing_the_core_imports_no_server_or_framework() -> None:
    heavy = ["starlette", "uvicorn", "torch", "sentence_transformers", "langchain_core", "llama_index"]
    result = run_python(f"import sys, hf_infer_core; print([m for m in {heavy!r} if m in sys.modules])")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_importing_the_server_package_imports_no_server_dependency() -> None:
    result = run_python(
        "import sys, hf_infer_server; print([m for m in ('starlette', 'uvicorn', 'torch') if m in sys.modules])"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("package", "blocked", "extra"),
    [
        ("langchain_hf_infer", "langchain_core", "hf-infer[langchain]"),
        ("llama_index_hf_infer", "llama_index", "hf-infer[llama-index]"),
    ],
)
def test_adapter_without_its_framework_names_the_extra(package: str, blocked: str, extra: str) -> None:
    # A None entry in sys.modules makes that import fail exactly as if the package were absent.
    code = (
        f"import sys; sys.modules[{blocked!r}] = None\n"
        f"try:\n    import {package}\nexcept ImportError as e:\n    print(type(e).__name__, e)"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert f'pip install "{extra}"' in result.stdout
    assert result.stdout.startswith("ImportError")


def test_serve_without_the_server_extra_says_which_extra_before_anything() -> None:
    code = (
        "import sys; sys.modules['uvicorn'] = None\n"
        "import importlib.util as u; real = u.find_spec\n"
        "u.find_spec = lambda name, *a: None if name == 'uvicorn' else real(name, *a)\n"
        "from hf_infer_server._cli import main; raise SystemExit(main(['serve', '--port', '1']))"
    )
    result = run_python(code)
    assert result.returncode == 2
    assert result.stdout == ""  # nothing printed as if it were serving
    assert "pip install 'hf-infer[server]'" in result.stderr
    assert "uvicorn" in result.stderr


def test_cli_version() -> None:
    result = run_python("from hf_infer_server._cli import main; main(['--version'])")
    assert result.stdout.startswith("hf-infer ")


def test_client_keyword_arguments_match_the_options_model() -> None:
    hints = typing.get_type_hints(ClientOptionArgs)
    assert set(hints) == set(ClientOptions.model_fields)
    for name, field in ClientOptions.model_fields.items():
        assert hints[name] == field.annotation, name


@pytest.mark.parametrize("cls", [HFInferEmbeddings, HFInferEmbedding])
def test_adapters_inherit_every_client_option_with_its_default(cls: type[ClientOptions]) -> None:
    for name, field in ClientOptions.model_fields.items():
        assert cls.model_fields[name].annotation == field.annotation, name
        assert cls.model_fields[name].default == field.default, name


@pytest.mark.parametrize("cls", [EmbeddingClient, AsyncEmbeddingClient])
def test_clients_validate_options_at_construction(cls: typing.Any) -> None:
    from .fakes import endpoint

    with pytest.raises(ValueError, match="max_concurrency"):
        cls(endpoint(), max_concurrency=0)
    with pytest.raises(ValueError, match="unknown_option"):
        cls(endpoint(), unknown_option=1)
    options = ClientOptions(batch_size=7)
    client = cls(endpoint(), options=options, max_retries=1)
    assert client.options == ClientOptions(batch_size=7, max_retries=1)
