"""hf_infer_server: a local text-embeddings-inference compatible model server (extra ``server``).

``hf-infer serve`` serves a sentence-transformers model over TEI's HTTP protocol, so that code
written against a Hugging Face endpoint can be developed and tested offline.
:func:`run_local_server` runs it in a child process for tests and demos. Importing this package
imports none of the server's dependencies; :func:`create_app` and :func:`serve` do.
"""

from __future__ import annotations

from ._app import create_app, default_model_path, serve
from ._local import LocalServer, free_port, run_local_server

__all__ = ["LocalServer", "create_app", "default_model_path", "free_port", "run_local_server", "serve"]
