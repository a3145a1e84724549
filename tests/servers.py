"""The project's real model server for tests (see ``hf_infer_core.run_local_server``)."""

from __future__ import annotations

from hf_infer_core import LocalServer, run_local_server

run_server = run_local_server

__all__ = ["LocalServer", "run_server"]
