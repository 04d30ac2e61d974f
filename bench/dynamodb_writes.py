"""DynamoDB write requests and item bytes per completed chunk, for 100 / 1,000 / 10,000 chunks.

Each chunk goes through the real path: the manager's StoreWriter receives a "started" and a
"completed" event per chunk and DynamoDBJobRepository writes them. Requests are counted with
botocore's ``before-call`` event hooks. Target (issue 3): <= 2 write requests per chunk, flat sizes.

moto copies the whole table on every transaction (O(n) each), so 10,000 chunks on moto would take
hours: that size runs on a recording client that accepts every write without storing it. The count
of requests is a property of our code, not of the backend; item sizes there are what was sent.

    python bench/dynamodb_writes.py [--sizes 100 1000 10000]
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from typing import Any

import boto3

from framefarm import plan_job
from framefarm.repositories.dynamodb import DynamoDBJobRepository, chunk_sk, create_table, job_pk
from framefarm.status import TAIL_CHARS, ChunkAttempt, ChunkStarted, ChunkState, JobStatus
from framefarm.store_writer import StoreWriter

WRITES = {"PutItem", "UpdateItem", "TransactWriteItems", "BatchWriteItem", "DeleteItem"}
MOTO_LIMIT = 1_000


def spec_of(chunks: int):
    command = "{ffmpeg} -i in.mov -vf trim={start_frame}:{end_frame} {output}"
    return plan_job({"id": f"bench-{chunks}", "width": 1280, "height": 720, "fps": 30, "total_frames": chunks,
                     "frames_per_chunk": 1, "command": command})


class RecordingClient:
    """Accepts DynamoDB writes without storing them (for sizes moto cannot hold), counting every call
    it receives; remembers the job item and the last chunk update for their sizes."""

    def __init__(self, real: Any, counts: Counter[str]) -> None:
        self.meta, self.exceptions = real.meta, real.exceptions
        self.counts = counts
        self.job_item: dict[str, Any] = {}
        self.last_chunk_values: dict[str, Any] = {}

    def get_item(self, **kwargs: Any) -> dict[str, Any]:
        self.counts["GetItem"] += 1
        return {"Item": self.job_item} if self.job_item and kwargs["Key"]["SK"]["S"] == "META" else {}

    def put_item(self, **kwargs: Any) -> dict[str, Any]:
        self.counts["PutItem"] += 1
        self.job_item = kwargs["Item"]
        return {}

    def update_item(self, **kwargs: Any) -> dict[str, Any]:
        self.counts["UpdateItem"] += 1
        return {}

    def transact_write_items(self, **kwargs: Any) -> dict[str, Any]:
        self.counts["TransactWriteItems"] += 1
        self.last_chunk_values = kwargs["TransactItems"][0]["Update"]["ExpressionAttributeValues"]
        return {}


def measure(chunks: int) -> dict[str, Any]:
    real = boto3.client("dynamodb", region_name="us-east-1")
    table = f"bench-{chunks}"
    counts: Counter[str] = Counter()
    if chunks <= MOTO_LIMIT:
        create_table(real, table)
        client: Any = real
        real.meta.events.register("before-call.dynamodb.*", lambda model, **_: counts.update([model.name]))
    else:
        client = RecordingClient(real, counts)
    from framefarm.storage.s3 import S3Storage

    bucket = f"bench-specs-{chunks}"
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=bucket)
    repo = DynamoDBJobRepository(table, client=client, storage=S3Storage(bucket))
    spec = spec_of(chunks)
    repo.save(JobStatus.new(spec, now=time.time()))
    writes_before = sum(counts[name] for name in WRITES)
    writer = StoreWriter(repo, spec.id)
    tail = "x" * TAIL_CHARS
    started = time.perf_counter()
    for chunk in spec.chunks:
        writer.put(ChunkStarted(chunk.id, 1, time.time()))
        if chunk.id % 50 == 0:
            writer.flush()  # some starts reach the store before their result, as with slow chunks
        writer.put(ChunkAttempt(chunk_id=chunk.id, attempt=1, state=ChunkState.COMPLETED, duration_ms=1234.5,
                                billed_duration_ms=1235, memory_mb=2048, max_memory_used_mb=300,
                                cost_usd=0.0000413, stdout_tail=tail, stderr_tail=tail, finished_at=time.time()))
    writer.close()
    elapsed = time.perf_counter() - started
    if isinstance(client, RecordingClient):
        chunk_bytes = _size(client.last_chunk_values)
        job_bytes = _size(client.job_item)
    else:
        chunk_bytes = _size(real.get_item(TableName=table, Key={"PK": {"S": job_pk(spec.id)},
                                                                "SK": {"S": chunk_sk(chunks - 1)}})["Item"])
        job_bytes = _size(real.get_item(TableName=table, Key={"PK": {"S": job_pk(spec.id)},
                                                              "SK": {"S": "META"}})["Item"])
        assert repo.require(spec.id).completed_chunks == chunks
    writes = sum(counts[name] for name in WRITES) - writes_before
    return {"chunks": chunks, "backend": "moto" if chunks <= MOTO_LIMIT else "recording client",
            "writes_per_chunk": writes / chunks, "job_item_bytes": job_bytes, "chunk_item_bytes": chunk_bytes,
            "seconds": elapsed, "by_operation": dict(counts)}


def _size(item: dict[str, Any]) -> int:
    """DynamoDB's item size, near enough: attribute names plus each value's bytes."""
    total = 0
    for name, typed in item.items():
        kind, value = next(iter(typed.items()))
        total += len(name.encode()) + (len(value) if kind == "B" else len(str(value).encode()) if kind != "NULL" else 1)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1_000, 10_000])
    args = parser.parse_args()
    for name, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(name, value)
    from moto import mock_aws

    print("chunks  backend            writes/chunk  job item  chunk item  seconds")
    with mock_aws():
        for size in args.sizes:
            row = measure(size)
            print(f"{row['chunks']:>6}  {row['backend']:<17}  {row['writes_per_chunk']:>12.2f}  "
                  f"{row['job_item_bytes']:>8,}  {row['chunk_item_bytes']:>10,}  {row['seconds']:>7.1f}")


if __name__ == "__main__":
    main()
