"""Fan-out: 1,000 chunks on devcloud with a 200 ms handler at concurrency 1,000.

The real path over HTTP: JobManager (in-memory store) -> JobExecutor -> LambdaWorkerAdapter (boto3)
-> devcloud -> the handler. The ideal is one handler duration (every chunk at once); the rest is
orchestration, HTTP and thread start-up on this 2-core machine. Target (issue 3): under 3 s.

    python bench/lambda_fanout.py [--chunks 1000] [--concurrency 1000] [--handler-ms 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from framefarm import ExecutionOptions, InMemoryJobRepository, JobExecutor, JobManager, JobState, LocalStorage, plan_job
from framefarm.adapters.aws_lambda import LambdaWorkerAdapter, lambda_client
from framefarm.devcloud import DevCloud, DevFunction


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=1_000)
    parser.add_argument("--concurrency", type=int, default=1_000)
    parser.add_argument("--handler-ms", type=float, default=200.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for name, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(name, value)
    pause = args.handler_ms / 1000.0

    def handler(event, context):
        time.sleep(pause)
        return {"exit_code": 0, "stdout": "", "stderr": "", "output_key": f"jobs/{event['job_id']}/chunks/x.mp4"}

    with DevCloud([DevFunction("render", handler, memory_mb=2048, timeout=60)]) as cloud, \
            tempfile.TemporaryDirectory() as scratch:
        os.environ["AWS_ENDPOINT_URL_LAMBDA"] = cloud.endpoint
        storage = LocalStorage(scratch)
        client = lambda_client(concurrency=args.concurrency, function_timeout=60)
        adapter = LambdaWorkerAdapter("render", storage, client=client)
        times = []
        for run in range(args.repeat):
            spec = plan_job({"id": f"fanout-{run}", "width": 64, "height": 48, "fps": 30,
                             "total_frames": args.chunks, "frames_per_chunk": 1, "command": "render {output}"})
            manager = JobManager(InMemoryJobRepository(), JobExecutor(adapter), storage)
            manager.create_job(spec)
            started = time.perf_counter()
            summary = manager.run_job(spec.id, ExecutionOptions(concurrency=args.concurrency, skip_merge=True))
            times.append(time.perf_counter() - started)
            assert summary.state is JobState.STITCHING and summary.completed_chunks == args.chunks, summary.error
            billed = summary.metrics.total_billed_duration_ms
        peak = max(len(cloud.invocations), 1)
    wall = statistics.median(times)
    print(f"{args.chunks} chunks, {args.handler_ms:.0f} ms handler, concurrency {args.concurrency}, "
          f"median of {args.repeat} (runs: {', '.join(f'{t:.2f}' for t in times)} s)")
    print(f"  wall {wall:.2f} s; ideal {pause:.2f} s; overhead {wall - pause:.2f} s "
          f"({(wall - pause) / args.chunks * 1000:.2f} ms per chunk)")
    print(f"  billed in the last run: {billed / 1000:.1f} s over {args.chunks} chunks; {peak} invocations served")


if __name__ == "__main__":
    main()
