"""Two jobs sharing one concurrency budget on devcloud (render-chunk's reserved concurrency = the budget).

Each job has its own runner (JobManager, as two orchestrators or two `framefarm render` processes
would), all on one DynamoDB table (moto's server) and one devcloud function whose handler notes the
start and end of every call in a ledger: chunks in flight are counted at the worker. Figures:

- throughput (chunks/s) of two jobs sharing the budget against one job of the same total size;
- throttles per 1,000 chunks with the budget and without it (each job then dispatches up to its own
  --concurrency, and devcloud answers calls beyond the reserved concurrency with 429).

    python bench/shared_concurrency.py [--chunks 60] [--concurrency 16] [--budget 20] [--handler-ms 300]

Chunks are scaled down from the issue's 2 x 300 at 200 each on a budget of 250: every devcloud function
instance is a process of its own, and 250 of them do not start on a 2-core machine shared with others.
The proportions hold (each job asks for 80 % of the budget; both together 160 %).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from framefarm import ExecutionOptions, JobExecutor, JobManager, JobState, RetryPolicy, plan_job
from framefarm.adapters.aws_lambda import LambdaWorkerAdapter, lambda_client
from framefarm.devcloud import DevFunction, LocalAwsStack
from framefarm.repositories.dynamodb import DynamoDBJobRepository
from framefarm.storage.s3 import S3Storage

FUNCTION = "ledger-chunk"
LEDGER_ENV, PAUSE_ENV = "BENCH_LEDGER", "BENCH_HANDLER_MS"
Note = tuple[str, str, float]  # ("start" | "end", job id, time.time())


def handler(event: dict, context: object) -> dict:
    """The function: note the start, hold the call for the handler time, note the end; answer as render-chunk."""
    ledger, job = os.environ[LEDGER_ENV], event["job_id"]
    with open(ledger, "a") as notes:
        notes.write(f"start {job} {time.time()!r}\n")
    time.sleep(float(os.environ[PAUSE_ENV]) / 1000.0)
    with open(ledger, "a") as notes:
        notes.write(f"end {job} {time.time()!r}\n")
    return {"exit_code": 0, "stdout": "", "stderr": "", "output_key": f"jobs/{job}/chunks/{event['chunk_id']:05d}.mp4"}


@dataclass(frozen=True)
class Run:
    """What one run did: its wall time, chunks done, throttled calls, final states and the worker's ledger."""

    wall_s: float
    chunks: int
    throttles: int
    states: dict[str, JobState]
    ledger: list[Note]


def ledger_function(ledger: Path, *, reserved: int, handler_ms: float) -> DevFunction:
    return DevFunction(FUNCTION, "bench.shared_concurrency.handler", memory_mb=512, timeout=60,
                       reserved_concurrency=reserved,
                       environment={LEDGER_ENV: str(ledger), PAUSE_ENV: str(handler_ms)})


def run_jobs(stack: LocalAwsStack, ledger: Path, jobs: dict[str, int], *, concurrency: int,
             budget: int | None, timeout: float = 600.0) -> Run:
    """Run ``jobs`` (id -> chunks) at once, each on its own manager, with ``budget`` shared (None: none)."""
    ledger.write_text("")
    storage = S3Storage(stack.bucket)
    managers: dict[str, JobManager] = {}
    for job_id, chunks in jobs.items():
        adapter = LambdaWorkerAdapter(FUNCTION, storage, client=lambda_client(concurrency=concurrency,
                                                                               function_timeout=60),
                                      concurrency=concurrency, function_timeout=60)
        repository = DynamoDBJobRepository(stack.table, storage=storage)
        managers[job_id] = JobManager(repository, JobExecutor(adapter), storage, max_concurrency=budget)
        managers[job_id].create_job(plan_job({"id": job_id, "width": 64, "height": 48, "fps": 10,
                                              "total_frames": chunks, "frames_per_chunk": 1,
                                              "command": "render {output}"}))
    started = time.perf_counter()
    for job_id, manager in managers.items():
        manager.start_job(job_id, ExecutionOptions(concurrency=concurrency, merge=False,
                                                   retry=RetryPolicy(retries=0, transient_retries=5, delay=0.1)))
    finals = {job_id: manager.wait(job_id, timeout) for job_id, manager in managers.items()}
    wall = time.perf_counter() - started
    throttles = sum(record.throttles for job_id, manager in managers.items()
                    for record in manager.repository.require(job_id).chunks)
    return Run(wall, sum(job.completed_chunks for job in finals.values()), throttles,
               {job_id: job.state for job_id, job in finals.items()}, read_ledger(ledger))


