"""The ``--json`` documents of the read commands (jobs, status, cost, logs): schema in docs/cli-json.md.

Every document is one JSON object on one line with ``"version": JSON_VERSION``; a field is only ever
added within a version, never renamed or removed.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console

from framefarm.spec import Chunk
from framefarm.status import ChunkRecord, DeliveryRecord, JobRecord

JSON_VERSION = 1


def emit(console: Console, command: str, **fields: Any) -> None:
    """Write one document to the console's file as is: no markup, no highlighting, no wrapping."""
    console.file.write(json.dumps({"version": JSON_VERSION, "command": command, **fields}) + "\n")
    console.file.flush()


def job_json(job: JobRecord) -> dict[str, Any]:
    metadata = job.spec.metadata
    return {
        "id": job.id, "state": job.state.value, "total_chunks": job.total_chunks,
        "completed_chunks": job.completed_chunks, "progress": round(job.progress, 2),
        "created_at": job.created_at, "updated_at": job.updated_at, "output": job.output, "error": job.error,
        "frames": metadata.total_frames, "fps": metadata.fps, "width": metadata.width, "height": metadata.height,
        "duration_ms": job.metrics.total_duration_ms, "billed_ms": job.metrics.total_billed_duration_ms,
        "cost_usd": job.metrics.cost_usd, "failed_attempts": job.metrics.failed_attempts,
        "pause_reason": job.pause_reason,
        "max_cost": job.spec.budget.max_cost if job.spec.budget else None,
    }


def chunks_json(job: JobRecord, records: list[ChunkRecord]) -> list[dict[str, Any]]:
    spans = {chunk.id: chunk for chunk in job.spec.chunks}
    return [_chunk_json(record, spans.get(record.chunk_id)) for record in records]


def _chunk_json(record: ChunkRecord, chunk: Chunk | None) -> dict[str, Any]:
    return {
        "id": record.chunk_id, "state": record.state.value, "attempts": record.attempts,
        "start_frame": chunk.start_frame if chunk else None, "end_frame": chunk.end_frame if chunk else None,
        "duration_ms": record.duration_ms, "billed_ms": record.billed_duration_ms, "cost_usd": record.cost_usd,
        "memory_mb": record.memory_mb, "max_memory_used_mb": record.max_memory_used_mb,
        "init_ms": record.init_duration_ms, "throttles": record.throttles,
        "started_at": record.started_at, "finished_at": record.finished_at,
        "kind": record.kind.value if record.kind else None, "error": record.error,
    }


def deliveries_json(records: list[DeliveryRecord]) -> list[dict[str, Any]]:
    """A job's webhook deliveries (the body sent is left out: it is the job's own facts again)."""
    return [{"id": record.delivery_id, "event": record.event, "url": record.url, "state": record.state.value,
             "attempts": record.attempts, "outcomes": record.outcomes, "error": record.error,
             "created_at": record.created_at, "updated_at": record.updated_at, "next_at": record.next_at}
            for record in records]
