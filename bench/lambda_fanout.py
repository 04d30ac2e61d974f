"""Fan-out: chunks on devcloud with a 200 ms handler, each function instance a process under awslambdaric.

The real path over HTTP: JobManager (in-memory store) -> JobExecutor -> LambdaWorkerAdapter (boto3)
-> devcloud -> an instance's Runtime API -> the handler. The ideal is one handler duration per wave
(ceil(chunks / concurrency) waves); the rest is orchestration, HTTP and, in the first run, starting the
instances (cold starts: process start + init) on this 2-core machine. Later runs reuse warm instances.

    python bench/lambda_fanout.py [--chunks 200] [--concurrency 50] [--handler-ms 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import base64
import math
import os
import statistics
import tempfile
import time

from framefarm import (
    ExecutionOptions,
    InMemoryJobRepository,
    JobExecutor,
    JobManager,
    JobState,
    LocalStorage,
    RunHooks,
    WorkerResult,
    plan_job,
)
from framefarm.adapters.aws_lambda import LambdaWorkerAdapter, lambda_client
from framefarm.billing import parse_report
from framefarm.devcloud import DevCloud, DevFunction

PAUSE_ENV = "BENCH_HANDLER_MS"


def handler(event: dict, context: object) -> dict:
    """The benchmark's function: sleep for the handler time, answer as render-chunk does."""
    time.sleep(float(os.environ[PAUSE_ENV]) / 1000.0)
    return {"exit_code": 0, "stdout": "", "stderr": "", "output_key": f"jobs/{event['job_id']}/chunks/x.mp4"}


class InitDurations(RunHooks):
    """Collects the Init Duration of every completed chunk that had a cold start."""

    def __init__(self, inits: list[float]) -> None:
        self.inits = inits

    def chunk_completed(self, chunk_id: int, result: WorkerResult) -> None:
        if result.init_duration_ms:
            self.inits.append(result.init_duration_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--handler-ms", type=float, default=200.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for name, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(name, value)
    pause = args.handler_ms / 1000.0
    ideal = math.ceil(args.chunks / args.concurrency) * pause
    function = DevFunction("render", "bench.lambda_fanout.handler", memory_mb=2048, timeout=60,
                           environment={PAUSE_ENV: str(args.handler_ms)})
    with DevCloud([function]) as cloud, \
            tempfile.TemporaryDirectory() as scratch:
        os.environ["AWS_ENDPOINT_URL_LAMBDA"] = cloud.endpoint
        storage = LocalStorage(scratch)
        client = lambda_client(concurrency=args.concurrency, function_timeout=60)
        adapter = LambdaWorkerAdapter("render", storage, client=client)
        cold = lambda_client().invoke(FunctionName="render", Payload=b'{"job_id": "cold"}', LogType="Tail")
        alone = parse_report(base64.b64decode(cold["LogResult"]).decode())
        cloud.instances("render")[0].close()  # the runs below start their instances themselves
        times: list[float] = []
        inits: list[float] = []
        for run in range(args.repeat):
            spec = plan_job({"id": f"fanout-{run}", "width": 64, "height": 48, "fps": 30,
                             "total_frames": args.chunks, "frames_per_chunk": 1, "command": "render {output}"})
            manager = JobManager(InMemoryJobRepository(), JobExecutor(adapter), storage)
            manager.create_job(spec)
            started = time.perf_counter()
            summary = manager.run_job(spec.id, ExecutionOptions(
                concurrency=args.concurrency, merge=False, hooks=InitDurations(inits)))
            times.append(time.perf_counter() - started)
            assert summary.state is JobState.RENDERED and summary.completed_chunks == args.chunks, summary.error
            billed = summary.metrics.total_billed_duration_ms
        served, instances = len(cloud.invocations), len(cloud.instances("render"))
    warm = statistics.median(times[1:]) if len(times) > 1 else times[0]
    print(f"{args.chunks} chunks, {args.handler_ms:.0f} ms handler, concurrency {args.concurrency}, "
          f"{args.repeat} runs: {', '.join(f'{t:.2f}' for t in times)} s; ideal {ideal:.2f} s")
    for label, wall in (("first run (cold starts)", times[0]), ("warm runs, median", warm)):
        print(f"  {label}: wall {wall:.2f} s; overhead {wall - ideal:.2f} s "
              f"({(wall - ideal) / args.chunks * 1000:.2f} ms per chunk)")
    if alone is not None and alone.init_duration_ms is not None:
        print(f"  one cold start alone: Init Duration {alone.init_duration_ms:.0f} ms")
    if inits:
        print(f"  cold starts in the first run: {len(inits)}; Init Duration median {statistics.median(inits):.0f} ms, "
              f"max {max(inits):.0f} ms")
    print(f"  billed in the last run: {billed / 1000:.1f} s over {args.chunks} chunks; {served} invocations "
          f"served by {instances} instances")


if __name__ == "__main__":
    main()
