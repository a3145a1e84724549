"""Optional probes: requests a call can go on without (``GET /info``, ``POST /tokenize``).

A probe that fails never fails the call that asked for it: the call goes on without what it
would have said (the batch size and token limit TEI states, exact token counts for fitting),
one WARNING per client says what was skipped, and the probe is not asked again for
:data:`PROBE_RETRY` seconds, so a broken route costs one attempt every few minutes, not one per
call. A route the endpoint does not have (404, 405) is skipped for good, at DEBUG.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal

from ..base._errors import HFInferError

__all__ = ["PROBE_RETRY", "Probe", "Probes"]

logger = logging.getLogger("hf_infer_core")

Probe = Literal["info", "tokenize"]

# Seconds a probe that failed is skipped before it is tried again.
PROBE_RETRY = 300.0

_WITHOUT: dict[Probe, str] = {
    "info": "batch size and token limit not discovered",
    "tokenize": "chunks over the token limit are split on the endpoint's 413 instead",
}


class Probes:
    """Which optional probes are skipped, and until when; I/O-free (the clock is injected)."""

    def __init__(self, where: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._where = where  # the endpoint as shown (no key, no query string)
        self._clock = clock
        self._skipped_until: dict[Probe, float] = {}
        self._warned: set[Probe] = set()

    @property
    def where(self) -> str:
        """The endpoint as shown in messages (no key, no query string)."""
        return self._where

    def due(self, name: Probe) -> bool:
        """False while ``name`` is skipped after a failure."""
        return self._clock() >= self._skipped_until.get(name, float("-inf"))

    def skip(self, name: Probe, err: HFInferError, *, for_good: bool = False) -> None:
        """Go on without ``name``: for good (the route does not exist), or for :data:`PROBE_RETRY` seconds."""
        self._skipped_until[name] = float("inf") if for_good else self._clock() + PROBE_RETRY
        if for_good:
            logger.debug("no TEI /%s at %s: going on without it", name, self._where)
            return
        if name not in self._warned:
            self._warned.add(name)
            logger.warning(
                "hf-infer: /%s of %s failed (%s: %s); going on without it (%s), tried again in %.0f s",
                name,
                self._where,
                type(err).__name__,
                err.message,
                _WITHOUT[name],
                PROBE_RETRY,
            )

    def adopt(self, other: Probes) -> None:
        """Take over ``other``'s skips and warnings (a client of the same endpoint)."""
        self._skipped_until = {**other._skipped_until, **self._skipped_until}
        self._warned |= other._warned
