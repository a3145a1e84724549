"""The drivers: they perform the steps of any task's flows, on threads or as asyncio tasks.

A task's clients subclass :class:`SyncDriver` and :class:`AsyncDriver` (the embeddings':
``hf_infer_core.embeddings``); the drivers never name a task.
"""

from __future__ import annotations

from ._async import AsyncDriver
from ._sync import SyncDriver

__all__ = ["AsyncDriver", "SyncDriver"]
