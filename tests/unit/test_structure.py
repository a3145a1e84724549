"""The package's shape: what importing pulls in, first-contact messages, options declared once."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import hf_infer_core
from hf_infer_core import AsyncEmbeddingClient, EmbeddingClient, EmbeddingOptionArgs, EmbeddingOptions
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
    # the README's advice: the CPU build of torch first, or pip takes a multi-GB CUDA build
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in result.stderr


def test_cli_version() -> None:
    result = run_python("from hf_infer_server._cli import main; main(['--version'])")
    assert result.stdout.startswith("hf-infer ")


def test_client_keyword_arguments_match_the_options_model() -> None:
    hints = typing.get_type_hints(EmbeddingOptionArgs)
    assert set(hints) == set(EmbeddingOptions.model_fields)
    for name, field in EmbeddingOptions.model_fields.items():
        assert hints[name] == field.annotation, name


@pytest.mark.parametrize("cls", [HFInferEmbeddings, HFInferEmbedding])
def test_adapters_inherit_every_client_option_with_its_default(cls: type[EmbeddingOptions]) -> None:
    for name, field in EmbeddingOptions.model_fields.items():
        assert cls.model_fields[name].annotation == field.annotation, name
        assert cls.model_fields[name].default == field.default, name


@pytest.mark.parametrize("cls", [EmbeddingClient, AsyncEmbeddingClient])
def test_clients_validate_options_at_construction(cls: typing.Any) -> None:
    from .fakes import endpoint

    with pytest.raises(ValueError, match="max_concurrency"):
        cls(endpoint(), max_concurrency=0)
    with pytest.raises(ValueError, match="unknown_option"):
        cls(endpoint(), unknown_option=1)
    options = EmbeddingOptions(batch_size=7)
    client = cls(endpoint(), options=options, max_retries=1)
    assert client.options == EmbeddingOptions(batch_size=7, max_retries=1)


CORE = Path(hf_infer_core.__file__).parent
# What a driver does itself: how it is built and forked, and how it runs, sends and waits
# (for a concurrency slot too).
DRIVER_PRIMITIVES = {
    "__init__",
    "_reset_after_fork",
    # Connections: each driver closes and hands over its own (one httpx client, or one per loop).
    "close",
    "adopt",
    "_run",
    "_stream",
    "_drive",
    "_perform",
    "_parallel",
    "_send",
    "_attempt",
    "_slot",
}


def _method_bodies(path: Path, cls: str) -> dict[str, int]:
    """Lines of each method's body in ``cls``, its docstring left out."""
    tree = ast.parse(path.read_text())
    (node,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls]
    out: dict[str, int] = {}
    for f in node.body:
        if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef):
            body = (
                f.body[1:] if isinstance(f.body[0], ast.Expr) and isinstance(f.body[0].value, ast.Constant) else f.body
            )
            if body:
                out[f.name] = max(out.get(f.name, 0), (body[-1].end_lineno or 0) - body[0].lineno + 1)
    return out


def test_the_job_is_written_once_the_drivers_only_perform_its_steps() -> None:
    """No method mirrored between the drivers has a body over three lines, beyond their primitives.

    And a task's clients hold no logic: each method hands one flow to its driver.
    """
    sync = _method_bodies(CORE / "drivers" / "_sync.py", "SyncDriver")
    async_ = _method_bodies(CORE / "drivers" / "_async.py", "AsyncDriver")
    renamed = {"aclose": "close"}
    pairs = {renamed.get(name, name): lines for name, lines in async_.items()}
    mirrored = {name: max(lines, sync[name]) for name, lines in pairs.items() if name in sync}
    assert {"_run", "_perform", "_parallel", "_send"} <= mirrored.keys()
    assert {name for name, lines in mirrored.items() if lines > 3} <= DRIVER_PRIMITIVES
    clients = {
        **_method_bodies(CORE / "embeddings" / "_sync.py", "EmbeddingClient"),
        **{
            f"async {k}": v
            for k, v in _method_bodies(CORE / "embeddings" / "_async.py", "AsyncEmbeddingClient").items()
        },
    }
    assert {"embed", "embed_documents", "embed_iter", "async aembed_iter"} <= clients.keys()
    wiring = ("__init__", "_open_jobs")  # the constructor's typed signature, and which flows the client runs
    assert {name: lines for name, lines in clients.items() if lines > 3 and not name.endswith(wiring)} == {}


