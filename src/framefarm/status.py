"""What a job store holds: job state, per-chunk records, and the rule for recording one attempt.

Recording is idempotent and O(1): an attempt is applied to its chunk record only if that record
has not completed and has not already seen this attempt number; the job's counters move by the
attempt's own amounts. Every repository implements exactly this rule (:func:`apply_attempt` is the
reference the in-memory store uses and the contract tests check the others against).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    computed_field,
    model_validator,
)

from framefarm.config import BUDGET
from framefarm.failures import FailureKind
from framefarm.spec import JobSpec
from framefarm.tails import TAIL_CHARS, TAIL_MARK, is_cut, tail  # noqa: F401 - the records' tails, re-exported

BUDGET_ERROR_PREFIX = f"{BUDGET}: "  # how the error of a job paused by its spending cap starts


class JobState(str, Enum):
    """pending → running → rendered (every chunk done, not stitched) → stitching → completed; or failed,
    cancelled, paused."""

    PENDING = "pending"
    RUNNING = "running"
    RENDERED = "rendered"
    STITCHING = "stitching"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PAUSED = "paused"

    @property
    def is_finished(self) -> bool:
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)

    @property
    def is_active(self) -> bool:
        return self in (JobState.RUNNING, JobState.STITCHING)

    @property
    def is_settled(self) -> bool:
        """Nothing will change the job until someone acts: a wait for it ends here."""
        return self not in (JobState.PENDING, JobState.RUNNING, JobState.STITCHING)


class ChunkState(str, Enum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ChunkRecord(BaseModel):
    """Everything known about one chunk. Amounts (durations, cost, throttled calls) add up over all
    its attempts; ``throttles`` counts calls the platform refused (429) and framefarm retried, which
    are not attempts. ``kind`` is why its latest attempt failed (None after a success, or never tried)."""

    model_config = ConfigDict(frozen=True)

    chunk_id: int
    state: ChunkState = ChunkState.PENDING
    attempts: int = 0
    duration_ms: float = 0.0
    billed_duration_ms: int = 0
    memory_mb: int | None = None
    max_memory_used_mb: int | None = None
    init_duration_ms: float | None = None
    request_id: str | None = None
    cost_usd: float = 0.0
    throttles: int = 0
    stdout_tail: str = ""
    stderr_tail: str = ""
    error: str | None = None
    kind: FailureKind | None = None
    output: str | None = None
    started_at: float | None = None
    finished_at: float | None = None


@dataclass(frozen=True, slots=True)
class ChunkAttempt:
    """The outcome of one attempt at one chunk, as the manager reports it to the store.

    A plain dataclass: built once per attempt by framefarm itself, on the hot path.
    """

    chunk_id: int
    attempt: int
    state: ChunkState
    duration_ms: float = 0.0
    billed_duration_ms: int = 0
    memory_mb: int | None = None
    max_memory_used_mb: int | None = None
    init_duration_ms: float | None = None
    request_id: str | None = None
    cost_usd: float = 0.0
    throttles: int = 0
    stdout_tail: str = ""
    stderr_tail: str = ""
    error: str | None = None
    kind: FailureKind | None = None
    output: str | None = None
    started_at: float | None = None
    finished_at: float | None = None

    def __post_init__(self) -> None:
        if self.attempt < 1:
            raise ValueError(f"attempt numbers start at 1 (got {self.attempt})")

    def counter_deltas(self) -> dict[str, float | int]:
        """How the job's counters move when this attempt is recorded."""
        return {
            "completed_chunks": 1 if self.state is ChunkState.COMPLETED else 0,
            "failed_attempts": 1 if self.state is ChunkState.FAILED else 0,
            "total_duration_ms": self.duration_ms,
            "total_billed_duration_ms": self.billed_duration_ms,
            "cost_usd": self.cost_usd,
        }


@dataclass(frozen=True, slots=True)
class ChunkStarted:
    """An attempt at a chunk began (for status displays and stuck-chunk detection)."""

    chunk_id: int
    attempt: int
    at: float


ChunkEvent = ChunkStarted | ChunkAttempt


def apply_started(record: ChunkRecord, started: ChunkStarted) -> ChunkRecord | None:
    """The chunk record once an attempt started, or None when it already completed."""
    if record.state is ChunkState.COMPLETED:
        return None
    return record.model_copy(update={"state": ChunkState.RUNNING, "started_at": started.at})


def apply_attempt(record: ChunkRecord, attempt: ChunkAttempt) -> ChunkRecord | None:
    """The chunk record after ``attempt``, or None when the attempt was already recorded."""
    if record.state is ChunkState.COMPLETED or attempt.attempt <= record.attempts:
        return None
    return record.model_copy(update={
        "state": attempt.state,
        "attempts": attempt.attempt,
        "duration_ms": record.duration_ms + attempt.duration_ms,
        "billed_duration_ms": record.billed_duration_ms + attempt.billed_duration_ms,
        "cost_usd": record.cost_usd + attempt.cost_usd,
        "throttles": record.throttles + attempt.throttles,
        "memory_mb": attempt.memory_mb,
        "max_memory_used_mb": attempt.max_memory_used_mb,
        "init_duration_ms": attempt.init_duration_ms,
        "request_id": attempt.request_id,
        "stdout_tail": attempt.stdout_tail,
        "stderr_tail": attempt.stderr_tail,
        "error": attempt.error,
        "kind": attempt.kind,
        "output": attempt.output,
        "started_at": attempt.started_at if attempt.started_at is not None else record.started_at,
        "finished_at": attempt.finished_at,
    })


