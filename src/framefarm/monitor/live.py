"""What the job page shows at the top, and how it follows a job: a server-sent event each time the
job's summary changes, read from the store's summary (no chunk records) every ``interval`` seconds.

A message is one compact JSON line (a couple of hundred bytes); the page fetches the charts again
only when ``attempts`` (finished attempts) moved or a chunk runs, so a 10,000-chunk job's records
are not read every second. The stream ends once the job is settled (nothing changes it unless
someone acts), and the page closes its EventSource then.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from framefarm.status import ChunkState, JobRecord

#: Seconds between two reads of a followed job.
INTERVAL = 1.0
#: Seconds of silence after which a stream sends a comment, so proxies keep it open.
KEEPALIVE = 15.0


def frames_done(job: JobRecord) -> int:
    """Frames of the completed chunks: exact with chunk records, else in proportion to chunks done."""
    if job.chunks:
        sizes = {chunk.id: chunk.frame_count for chunk in job.spec.chunks}
        return sum(sizes.get(record.chunk_id, 0) for record in job.chunks if record.state is ChunkState.COMPLETED)
    if job.total_chunks == 0:
        return 0
    return round(job.spec.metadata.total_frames * job.completed_chunks / job.total_chunks)


def live_summary(job: JobRecord, now: float) -> dict[str, Any]:
    """The figures at the top of the job page, as text, plus what the page script needs."""
    running = not job.state.is_settled
    until = now if running else job.updated_at
    elapsed = max(0.0, until - job.created_at)
    eta = "-"
    if running and 0 < job.completed_chunks < job.total_chunks:
        eta = whole_seconds(elapsed / job.completed_chunks * (job.total_chunks - job.completed_chunks))
    return {
        "state": job.state.value,
        "percent": round(job.progress, 1),
        "progress": f"{int(job.progress)}% ({job.completed_chunks}/{job.total_chunks} chunks)",
        "frames": f"{frames_done(job)}/{job.spec.metadata.total_frames}",
        "elapsed": whole_seconds(elapsed),
        "eta": eta,
        "cost": f"${job.metrics.cost_usd:.6f}",
        "attempts": job.completed_chunks + job.metrics.failed_attempts,
        "error": job.error or "",
        "settled": job.state.is_settled,
    }


def whole_seconds(value: float) -> str:
    """A duration to the second: what changes a live summary at most once a second."""
    value = int(value)
    return f"{value} s" if value < 60 else f"{value // 60} min {value % 60:02d} s"


def message(data: dict[str, Any]) -> str:
    """One server-sent event."""
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n"


async def follow(read: Callable[[], JobRecord], clock: Callable[[], float], *, interval: float = INTERVAL,
                 keepalive: float = KEEPALIVE) -> AsyncIterator[str]:
    """Server-sent events for one job: a message whenever its summary changes, until it settles.
    ``read`` (blocking: a store call) runs on a worker thread."""
    import anyio.to_thread  # the monitor extra's (starlette's); `framefarm report` works without it

    last, quiet = "", 0.0
    while True:
        job = await anyio.to_thread.run_sync(read)
        text = message(live_summary(job, clock()))
        if text != last:
            yield text
            last, quiet = text, 0.0
        elif quiet >= keepalive:
            yield ": still here\n\n"
            quiet = 0.0
        if job.state.is_settled:
            return
        await anyio.sleep(interval)
        quiet += interval

