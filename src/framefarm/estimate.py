"""What a job will cost, and how long it will take, before anything big is spent: ``estimate``.

    import framefarm as ff
    guess = ff.estimate("job.yaml", backend=ff.Lambda(stack="Framefarm"), concurrency=50)
    print(guess.cost_usd, guess.wall_s, guess.basis)

The figures come from chunks that already ran, found in the backend's job store: a chunk of an
earlier job is the same as one of this job when it renders the same frames with the same command
line at the same size and rate (``chunk_key``), so a job file rendered before, an earlier estimate's
sample, or a ``--frames`` part all count, whatever their job ids (the ``HISTORY_JOBS`` newest jobs
are looked at). Without any, a sample really renders on the backend: the job's first two chunks,
one after the other, as a job of its own (``<id>-sample-<hex>``, left in the store where the next
estimate finds it) -- the first on a new worker instance (a cold start), the second, on Lambda, on
the same instance warm: on a loaded devcloud a worker's first call was billed 3.1-3.3 s against
1.1-1.3 s warm for the same chunk, so one cold chunk alone over-estimates a job by a third.

Cost and work time are taken per frame over the matching chunks (every attempt of each counted: a
retried chunk costs what it cost), apart for chunks that ran cold (a Lambda record with an init
duration) and warm, and scaled to the job's frames: its first ``concurrency`` chunks at the cold
rate, the rest at the warm one (either stands in for the other when it is all there is). The wall
time lays the chunks' work out on ``concurrency`` workers, in order. Throttling, instances already
warm and the stitch are not counted. A backend that reports no cost (local) gets a wall time and
no cost.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterable
from dataclasses import dataclass

from framefarm.api import JobInput, load_job, submit
from framefarm.backends import Backend, Local
from framefarm.spec import Chunk, JobSpec, command_steps, new_job_id, select_frames
from framefarm.status import ChunkRecord, ChunkState, JobRecord

HISTORY_JOBS = 20  # the newest jobs of the store looked through for chunks that ran before
SAMPLE_TIMEOUT = 900.0  # seconds a sample may take before the estimate gives up
SAMPLE_CHUNKS = 2  # rendered one after the other: a cold start, then (on Lambda) the same instance warm

ChunkKey = tuple[int, int, float, int, int, tuple[tuple[str, ...], ...]]


@dataclass(frozen=True)
class Estimate:
    """The expected cost (None: the backend reports none) and wall time of a whole job.

    ``basis`` is ``history`` (chunks that ran before) or ``sample`` (one rendered now); ``sources``
    the jobs the figures come from and ``samples`` how many chunks of theirs."""

    job_id: str
    chunks: int
    frames: int
    concurrency: int
    cost_usd: float | None
    wall_s: float
    work_s: float
    basis: str
    sources: tuple[str, ...]
    samples: int


def chunk_key(spec: JobSpec, chunk: Chunk) -> ChunkKey:
    """What makes two chunks the same work: frames, video size and rate, and the command line."""
    metadata = spec.metadata
    return (chunk.start_frame, chunk.frame_count, metadata.fps, metadata.width, metadata.height,
            tuple(tuple(argv) for argv in command_steps(chunk.command)))


def estimate(job: JobInput, *, backend: Backend | None = None, concurrency: int | None = None,
             sample: bool = False, assets: str | os.PathLike[str] | None = None,
             timeout: float = SAMPLE_TIMEOUT) -> Estimate:
    """Estimate ``job`` on ``backend`` at ``concurrency`` (the backend's default if None) from the
    store's history, else (or with ``sample=True``) from one chunk rendered now (with ``assets``, as
    the job would be). A sample that fails raises RenderFailed, as a render would."""
    backend = backend or Local()
    spec = load_job(job)
    wanted = {chunk_key(spec, chunk) for chunk in spec.chunks}
    priced = backend.reports_cost
    matched: list[tuple[str, Chunk, ChunkRecord]] = []
    if not sample:
        manager = backend.manager(runs_chunks=False)
        for listed in manager.list_jobs(limit=HISTORY_JOBS):
            if listed.completed_chunks:
                matched += _same_chunks(manager.repository.require(listed.id), wanted, priced)
    basis = "history"
    if not matched:
        basis = "sample"
        handle = submit(_sample_of(spec), backend=backend, concurrency=1, stitch=False, assets=assets)
        handle.wait(timeout)
        matched = _same_chunks(handle.status(), wanted, priced)
    return _projected(spec, matched, backend.concurrency(concurrency), priced=priced, basis=basis)


def _sample_of(spec: JobSpec) -> JobSpec:
    """The job's first two chunks (one if it has one) as a job of its own: no cap (it is the look
    before one), no output, and no webhook (the job's receiver hears of the job, not of its sample)."""
    first, *rest = sorted(spec.chunks, key=lambda chunk: chunk.start_frame)[:SAMPLE_CHUNKS]
    part = select_frames(spec, first.start_frame, (rest[-1] if rest else first).end_frame - 1)
    return part.model_copy(update={"id": new_job_id(f"{spec.id}-sample"), "budget": None, "output": None,
                                  "notify": None})


def _same_chunks(job: JobRecord, wanted: set[ChunkKey], priced: bool) -> list[tuple[str, Chunk, ChunkRecord]]:
    """The completed chunks of ``job`` that are chunks of the job being estimated (with a cost, if ``priced``)."""
    spans = {chunk.id: chunk for chunk in job.spec.chunks}
    return [(job.id, spans[record.chunk_id], record) for record in job.chunks
            if record.state is ChunkState.COMPLETED and record.chunk_id in spans
            and chunk_key(job.spec, spans[record.chunk_id]) in wanted and (record.cost_usd > 0 or not priced)]


def _projected(spec: JobSpec, matched: list[tuple[str, Chunk, ChunkRecord]], concurrency: int, *, priced: bool,
               basis: str) -> Estimate:
    cold = _per_frame([(chunk, record) for _, chunk, record in matched if record.init_duration_ms is not None])
    warm = _per_frame([(chunk, record) for _, chunk, record in matched if record.init_duration_ms is None])
    cold, warm = cold or warm, warm or cold
    assert cold is not None and warm is not None  # matched is never empty
    rates = [cold if index < concurrency else warm for index in range(len(spec.chunks))]
    chunks = sorted(spec.chunks, key=lambda c: c.id)
    cost = sum(rate[0] * chunk.frame_count for rate, chunk in zip(rates, chunks, strict=True))
    work = [rate[1] * chunk.frame_count for rate, chunk in zip(rates, chunks, strict=True)]
    return Estimate(job_id=spec.id, chunks=len(spec.chunks), frames=spec.metadata.total_frames,
                    concurrency=concurrency, cost_usd=cost if priced else None,
                    wall_s=_laid_out(work, concurrency), work_s=sum(work), basis=basis,
                    sources=tuple(dict.fromkeys(job_id for job_id, _, _ in matched)), samples=len(matched))


def _per_frame(chunks: list[tuple[Chunk, ChunkRecord]]) -> tuple[float, float] | None:
    """(USD, seconds of work) a frame over ``chunks``; None without any."""
    frames = sum(chunk.frame_count for chunk, _ in chunks)
    if not frames:
        return None
    return (sum(record.cost_usd for _, record in chunks) / frames,
            sum(record.duration_ms for _, record in chunks) / 1000.0 / frames)


def _laid_out(work: Iterable[float], workers: int) -> float:
    """When the last of ``work`` (seconds each, taken in order by the first free of ``workers``) ends."""
    lanes = [0.0] * max(1, workers)
    for seconds in work:
        heapq.heappush(lanes, heapq.heappop(lanes) + seconds)
    return max(lanes)