def read_ledger(path: Path) -> list[Note]:
    """The ledger's notes by time (at a tie, an end before a start); a line is "start|end JOB [...] TIME"."""
    notes = [(words[0], words[1], float(words[-1])) for words in map(str.split, path.read_text().splitlines())]
    return sorted(notes, key=lambda note: (note[2], note[0] == "start"))


def most_at_once(ledger: list[Note]) -> int:
    """The most calls in flight at one instant."""
    running = most = 0
    for what, _, _ in ledger:
        running += 1 if what == "start" else -1
        most = max(most, running)
    return most


def side_by_side(ledger: list[Note]) -> dict[str, float]:
    """Each job's mean calls in flight while every job had calls in flight (time-weighted)."""
    jobs = {job for _, job, _ in ledger}
    begin = max(min(at for _, job, at in ledger if job == name) for name in jobs)
    end = min(max(at for _, job, at in ledger if job == name) for name in jobs)
    running = dict.fromkeys(jobs, 0)
    area = dict.fromkeys(jobs, 0.0)
    last = begin
    for what, job, at in ledger:
        if begin <= at <= end:
            for name in jobs:
                area[name] += running[name] * (at - last)
            last = at
        running[job] += 1 if what == "start" else -1
    span = max(end - begin, 1e-9)
    return {name: area[name] / span for name in jobs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=60, help="chunks per job (the single job gets twice)")
    parser.add_argument("--concurrency", type=int, default=16, help="each job's own --concurrency")
    parser.add_argument("--budget", type=int, default=20, help="the shared budget = reserved concurrency")
    parser.add_argument("--handler-ms", type=float, default=300.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        ledger = Path(scratch) / "ledger"
        function = ledger_function(ledger, reserved=args.budget, handler_ms=args.handler_ms)
        with LocalAwsStack(functions=[function]) as stack:
            run_jobs(stack, ledger, {"warm-up": args.budget}, concurrency=args.budget, budget=args.budget)
            shared = run_jobs(stack, ledger, {"a": args.chunks, "b": args.chunks}, concurrency=args.concurrency,
                              budget=args.budget)
            single = run_jobs(stack, ledger, {"one": 2 * args.chunks}, concurrency=args.concurrency,
                              budget=args.budget)
            unbudgeted = run_jobs(stack, ledger, {"c": args.chunks, "d": args.chunks},
                                  concurrency=args.concurrency, budget=None)
    ideal = 2 * args.chunks * args.handler_ms / 1000 / args.budget
    print(f"2 jobs x {args.chunks} chunks, each --concurrency {args.concurrency}; budget = reserved concurrency "
          f"{args.budget}; {args.handler_ms:.0f} ms handler (ideal {ideal:.1f} s for {2 * args.chunks} chunks)")
    for label, run in (("two jobs sharing the budget", shared), ("one job of the same size", single),
                       ("two jobs, no budget", unbudgeted)):
        print(f"  {label}: {run.wall_s:.1f} s, {run.chunks / run.wall_s:.1f} chunks/s, "
              f"most in flight {most_at_once(run.ledger)}, throttles {run.throttles} "
              f"({1000 * run.throttles / max(run.chunks, 1):.0f} per 1,000 chunks), "
              f"states {sorted(state.value for state in run.states.values())}")
    print("  in flight per job while both ran (shared): "
          + ", ".join(f"{job} {mean:.1f}" for job, mean in sorted(side_by_side(shared.ledger).items())))


if __name__ == "__main__":
    main()
