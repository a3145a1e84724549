"""The task table: each task type hf-infer serves, described once.

The endpoint parser reads each task's Elasticsearch rules here (which service settings it takes,
whether it reads ``chunking_settings``, how its ``task_settings`` are parsed); the adapters' base
reads its options and session; a test checks the package exports its clients. A task's code is
named by where it lives (a module and attribute), loaded when first asked for, so this table,
low in the layers, names the tasks above it without importing them.

A new task type is a row here and a sub-package of its own (its core, flows, options and a client
per driver, on the chunked pipeline or beside it): the drivers, the protocol and the rest of the
configuration are not edited.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel

from ._es_rules import KNOWN_TASK_TYPES
from ._settings import RerankTaskSettings, parse_rerank_task_settings

__all__ = ["TASKS", "Task", "task_of"]

# A task's task_settings parser: (the raw value, the errors list to add to) -> the fields it read.
TaskSettingsParser = Callable[[object, list[str]], dict[str, object]]


@dataclass(frozen=True, slots=True)
class Task:
    """One task type of the ``hugging_face`` service: Elasticsearch's rules for it, and where its code is."""

    task_type: str
    # Elasticsearch's rules: the dense-vector service settings (similarity, dimensions,
    # max_input_tokens) accepted, chunking_settings read, and the task_settings model and parser.
    vector_settings: bool
    chunking: bool
    task_settings: tuple[type[BaseModel], TaskSettingsParser] | None
    # Where the task's code is: "module:attribute" of its options class, its two clients
    # (blocking, asyncio) and the adapters' session.
    options: str
    clients: tuple[str, str]
    session: str

    def load(self, where: str) -> Any:
        """The object a ``"module:attribute"`` entry names, imported on first use (its type is the entry's: a class)."""
        module, _, name = where.partition(":")
        return getattr(importlib.import_module(module), name)


TASKS: Mapping[str, Task] = MappingProxyType(
    {
        "text_embedding": Task(
            "text_embedding",
            vector_settings=True,
            chunking=True,
            task_settings=None,
            options="hf_infer_core.embeddings._options:EmbeddingOptions",
            clients=("hf_infer_core.embeddings:EmbeddingClient", "hf_infer_core.embeddings:AsyncEmbeddingClient"),
            session="hf_infer_core.integration._session:EmbeddingSession",
        ),
        "rerank": Task(
            "rerank",
            # Elasticsearch's rerank service settings are the url and the rate limit, and it
            # reads no chunking_settings (left in the body, they are an unknown setting).
            vector_settings=False,
            chunking=False,
            task_settings=(RerankTaskSettings, parse_rerank_task_settings),
            options="hf_infer_core.config._options:RerankOptions",
            clients=("hf_infer_core.rerank:RerankClient", "hf_infer_core.rerank:AsyncRerankClient"),
            session="hf_infer_core.integration._session:RerankSession",
        ),
        "sparse_embedding": Task(
            "sparse_embedding",
            # Elasticsearch's hugging_face sparse settings (HuggingFaceElserServiceSettings) are the
            # url and the rate limit (max_input_tokens is shown, fixed, never accepted); it reads
            # chunking_settings for text_embedding and sparse_embedding alike.
            vector_settings=False,
            chunking=True,
            task_settings=None,
            options="hf_infer_core.sparse._options:SparseEmbeddingOptions",
            clients=("hf_infer_core.sparse:SparseEmbeddingClient", "hf_infer_core.sparse:AsyncSparseEmbeddingClient"),
            session="hf_infer_core.integration._session:SparseEmbeddingSession",
        ),
    }
)

assert set(TASKS) <= set(KNOWN_TASK_TYPES), "every task served is one Elasticsearch knows"


def task_of(task_type: str) -> Task:
    """The table's row for ``task_type`` (a ``KeyError`` for a task type hf-infer does not serve)."""
    return TASKS[task_type]
