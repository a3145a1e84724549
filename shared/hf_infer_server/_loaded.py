"""A second model the server may load beside the embedding model (a cross-encoder, a SPLADE model).

Loaded on a thread at start-up, as the embedding model is; until then, or after a failure, its
route answers 503 and ``/health`` says why. Without a path, its route is served by a stand-in.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from ._model import Model

__all__ = ["Loaded"]

# One model loads at a time: transformers builds a model on its meta device through process-wide
# state, and two loads on two threads at once left one with weights never materialised ("Cannot
# copy out of meta tensor", a cross-encoder and a SPLADE model beside the embedding model).
_LOADING = threading.Lock()


class Loaded:
    """The model at ``path`` (``None``: the stand-in), loaded on a thread; its state for the routes."""

    def __init__(self, embedding: Model, path: str | None, thread_name: str) -> None:
        self.embedding = embedding
        self.path = path
        self.model: Any = None
        self.error: str | None = None
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._backend: Any = None
        if path is not None:
            threading.Thread(target=self._load_now, name=thread_name, daemon=True).start()

    def _load_now(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.embedding.loaded()  # after the embedding model: see _LOADING
        try:
            with _LOADING:
                self.model = self._load(str(self.path))
        except Exception as err:  # reported by /health, /info and every request of its route
            self.error = f"{type(err).__name__}: {err}"

    def _load(self, path: str) -> Any:
        """The model at ``path`` (a subclass says which kind)."""
        raise NotImplementedError

    @property
    def loading(self) -> bool:
        """True while the model is still being loaded."""
        return self.path is not None and self.model is None and self.error is None

    @property
    def model_id(self) -> str | None:
        """The model's directory name (``None`` for the stand-in)."""
        return os.path.basename(os.path.normpath(self.path)) if self.path is not None else None
