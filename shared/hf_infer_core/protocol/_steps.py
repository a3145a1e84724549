"""The steps a flow asks its driver to perform, and what the driver sends back for each.

A flow is a plain generator, in the manner of httpx's ``auth_flow`` and h11: it yields a step,
the driver performs it and sends back what came of it, or throws in the typed error it ended
with. The vocabulary is small, and every step is a frozen dataclass:

- :class:`Send`: take a rate-limit token and send this request; back: :data:`Outcome`.
- :class:`Sleep`: wait this long; back: ``None``.
- :class:`Discover`: read TEI's ``/info`` once for the client (the driver holds the lock); back: ``None``.
- :class:`Parallel`: run these flows, at most ``window`` at once; back: their results, in order.
  The first that fails for good stops the others and is thrown in.
- :class:`Read`, :class:`Start`, :class:`Settle`, :class:`Emit`: a stream's window: the next
  input text (or :data:`END`), start a flow in the background (back: ``None``), the result of the
  oldest one started, give these results to the consumer (back: ``None``).

Nothing here does I/O or imports a driver's machinery.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar, Union

if TYPE_CHECKING:
    from ..base._errors import HFInferError

__all__ = [
    "END",
    "Discover",
    "Emit",
    "Flow",
    "HttpResult",
    "Outcome",
    "Parallel",
    "Read",
    "Send",
    "Settle",
    "Sleep",
    "Start",
    "Step",
    "unknown_step",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Send:
    """Step: take a rate-limit token and send ``method url`` with ``body``.

    ``indices`` are the batch's positions in the caller's list (empty for discovery).
    """

    body: bytes
    indices: tuple[int, ...]
    attempt: int
    url: str
    method: str = "POST"
    # Seconds this attempt may take in all (connect, send, wait, read the whole body): the
    # ``timeout`` option, cut to what is left of ``retry_deadline``.
    timeout: float = 30.0
    # The largest body this request's answer may have, decompressed (max_response_bytes).
    max_bytes: int = 1 << 20


@dataclass(frozen=True, slots=True)
class HttpResult:
    """What a driver hands back for a :class:`Send`: the status, the retry hint and the raw body."""

    status_code: int
    body: bytes
    retry_after: str | None = None


# What a Send comes back as: the answer, or the typed error the attempt ended with.
Outcome = Union[HttpResult, "HFInferError"]


@dataclass(frozen=True, slots=True)
class Sleep:
    """Step: wait ``seconds`` before the next attempt."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Discover:
    """Step: make sure TEI's ``/info`` was read (once per client, whoever asks first)."""


@dataclass(frozen=True, slots=True)
class Parallel:
    """Step: run ``flows`` (``size`` of them), at most ``window`` at once; send back their results in order.

    ``done(k)`` is called as the ``k``-th finishes (progress). The first failure stops the rest:
    no further request is sent, and the error is thrown into the flow that asked.
    """

    flows: Iterator[Flow[Any]]
    size: int
    window: int
    done: Callable[[int], None] | None = None


@dataclass(frozen=True, slots=True)
class Read:
    """Step: the next text of a stream's input; :data:`END` after the last."""


class _End:
    def __repr__(self) -> str:
        return "END"


END: Final = _End()


@dataclass(frozen=True, slots=True)
class Start:
    """Step: start ``flow`` in the background (a stream's batch); :class:`Settle` collects it."""

    flow: Flow[Any]


@dataclass(frozen=True, slots=True)
class Settle:
    """Step: wait for the oldest flow started and not yet settled; send back its result."""


@dataclass(frozen=True, slots=True)
class Emit:
    """Step: give ``items`` to the stream's consumer, in order."""

    items: list[Any]


Step = Send | Sleep | Discover | Parallel | Read | Start | Settle | Emit
# A flow receives what its last step came to: an Outcome, a result list, a text, or None.
Flow = Generator[Step, Any, T]


def unknown_step(step: object) -> TypeError:
    """The error a driver raises for a step it does not know (never performed as another)."""
    return TypeError(f"a flow yielded {step!r}, which is not a step this driver performs ({type(step).__name__})")
