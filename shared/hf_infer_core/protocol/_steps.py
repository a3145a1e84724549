"""The steps a flow asks its driver to perform, and what the driver sends back for each.

A flow is a plain generator, in the manner of httpx's ``auth_flow`` and h11: it yields a step,
the driver performs it and sends back what came of it, or throws in the typed error it ended
with. The vocabulary is small, and every step is a frozen dataclass that says, as its
:class:`Asks` parameter, what the driver sends back; a flow asks with ``reply = yield from
ask(step)``, and ``reply`` has that type:

- :class:`Send`: take a rate-limit token and send this request; back: :data:`Outcome`.
- :class:`Sleep`: wait this long; back: ``None``.
- :class:`Discover`: read TEI's ``/info`` once for the client (the driver holds the lock); back: ``None``.
- :class:`Parallel`: run these flows, at most ``window`` at once; back: their results, in order.
  The first that fails for good stops the others and is thrown in.
- :class:`Lookup`, :class:`Store`: the cache's values of these keys; cache these values.
- :class:`Read`, :class:`Start`, :class:`Settle`, :class:`Emit`: a stream's window: the next
  input text (or :data:`END`), start a flow in the background (back: ``None``), the result of the
  oldest one started, give these results to the consumer (back: ``None``).

Nothing here does I/O or imports a driver's machinery.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Generic, TypeAlias, TypeVar, Union, cast

if TYPE_CHECKING:
    from ..base._errors import HFInferError

__all__ = [
    "END",
    "Asks",
    "Discover",
    "Emit",
    "End",
    "Flow",
    "HttpResult",
    "Lookup",
    "Outcome",
    "Parallel",
    "Read",
    "Send",
    "Settle",
    "Sleep",
    "Start",
    "Step",
    "Store",
    "ask",
    "unknown_step",
]

T = TypeVar("T")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)
T_co = TypeVar("T_co", covariant=True)


class Asks(Generic[R_co]):
    """A step whose driver sends back an ``R_co`` (see :func:`ask`)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class HttpResult:
    """What a driver hands back for a :class:`Send`: the status, the retry hint and the raw body."""

    status_code: int
    body: bytes
    retry_after: str | None = None


# What a Send comes back as: the answer, or the typed error the attempt ended with.
Outcome = Union[HttpResult, "HFInferError"]


@dataclass(frozen=True, slots=True)
class Send(Asks[Outcome]):
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
class Sleep(Asks[None]):
    """Step: wait ``seconds`` before the next attempt."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Discover(Asks[None]):
    """Step: make sure TEI's ``/info`` was read (once per client, whoever asks first)."""


@dataclass(frozen=True, slots=True)
class Parallel(Asks[list[T_co]]):
    """Step: run ``flows`` (``size`` of them), at most ``window`` at once; send back their results in order.

    ``done(k)`` is called as the ``k``-th finishes (progress). The first failure stops the rest:
    no further request is sent, and the error is thrown into the flow that asked.
    """

    flows: Iterator[Flow[T_co]]
    size: int
    window: int
    done: Callable[[int], None] | None = None


@dataclass(frozen=True, slots=True)
class Lookup(Asks["list[bytes | None]"]):
    """Step: the cached value of each key (``None``: not cached, or no cache); a failing store is a miss."""

    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Store(Asks[None]):
    """Step: cache each value under its key (a failing store is logged, never raised)."""

    pairs: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class Read(Asks["str | End"]):
    """Step: the next text of a stream's input; :data:`END` after the last."""


class End:
    """The type of :data:`END`, what a :class:`Read` step sends back after the last text."""

    def __repr__(self) -> str:
        return "END"


END: Final = End()


@dataclass(frozen=True, slots=True)
class Start(Asks[None]):
    """Step: start ``flow`` in the background (a stream's batch); :class:`Settle` collects it."""

    flow: Flow[object]


@dataclass(frozen=True, slots=True)
class Settle(Asks[T_co]):
    """Step: wait for the oldest flow started and not yet settled; send back its result.

    ``T_co`` is what the flows the stream starts return (the driver hands back what the flow returned).
    """


@dataclass(frozen=True, slots=True)
class Emit(Asks[None]):
    """Step: give ``items`` to the stream's consumer, in order."""

    items: list[object]


Step: TypeAlias = "Send | Sleep | Discover | Parallel[object] | Lookup | Store | Read | Start | Settle[object] | Emit"
# A flow receives what its last step came to; ask() gives it the step's own type.
Flow: TypeAlias = Generator[Step, object, T]


def ask(step: Asks[R]) -> Generator[Step, object, R]:
    """Yield ``step`` to the driver and return what it sends back, typed by the step.

    The drivers' dispatch (``match`` over :data:`Step`, checked exhaustive by mypy) sends each
    step back what its :class:`Asks` parameter says: this is the one place that is trusted.
    """
    reply = yield cast(Step, step)
    return cast(R, reply)


def unknown_step(step: object) -> TypeError:
    """The error a driver raises for a step it does not know (never performed as another)."""
    return TypeError(f"a flow yielded {step!r}, which is not a step this driver performs ({type(step).__name__})")
