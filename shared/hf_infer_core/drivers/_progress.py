"""The drivers' progress bar: texts done, as a tqdm bar (``show_progress=True``).

The protocol only says which inputs are done (:class:`~hf_infer_core.protocol._task.Progress`);
counting them across threads and drawing the bar is the drivers' business.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

__all__ = ["TqdmProgress"]


class _Bar(Protocol):
    """What is drawn of a call's progress (a tqdm bar)."""

    def update(self, n: int) -> object: ...

    def close(self) -> None: ...


class TqdmProgress:
    """Counts texts done for an optional tqdm bar; a text is done when all its chunks are (batches finish on several threads)."""

    def __init__(self, enabled: bool, total: int, owners: Sequence[int] | None = None, *, desc: str) -> None:
        self._bar: _Bar | None = None
        self._owners = owners
        self._lock = threading.Lock()  # batches finish on several threads
        if owners is not None:
            self._remaining = [0] * total
            for owner in owners:
                self._remaining[owner] += 1
        if enabled and total > 1:  # a bar for one text (LlamaIndex's get_text_embedding) is noise
            try:
                from tqdm.auto import tqdm
            except ImportError as err:  # pragma: no cover - tqdm ships with the dev and all extras
                raise ImportError("show_progress=True needs tqdm: pip install 'hf-infer[progress]'") from err
            self._bar = tqdm(total=total, unit="text", desc=desc)

    def done(self, indices: Sequence[int]) -> None:
        if self._bar is None:
            return
        with self._lock:
            if self._owners is None:
                self._bar.update(len(indices))
                return
            finished = 0
            for i in indices:
                owner = self._owners[i]
                self._remaining[owner] -= 1
                finished += self._remaining[owner] == 0
            if finished:
                self._bar.update(finished)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
