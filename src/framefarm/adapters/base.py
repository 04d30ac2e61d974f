"""The worker contract: an adapter turns one WorkerJob into one WorkerResult.

Adapters that can stream (local) call ``on_stdout``/``on_stderr`` with raw text as it arrives;
joined, that text equals the buffered ``stdout``/``stderr`` in the result. Adapters that cannot
stream (Lambda, Cloud Run) accept the callbacks and never call them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from framefarm.cancel import CancelToken
from framefarm.failures import FailureKind, with_settled_kind
from framefarm.spec import Command, Steps
from framefarm.tails import tail

TextCallback = Callable[[str], None]
CANCELLED = "cancelled"  # the error text of an attempt its job's cancel stopped (kind FailureKind.CANCELLED)


@dataclass(frozen=True)
class WorkerJob:
    """One call to a worker. ``timeout`` is in seconds; ``meta`` carries chunk_id, job_id and attempt.

    ``command`` is one command, or ``Steps``: several run in order, one deadline for them all."""

    command: Command | Steps
    args: list[str] = field(default_factory=list)
    cwd: str | Path | None = None
    env: Mapping[str, str] | None = None
    timeout: float | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    cancel: CancelToken | None = None
    on_stdout: TextCallback | None = None
    on_stderr: TextCallback | None = None
    on_sent: Callable[[], None] | None = None  # the adapter sent the request (again, after a throttle wait)


class WorkerResult(BaseModel):
    """What a worker call produced. Billing fields are filled by adapters that know them.

    ``kind`` says why the call failed (None on success), set once by the adapter that made the call;
    ``error`` is the human text for it. ``exit_code`` is the command's own exit status, as a shell
    reports it (a signal N is 128 + N); None when no command ran to an end of its own (the platform
    failed, the call timed out or was refused). A non-zero exit code given without a kind is
    ``FailureKind.EXIT_CODE``. ``throttles`` counts calls the platform refused before this one got
    through (not attempts). ``transient`` follows from the kind (throttled out, connection lost, timed
    out): worth retrying, under ``ExecutionOptions.transient_retries``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    exit_code: int | None = Field(default=None, ge=0)
    stdout: str = ""
    stderr: str = ""
    duration_ms: float = 0.0
    billed_duration_ms: int | None = None
    memory_mb: int | None = None
    max_memory_used_mb: int | None = None
    init_duration_ms: float | None = None
    request_id: str | None = None
    cost_usd: float | None = None
    throttles: int = 0
    error: str | None = None
    output_location: str | None = None
    kind: FailureKind | None = None

    @model_validator(mode="before")
    @classmethod
    def _settle_kind(cls, data: Any) -> Any:
        return with_settled_kind(_as_written_for_0_1(data))

    @property
    def ok(self) -> bool:
        return self.kind is None

    @property
    def transient(self) -> bool:
        return self.kind is not None and self.kind.transient

    @property
    def reason(self) -> str:
        """Why the call failed in a few words: the error, else the exit code, else the kind."""
        if self.error:
            return self.error
        return f"exit code {self.exit_code}" if self.exit_code is not None else str(self.kind and self.kind.value)

    def failure_text(self) -> str:
        """Why the call failed, in one line-ish: the error and the last lines of stderr, or the exit code."""
        detail = self.error or ""
        stderr = self.stderr.strip()
        if stderr:
            last_lines = " | ".join(stderr.splitlines()[-3:])
            detail = f"{detail}: {last_lines}" if detail else last_lines
        return tail(detail or self.reason, 1_000)


def _as_written_for_0_1(data: Any) -> Any:
    """A result as adapters written for framefarm 0.1 build it, in today's terms: a negative exit code
    (Python's for a signal) as a shell reports it (128 + N); ``transient=True`` as a lost connection;
    an error text on exit code 0 as the worker's own failure."""
    if not isinstance(data, Mapping) or not ({"transient"} & data.keys() or (data.get("exit_code") or 0) < 0
                                              or (data.get("exit_code") == 0 and data.get("error"))):
        return data
    data = dict(data)
    transient = data.pop("transient", False)
    if (data.get("exit_code") or 0) < 0:
        data["exit_code"] = 128 - data["exit_code"]
    if data.get("kind") is None:
        if transient and (data.get("exit_code") or data.get("error")):
            data["kind"] = FailureKind.CONNECTION_LOST
        elif data.get("exit_code") == 0 and data.get("error"):
            data["kind"] = FailureKind.FUNCTION_ERROR
    return data


def mark_sent(job: WorkerJob) -> None:
    """Tell the executor's watchdog the call went out now (its silence is measured from here)."""
    if job.on_sent is not None:
        job.on_sent()


@runtime_checkable
class WorkerAdapter(Protocol):
    """Runs one WorkerJob and returns its WorkerResult; raises only for failures of the adapter itself."""

    def execute(self, job: WorkerJob) -> WorkerResult: ...


class CallableWorkerAdapter:
    """Runs a Python function in-process as the worker: ``fn(job) -> WorkerResult | int | None``.

    A real adapter for tests, benchmarks and pure-Python chunk work; ``None`` means exit code 0, another
    int is the exit code (``FailureKind.EXIT_CODE`` when not 0), and a WorkerResult is returned as it is.
    An exception ``fn`` raises propagates: the executor records it (see ``JobExecutor``).
    """

    def __init__(self, fn: Callable[[WorkerJob], WorkerResult | int | None],
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self._fn = fn
        self._clock = clock

    def execute(self, job: WorkerJob) -> WorkerResult:
        started = self._clock()
        outcome = self._fn(job)
        if isinstance(outcome, WorkerResult):
            return outcome
        return WorkerResult(exit_code=outcome or 0, kind=FailureKind.EXIT_CODE if outcome else None,
                            duration_ms=(self._clock() - started) * 1000.0)