SHIPPED = [
    CORE,
    CORE.parent / "hf_infer_server",
    CORE.parents[1] / "langchain_hf_infer",
    CORE.parents[1] / "llama_index_hf_infer",
]


def test_no_module_over_450_lines_nor_function_over_80_and_the_docs_name_each() -> None:
    """In every shipped package; the reference names the core's sub-packages, docs/architecture.md every module."""
    root = Path(__file__).parents[2]
    readme = (root / "docs" / "reference.md").read_text()
    architecture = (root / "docs" / "architecture.md").read_text()
    for package in SHIPPED:
        for module in sorted(package.rglob("*.py")):
            source = module.read_text()
            assert len(source.splitlines()) <= 450, module
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    assert length <= 80, f"{module.name}: {node.name} is {length} lines"
            if package == CORE and module.name != "__init__.py":
                assert f"`{module.name}`" in architecture, f"docs/architecture.md does not name {module.name}"
    for sub in sorted(p.name for p in CORE.iterdir() if (p / "__init__.py").exists()):
        assert f"`{sub}`" in readme, f"docs/reference.md's layout table does not name the sub-package {sub}"


def _imports_at_run_time(module: Path, name: str) -> bool:
    """True when ``module`` imports ``name`` outside an ``if TYPE_CHECKING:`` block (at any depth)."""
    tree = ast.parse(module.read_text())
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            guarded.update(id(inner) for inner in ast.walk(node))
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import) and any(alias.name.split(".")[0] == name for alias in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == name and node.level == 0:
            return True
    return False


def test_httpx_lives_behind_the_transport_seam() -> None:
    """Outside the configuration (which parses URLs as httpx will send them), three modules import httpx at run time."""
    importing = sorted(
        str(module.relative_to(CORE))
        for module in CORE.rglob("*.py")
        if module.parent.name != "config"
        and (_imports_at_run_time(module, "httpx") or _imports_at_run_time(module, "httpcore"))
    )
    assert importing == ["drivers/_deadline.py", "drivers/_httpx.py", "drivers/_transports.py"]


def test_any_is_kept_to_the_edges_of_the_core() -> None:
    """The collaborators have Protocols (tokenizer, jitter, progress, transport): ``Any`` stays on few lines.

    What is left is JSON as parsed, pydantic's and the frameworks' own signatures, and the
    untyped internals of other libraries.
    """
    lines = [
        line for module in CORE.rglob("*.py") for line in module.read_text().splitlines() if re.search(r"\bAny\b", line)
    ]
    assert len(lines) <= 110, len(lines)


def test_the_task_table_names_what_the_package_exports() -> None:
    """Each task type is described once (config/_tasks.py); its clients and options are public and load."""
    from hf_infer_core.config import TASKS
    from hf_infer_core.config._options import RequestOptions

    for task_type, task in TASKS.items():
        assert task.task_type == task_type
        assert issubclass(task.load(task.options), RequestOptions)
        for where in task.clients:
            client = task.load(where)
            assert client.__name__ in hf_infer_core.__all__, client
            assert getattr(hf_infer_core, client.__name__) is client
        session = task.load(task.session)
        assert session.__name__.endswith("Session")


@pytest.mark.parametrize(
    ("module", "old", "new"),
    [
        ("hf_infer_core", "ClientOptions", "EmbeddingOptions"),
        ("hf_infer_core", "ClientOptionArgs", "EmbeddingOptionArgs"),
        ("hf_infer_core.integration", "AdapterOptions", "EmbeddingAdapter"),
        ("hf_infer_core.integration", "RerankAdapterOptions", "RerankAdapter"),
    ],
)
def test_a_renamed_public_name_still_works_for_one_release_with_a_warning(module: str, old: str, new: str) -> None:
    import importlib

    package = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=new):
        assert getattr(package, old) is getattr(package, new)


def test_the_retired_retry_policy_names_warn_and_still_resolve() -> None:
    from hf_infer_core.protocol import _retry

    for name in ("RetryPolicy", "RetryDecision", "decide"):
        with pytest.warns(DeprecationWarning, match="no client takes a retry policy"):
            assert getattr(hf_infer_core, name) is getattr(_retry, name)
    with pytest.raises(AttributeError):
        hf_infer_core.NoSuchName  # noqa: B018
