"""How a job runs: ``ExecutionOptions``, with its retry rule (``RetryPolicy``) and the events a caller
hears about (``RunHooks``).

``RunHooks`` is one object with named methods, all no-ops here: subclass it and override the ones you
need. Threads: ``chunk_started``, ``chunk_stdout`` and ``chunk_stderr`` fire on worker threads; every
other hook fires on the thread that called ``JobExecutor.execute``, in order.

The options of framefarm 0.1 (``retries=``, ``retry_delay=``, ``on_progress=``, ``skip_merge=``, ...)
are still accepted by ``ExecutionOptions(...)``, with a DeprecationWarning, and mean what they meant.
"""

from __future__ import annotations

import random
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from framefarm.backoff import Backoff
from framefarm.budget import checked_max_cost
from framefarm.cancel import CancelToken
from framefarm.config import DEFAULT_RETRIES, DEFAULT_RETRY_DELAY, DEFAULT_TRANSIENT_RETRIES
from framefarm.errors import JobSpecError
from framefarm.spec import Notify

if TYPE_CHECKING:
    from framefarm.adapters.base import WorkerAdapter, WorkerResult
    from framefarm.concurrency import Slots

DEFAULT_MAX_RETRY_DELAY = 60.0


class Stitcher(Protocol):
    def stitch(self, inputs: list[Path], output: Path, audio: Path | None = None) -> Path: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failed chunk is tried again, and how long to wait first.

    ``retries`` more tries after a deterministic failure (the render command's exit code, a crashed
    handler); ``transient_retries`` after a failure of the platform (throttled out, timed out,
    connection lost). Waits grow from ``delay`` to at most ``max_delay`` seconds, with jitter.
    """

    retries: int = DEFAULT_RETRIES
    transient_retries: int = DEFAULT_TRANSIENT_RETRIES
    delay: float = DEFAULT_RETRY_DELAY
    max_delay: float = DEFAULT_MAX_RETRY_DELAY
    jitter: Callable[[], float] = field(default=random.random, repr=False)

    def __post_init__(self) -> None:
        for name in ("retries", "transient_retries"):
            if getattr(self, name) < 0:
                raise JobSpecError(f"{name}: must be 0 or more (got {getattr(self, name)})")
        for name in ("delay", "max_delay"):
            value = getattr(self, name)
            if not value >= 0 or value == float("inf"):  # also refuses nan
                raise JobSpecError(f"retry {name}: must be a finite number of seconds, 0 or more (got {value})")

    def allowed(self, transient: bool) -> int:
        """Tries after the first for a failure of this kind."""
        return self.transient_retries if transient else self.retries

    def backoff(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure of one kind: exponential, capped, jittered."""
        return Backoff(self.delay, self.max_delay, self.jitter).delay(failures)


NO_RETRIES = RetryPolicy(retries=0)  # the executor's own default: a deterministic failure is final


class RunHooks:
    """What a run tells its caller. Override the methods you need; each does nothing here."""

    def progress(self, completed: int, total: int) -> None:
        """A chunk completed: ``completed`` of ``total`` are done (never above total, never after a fatal
        failure)."""

    def chunk_started(self, chunk_id: int, attempt: int) -> None:
        """An attempt is about to be sent (on a worker thread)."""

    def chunk_stdout(self, chunk_id: int, text: str) -> None:
        """Live output of a chunk's command, as it arrives (local workers only; on a worker thread)."""

    def chunk_stderr(self, chunk_id: int, text: str) -> None:
        """Live error output of a chunk's command (local workers only; on a worker thread)."""

    def attempt_finished(self, chunk_id: int, attempt: int, result: WorkerResult, started_at: float,
                         finished_at: float) -> None:
        """An attempt ended, successfully or not (what a job store records)."""

    def chunk_retrying(self, chunk_id: int, attempt: int, delay: float, result: WorkerResult) -> None:
        """Failed ``attempt`` will be tried again after ``delay`` seconds."""

    def chunk_completed(self, chunk_id: int, result: WorkerResult) -> None:
        """A chunk succeeded, with its full result."""

    def stitch_started(self) -> None:
        """Every chunk is done; the merge begins."""

    def budget_reached(self, spent_usd: float, max_cost: float) -> None:
        """The job's spending cap stops it: no new attempt starts (``framefarm.budget``), those in
        flight finish, and the job ends paused. ``spent_usd``: its cost so far, earlier runs included."""

    def listens_to(self, name: str) -> bool:
        """Whether hook ``name`` does anything here (live output is streamed only to someone listening)."""
        return name in vars(self) or getattr(type(self), name) is not getattr(RunHooks, name)


@dataclass(frozen=True)
class ResumeState:
    """What earlier runs of a job did, as the JobManager tells its executor: chunks already completed
    (skipped, counted as done) and attempts already recorded per chunk (numbering continues after them)."""

    completed: frozenset[int] = frozenset()
    earlier_attempts: Mapping[int, int] = field(default_factory=dict)
    spent_usd: float = 0.0  # what earlier runs cost (a spending cap counts it)


