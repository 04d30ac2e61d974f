"""What arming the parent-death signal costs per chunk started by LocalWorkerAdapter.

The signal is armed by a function the child runs before exec (``preexec_fn``), which makes
subprocess fork the whole runner instead of taking its vfork/posix_spawn path; a fork copies the
runner's page tables, so the cost grows with its memory. Each run starts ``true`` through the
adapter, with and without the signal, in a runner holding ``--ballast-mb`` of touched memory.
Prints the median and 90th percentile per start.

    python bench/local_spawn.py [--runs 200] [--ballast-mb 0 512]
"""

from __future__ import annotations

import argparse
import statistics
import time
from unittest import mock

from framefarm import LocalWorkerAdapter, WorkerJob
from framefarm.adapters import local


def starts(runs: int) -> list[float]:
    adapter, job = LocalWorkerAdapter(), WorkerJob(command=["true"])
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        adapter.execute(job)
        times.append((time.perf_counter() - started) * 1000.0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--ballast-mb", type=int, nargs="+", default=[0, 512])
    args = parser.parse_args()
    for megabytes in args.ballast_mb:
        ballast = bytearray(megabytes * 1024 * 1024)
        ballast[::4096] = b"x" * len(ballast[::4096])  # touch every page so the fork has them to copy
        for label, armed in (("without the signal", False), ("with the signal", True)):
            with mock.patch.object(local, "_die_with", local._die_with if armed else (lambda parent: None)):
                times = sorted(starts(args.runs))
            print(f"ballast {megabytes:>5} MB, {label:<18}: median {statistics.median(times):6.2f} ms, "
                  f"p90 {times[int(len(times) * 0.9)]:6.2f} ms per start")
        del ballast


if __name__ == "__main__":
    main()
