"""What every task's flows share: discovery (TEI's ``/info``, once, never a failure) and progress.

A task's flows (the embeddings': ``embeddings/_flows.py``) subclass :class:`TaskJobs`; a driver
needs no more of them than this: it runs :meth:`TaskJobs.info` behind its lock when
:attr:`TaskJobs.discovery_due`, and performs the steps of whatever flow a method hands it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, Protocol, Self, TypeVar

from ..base._errors import ClientClosedError, HFInferError, RateLimitBackendError
from ..cache._cache import VectorCache
from ..config import InferenceEndpoint
from ..config._options import RequestOptions
from ._request import RequestCore
from ._retry import Jitter
from ._steps import Discover, Flow, ask

__all__ = ["Progress", "ProgressFactory", "TaskArgs", "TaskJobs", "no_progress"]

C = TypeVar("C", bound=RequestCore, covariant=True)
OptionsT = TypeVar("OptionsT", bound=RequestOptions)

_DISCOVER: Final = Discover()


@dataclass(frozen=True)
class TaskArgs:
    """What a client's constructor hands its task to build the flows.

    The endpoint, the options as given and by keyword, and the collaborators every task has
    (clock, jitter source); a task's own (the embeddings' tokenizer) are its client's.
    """

    endpoint: InferenceEndpoint
    options: RequestOptions | None
    overrides: Mapping[str, object]
    clock: Callable[[], float]
    rng: Jitter | None

    def options_for(self, options_type: type[OptionsT], task_type: str, clients: str, hint: str) -> OptionsT:
        """The task's options built from those given and the keywords, once both they and the endpoint are its own.

        Args:
            options_type: The task's options class (a client given another task's is refused).
            task_type: The endpoint's task type the task serves.
            clients: What the refusal calls the task's clients ("embedding", "rerank", ...).
            hint: Where the refusal sends the user, in brackets after it.

        Raises:
            TypeError: options of another class, or an endpoint of another task.
        """
        given = self.options
        if given is not None and not isinstance(given, options_type):
            name = options_type.__name__
            article = "an" if name[0] in "AEIOU" else "a"
            raise TypeError(f"options must be {article} {name}, got {type(given).__name__}")
        endpoint = self.endpoint
        if endpoint.task_type != task_type:
            raise TypeError(
                f"the endpoint [{endpoint.inference_id}] is a [{endpoint.task_type}] endpoint; the {clients} "
                f"clients need a [{task_type}] one ({hint})"
            )
        return options_type.build(given, self.overrides)


class Progress(Protocol):
    """What a flow tells of texts done (a driver's tqdm bar, or nothing); see ``drivers/_progress.py``."""

    def done(self, indices: Sequence[int]) -> None:
        """The inputs at ``indices`` (a batch) have their vectors."""

    def close(self) -> None:
        """The call ended, however it ended."""


# What a client hands Jobs to make a call's Progress: (shown, texts, owner of each input or None).
ProgressFactory = Callable[[bool, int, Sequence[int] | None], Progress]


class _NoProgress:
    def done(self, indices: Sequence[int]) -> None:
        pass

    def close(self) -> None:
        pass


def no_progress(enabled: bool, total: int, owners: Sequence[int] | None = None) -> Progress:
    """The default :data:`ProgressFactory`: nothing shown."""
    return _NoProgress()


def _no_counts(hits: int, misses: int, documents: bool = False) -> None:
    pass


class TaskJobs(Generic[C]):
    """A task's flows over its core ``C``: here, what they share (discovery, progress)."""

    def __init__(self, core: C, progress: ProgressFactory = no_progress) -> None:
        self.core = core
        self.progress = progress
        self.discovered = not core.options.discover
        self.on_info: Callable[[dict[str, Any]], None] | None = None
        # The driver has a cache: the flows look their texts up before sending them, and tell
        # it what they found (hits and misses, in texts sent).
        self.cache = False
        self.cache_counts: Callable[[int, int, bool], None] = _no_counts

    @property
    def discovery_due(self) -> bool:
        """True while :meth:`info` has something to do: ``/info`` to read, or a task's own check."""
        return self.info_due or self.checks_due

    @property
    def info_due(self) -> bool:
        """True until ``/info`` was read, except while a failed probe waits to be tried again."""
        return not self.discovered and self.core.probes.due("info")

    @property
    def checks_due(self) -> bool:
        """A task's own checks run with discovery (the embeddings' model identity, with a cache); none here."""
        return False

    def checks(self) -> Flow[None]:
        """The task's own checks, run behind the driver's discovery lock after ``/info`` (their errors fail the call)."""
        return
        yield  # pragma: no cover - an empty generator

    def info(self) -> Flow[None]:
        """Discovery: TEI's ``GET /info`` unless done (one bounded attempt, never a failure of the call), then the task's checks.

        The driver runs it behind its lock, so one request serves every call that starts at once;
        a failed one is remembered, so the callers waiting behind it go on without it.
        """
        if self.info_due:
            yield from self._read_info()
        if self.checks_due:
            yield from self.checks()

    def _read_info(self) -> Flow[None]:
        try:
            yield from self.core.info_flow()
        except (ClientClosedError, RateLimitBackendError):
            raise  # not the endpoint's answer: an infrastructure failure the call itself would meet
        except HFInferError as err:
            self.core.probes.skip("info", err)
            return
        self.discovered = True
        if self.on_info is not None and self.core.server_info is not None:
            self.on_info(self.core.server_info)

    def open_cache(self) -> VectorCache | None:
        """The cache the driver performs :class:`Lookup` and :class:`Store` steps on; none here (a task's may have one)."""
        return None

    def adopt(self, other: Self) -> None:
        """Take over ``other``'s discovery (a client of the same endpoint, older options)."""
        self.core.adopt(other.core)
        self.discovered = self.discovered or other.discovered

    def _discover(self) -> Flow[None]:
        """A :class:`Discover` step until ``/info`` was read, nothing after.

        A stream fits every text it reads: without this each text would cost the driver a step.
        """
        if self.discovery_due:
            yield from ask(_DISCOVER)
