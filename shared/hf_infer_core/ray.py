"""Embed a Ray Data dataset on a cluster (extra ``ray``): the public home of :func:`embed_dataset`.

The implementation is :mod:`hf_infer_core.integration._ray`.
"""

from __future__ import annotations

from .integration._ray import CHUNK_COLUMNS, embed_dataset, resolve_endpoint

__all__ = ["CHUNK_COLUMNS", "embed_dataset", "resolve_endpoint"]
