"""Orchestration overhead: 10,000 chunks whose worker returns at once, through JobManager + SQLite.

The floor is a bare ThreadPoolExecutor calling the same in-process worker for the same chunks.
Prints chunks/s for both and their ratio. Targets (issue 2): under 5 s in all, within 3x the floor.

    python bench/orchestration.py [--chunks 10000] [--concurrency 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from framefarm import (
    CallableWorkerAdapter,
    ExecutionOptions,
    JobExecutor,
    JobManager,
    JobState,
    SqliteJobRepository,
    WorkerJob,
    WorkerResult,
    plan_job,
)
from framefarm.storage.local import LocalStorage

RESULT = WorkerResult(exit_code=0, stdout="ok\n", duration_ms=1.0)


def worker(job: WorkerJob) -> WorkerResult:
    return RESULT


def spec_of(chunks: int):
    return plan_job({"width": 64, "height": 48, "fps": 30, "total_frames": chunks, "frames_per_chunk": 1,
                     "command": "render {start_frame} {output}"})


def through_manager(chunks: int, concurrency: int) -> tuple[float, float]:
    """Seconds for the whole job (create + run) and for the run alone."""
    spec = spec_of(chunks)
    with tempfile.TemporaryDirectory() as scratch:
        repository = SqliteJobRepository(Path(scratch) / "jobs.db")
        manager = JobManager(repository, JobExecutor(CallableWorkerAdapter(worker)), LocalStorage(scratch))
        started = time.perf_counter()
        manager.create_job(spec)
        run_started = time.perf_counter()
        status = manager.run_job(spec.id, ExecutionOptions(concurrency=concurrency))
        finished = time.perf_counter()
        assert status.state is JobState.COMPLETED and status.completed_chunks == chunks, status.error
        repository.close()
    return finished - started, finished - run_started


def bare_pool(chunks: int, concurrency: int) -> float:
    spec = spec_of(chunks)
    adapter = CallableWorkerAdapter(worker)
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(lambda chunk: adapter.execute(WorkerJob(command=chunk.command,
                                                                        meta={"chunk_id": chunk.id})),
                                spec.chunks))
    elapsed = time.perf_counter() - started
    assert len(results) == chunks
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    managed = [through_manager(args.chunks, args.concurrency) for _ in range(args.repeat)]
    floor = [bare_pool(args.chunks, args.concurrency) for _ in range(args.repeat)]
    total = statistics.median(m[0] for m in managed)
    run = statistics.median(m[1] for m in managed)
    bare = statistics.median(floor)
    print(f"{args.chunks} chunks, concurrency {args.concurrency}, median of {args.repeat}")
    print(f"  JobManager + SQLite: {total:.2f} s in all ({args.chunks / total:,.0f} chunks/s); "
          f"run alone {run:.2f} s")
    print(f"  bare ThreadPoolExecutor: {bare:.2f} s ({args.chunks / bare:,.0f} chunks/s)")
    print(f"  ratio (manager / bare pool): {total / bare:.2f}x")


if __name__ == "__main__":
    main()