class JobMetrics(BaseModel):
    """Job totals: the sums over every recorded attempt of every chunk."""

    model_config = ConfigDict(frozen=True)

    total_duration_ms: float = 0.0
    total_billed_duration_ms: int = 0
    cost_usd: float = 0.0
    failed_attempts: int = 0


class DeliveryState(str, Enum):
    """A webhook delivery: pending (being tried), delivered (a 2xx answer), failed (given up: a 4xx
    answer, or retries ran out), abandoned (the process sending it exited before it was done)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    ABANDONED = "abandoned"


DELIVERY_OUTCOMES_KEPT = 10  # the latest attempts' outcomes a delivery record keeps ("500", "timeout", ...)


class DeliveryRecord(BaseModel):
    """One webhook delivery of one event and its attempts so far, as the job store keeps it (small:
    the body sent, and a short outcome per attempt). ``body`` is what every attempt sends; its
    signature is made per attempt and never stored. Stored only forward: a record with fewer
    attempts, or after a final state, never replaces a newer one (``JobRepository.record_delivery``)."""

    model_config = ConfigDict(frozen=True)

    delivery_id: str
    event: str
    url: str
    body: str
    state: DeliveryState = DeliveryState.PENDING
    attempts: int = 0
    outcomes: list[str] = Field(default_factory=list)
    error: str | None = None
    created_at: float
    updated_at: float
    next_at: float | None = None

    def supersedes(self, stored: DeliveryRecord | None) -> bool:
        """Whether this record may replace ``stored``: never one that is final, or further along."""
        return stored is None or (stored.state is DeliveryState.PENDING and self.attempts >= stored.attempts)


SpecLoader = Callable[[], JobSpec]


class JobRecord(BaseModel):
    """A job as the store knows it. ``chunks`` is empty in listings (see ``JobRepository.list``).

    ``spec`` is given as a JobSpec or as a function that reads it (a store's own loader), so listings
    and summaries never read a spec nobody looks at: ``status.spec`` reads it on first use, then keeps it.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    state: JobState = JobState.PENDING
    total_chunks: int
    completed_chunks: int = 0
    error: str | None = None
    output: str | None = None
    created_at: float
    updated_at: float
    heartbeat_at: float | None = None
    pending_action: str | None = None  # "cancel" or "pause", asked of the runner (stored as `requested`)
    lease_owner: str | None = None
    lease_until: float | None = None
    client_token: str | None = None
    metrics: JobMetrics = JobMetrics()
    chunks: list[ChunkRecord] = Field(default_factory=list)
    _spec: JobSpec | SpecLoader = PrivateAttr()

    if TYPE_CHECKING:  # what callers pass; at run time pydantic's __init__ hands ``spec`` to _spec_aside
        def __init__(self, *, spec: JobSpec | SpecLoader, **fields: Any) -> None: ...

    @model_validator(mode="wrap")
    @classmethod
    def _spec_aside(cls, data: Any, handler: ModelWrapValidatorHandler[JobRecord]) -> JobRecord:
        """Keep ``spec`` (a JobSpec, its fields, or a loader) apart from the fields pydantic checks."""
        if isinstance(data, JobRecord):
            return data
        if not isinstance(data, dict) or data.get("spec") is None:
            raise ValueError("spec: required (a JobSpec, or a function that reads it)")
        fields = dict(data)
        spec = fields.pop("spec")
        status = handler(fields)
        status._spec = spec if callable(spec) and not isinstance(spec, BaseModel) else JobSpec.model_validate(spec)
        return status

    @computed_field(repr=False)  # type: ignore[prop-decorator]
    @property
    def spec(self) -> JobSpec:
        """The job's spec; read through the store's loader the first time it is asked for."""
        spec = self._spec
        if not isinstance(spec, JobSpec):
            spec = self._spec = spec()
        return spec

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, JobRecord):
            return NotImplemented
        return self.__dict__ == other.__dict__ and self.spec == other.spec

    @computed_field  # type: ignore[prop-decorator]
    @property
    def progress(self) -> float:
        """Percent of chunks completed, 0-100."""
        if self.total_chunks == 0:
            return 0.0
        return round(100.0 * self.completed_chunks / self.total_chunks, 2)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def pause_reason(self) -> str | None:
        """Why a paused job stopped: ``budget`` (its spending cap: the error says how far it got) or
        ``requested`` (``pause``, or chunks reopened to render again); None for a job not paused.
        Kept as the error's ``budget:`` lead, so every store holds it without a field of its own."""
        if self.state is not JobState.PAUSED:
            return None
        return BUDGET if (self.error or "").startswith(BUDGET_ERROR_PREFIX) else "requested"

    def lease_free(self, now: float) -> bool:
        """True when no runner holds the job: no lease, or one that ran out by ``now``."""
        return self.lease_until is None or self.lease_until <= now

    def chunk(self, chunk_id: int) -> ChunkRecord:
        for record in self.chunks:
            if record.chunk_id == chunk_id:
                return record
        raise KeyError(chunk_id)

    @classmethod
    def new(cls, spec: JobSpec, *, now: float, output: str | None = None, client_token: str | None = None
            ) -> JobRecord:
        return cls(id=spec.id, spec=spec, total_chunks=len(spec.chunks), output=output or spec.output,
                   created_at=now, updated_at=now, client_token=client_token,
                   chunks=[ChunkRecord(chunk_id=chunk.id) for chunk in spec.chunks])


JobStatus = JobRecord  # its name in framefarm 0.1 (it is the whole record of a job, not only its state)