@dataclass(frozen=True)
class ExecutionOptions:
    """How to run a job (see the module docstring for ``hooks``).

    ``merge`` is the one switch for joining the chunks: with it, the ``stitcher`` (which needs
    ``output_file``) or the spec's ``merge_command`` runs once every chunk is done; without it the
    run ends with the chunks rendered. ``timeout`` bounds one attempt (seconds); an attempt silent
    for ``timeout + watchdog_margin`` is given up on. ``max_cost`` (USD) caps the job's cost for this
    run, in place of the spec's ``budget`` (see ``framefarm.budget``).
    ``slots``: the store's shared concurrency budget (``framefarm.slots.SlotGate``), a slot taken before
    each attempt; None: no budget.
    """

    concurrency: int = 1
    retry: RetryPolicy = NO_RETRIES
    hooks: RunHooks = field(default_factory=RunHooks)
    merge: bool = True
    stitcher: Stitcher | None = None
    output_file: str | Path | None = None
    merge_adapter: WorkerAdapter | None = None
    job_dir: str | Path | None = None
    timeout: float | None = None
    watchdog_margin: float = 30.0
    env: Mapping[str, str] | None = None
    cancel: CancelToken | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    clock: Callable[[], float] = time.time
    max_cost: float | None = None
    slots: Slots | None = None
    notify: Notify | None = None  # who hears when the job ends; None: as its spec says (``spec.notify``)

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise JobSpecError(f"concurrency: must be at least 1 (got {self.concurrency})")
        if not self.watchdog_margin >= 0:
            raise JobSpecError(f"watchdog_margin: must be 0 or more (got {self.watchdog_margin})")
        if self.timeout is not None and not 0 < self.timeout < float("inf"):
            raise JobSpecError(f"timeout: must be a positive number of seconds (got {self.timeout})")
        if self.max_cost is not None:
            checked_max_cost(self.max_cost)


# -- the options of framefarm 0.1 ---------------------------------------------------------------------

_HOOK_NAMES = {"on_progress": "progress", "on_chunk_start": "chunk_started", "on_chunk_stdout": "chunk_stdout",
               "on_chunk_stderr": "chunk_stderr", "on_chunk_attempt": "attempt_finished",
               "on_chunk_retry": "chunk_retrying", "on_chunk_complete": "chunk_completed",
               "on_merge_start": "stitch_started"}
_RETRY_NAMES = {"retries": "retries", "transient_retries": "transient_retries", "retry_delay": "delay",
                "max_retry_delay": "max_delay", "jitter": "jitter"}


class _CallbackHooks(RunHooks):
    """RunHooks that call the separate callbacks of framefarm 0.1."""

    def __init__(self, callbacks: Mapping[str, Callable[..., None]]) -> None:
        for old, new in _HOOK_NAMES.items():
            if callbacks.get(old) is not None:
                setattr(self, new, callbacks[old])


_OLD_ORDER = ("concurrency", "job_dir", "merge", "skip_merge", "retries", "transient_retries", "retry_delay",
              "max_retry_delay", "timeout", "watchdog_margin", "env", "on_progress", "on_chunk_complete",
              "on_chunk_stdout", "on_chunk_stderr", "on_chunk_start", "on_chunk_attempt", "on_chunk_retry",
              "on_merge_start", "cancel", "merge_adapter", "stitcher", "output_file", "completed_chunk_ids", "meta",
              "jitter", "clock")  # 0.1's field order, for positional arguments


def _accept_old_names(init: Callable[..., None]) -> Callable[..., None]:
    def __init__(self: ExecutionOptions, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(_OLD_ORDER):
            raise TypeError(f"ExecutionOptions takes at most {len(_OLD_ORDER)} positional arguments")
        kwargs.update(zip(_OLD_ORDER, args, strict=False))
        old = {name: kwargs.pop(name) for name in [*kwargs] if name in _HOOK_NAMES or name in _RETRY_NAMES
               or name in ("skip_merge", "completed_chunk_ids")}
        if old:
            warnings.warn(f"ExecutionOptions({', '.join(sorted(old))}=...): use retry=RetryPolicy(...), "
                          "hooks=RunHooks subclass and merge=", DeprecationWarning, stacklevel=2)
            if "completed_chunk_ids" in old:
                raise TypeError("ExecutionOptions(completed_chunk_ids=...) is gone: a JobManager resumes a job "
                                "(resume_job), skipping its completed chunks")
            retry = {new: old[name] for name, new in _RETRY_NAMES.items() if name in old}
            if retry:
                kwargs["retry"] = RetryPolicy(**{"retries": 0, **retry})
            if any(name in old for name in _HOOK_NAMES):
                kwargs["hooks"] = _CallbackHooks(old)
            if old.get("skip_merge"):
                kwargs["merge"] = False
        init(self, **kwargs)

    return __init__


ExecutionOptions.__init__ = _accept_old_names(ExecutionOptions.__init__)  # type: ignore[method-assign]
