"""What a webhook (and an EventBridge event) says about a job: the event name and a small JSON body
built from the job's record. Nothing in it comes from the environment (no secret can reach it)."""

from __future__ import annotations

from typing import Any

from framefarm.status import ChunkRecord, JobRecord, JobState, tail

PAYLOAD_VERSION = 1
JOB_EVENTS = {state: f"job.{state.value}" for state in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED,
                                                         JobState.PAUSED, JobState.RENDERED)}
CHUNK_FAILED = "chunk.failed"
EVENT_NAMES = frozenset({*JOB_EVENTS.values(), CHUNK_FAILED})
STDERR_CHARS = 500  # of a failed chunk's stderr (already blanked of secrets), to see why at a glance


def job_event(state: JobState) -> str | None:
    """The event a job ending in ``state`` sends (None: a state that is not an end)."""
    return JOB_EVENTS.get(state)


def job_payload(status: JobRecord) -> dict[str, Any]:
    """A job that ended: id, state, frames, where its video is, cost, billed time, failed attempts, error."""
    return {
        "version": PAYLOAD_VERSION, "event": job_event(status.state) or f"job.{status.state.value}",
        "job_id": status.id, "state": status.state.value, "at": status.updated_at,
        "frames": status.spec.metadata.total_frames, "total_chunks": status.total_chunks,
        "completed_chunks": status.completed_chunks, "output": status.output,
        "cost_usd": round(status.metrics.cost_usd, 9), "billed_ms": status.metrics.total_billed_duration_ms,
        "failed_attempts": status.metrics.failed_attempts, "error": status.error,
    }


def chunk_payload(status: JobRecord, record: ChunkRecord) -> dict[str, Any]:
    """A chunk that failed for good: which, after how many attempts, why."""
    chunk = status.spec.chunk(record.chunk_id)
    return {
        "version": PAYLOAD_VERSION, "event": CHUNK_FAILED, "job_id": status.id, "chunk_id": record.chunk_id,
        "at": record.finished_at, "start_frame": chunk.start_frame, "end_frame": chunk.end_frame,
        "attempts": record.attempts, "kind": record.kind.value if record.kind else None, "error": record.error,
        "cost_usd": round(record.cost_usd, 9), "billed_ms": record.billed_duration_ms,
        "stderr_tail": tail(record.stderr_tail, STDERR_CHARS),
    }
