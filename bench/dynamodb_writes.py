"""DynamoDB write units per recorded attempt, and item sizes, for jobs of 100 / 1,000 / 10,000 chunks.

Each attempt goes the real path: a StoreWriter gets a "started" and a result event per chunk (with
the manager's 8 KB tails of long logs, a request id and an S3 output URL) and DynamoDBJobRepository
writes them to moto. Around every recording transaction the bench reads both items before and after.

Write units are computed from item sizes by DynamoDB's rules (``item_size``: attribute names plus
values): a transaction costs 2 per started KB of each item it writes, counted on the larger of the
item before and after; the listing index costs 1 per started KB of the job's index entry (keys and
projected attributes) when a projected attribute changes; the last column says what one heartbeat
(every 2 s of every running job) writes to the index. Every request also asks for
ReturnConsumedCapacity=INDEXES; moto answers TransactWriteItems with an empty list, so that column
reads "-" there (on real DynamoDB it is AWS's own count).

moto copies its whole table on every transaction, so each job records at most 200 attempts, on the
chunks with the highest ids (the longest numbers): neither item grows with the number of chunks,
which the 10,000 row shows without a 10,000-item moto table.

    python bench/dynamodb_writes.py [--sizes 100 1000 10000] [--attempts 200]
"""

from __future__ import annotations

import argparse
import math
import os
import time
import uuid
from collections import Counter
from typing import Any

import boto3

from framefarm import plan_job
from framefarm.lease import Lease, new_run_id
from framefarm.repositories.dynamodb import (
    GSI_NAME,
    GSI_PK,
    GSI_SK,
    PK,
    SK,
    DynamoDBJobRepository,
    chunk_sk,
    create_table,
    item_size,
    job_pk,
)
from framefarm.status import ChunkAttempt, ChunkStarted, ChunkState, JobRecord, JobState, tail
from framefarm.storage.s3 import S3Storage
from framefarm.store_writer import StoreWriter

WRITES = {"PutItem", "UpdateItem", "TransactWriteItems", "BatchWriteItem", "DeleteItem"}
KB = 1024
LOG = "".join(f"frame={i:5d} fps= 24 q=28.0 size=  {i * 7:6d}kB time=00:00:{i % 60:02d}.00 bitrate=1234.5kbits/s\n"
              for i in range(400))  # ~32 KB of ffmpeg-like progress lines


def spec_of(chunks: int):
    command = "{ffmpeg} -i in.mov -vf trim={start_frame}:{end_frame} {output}"
    return plan_job({"id": f"bench-{chunks}", "width": 1280, "height": 720, "fps": 30, "total_frames": chunks,
                     "frames_per_chunk": 1, "command": command})


class UnitMeter:
    """Hooks on a DynamoDB client: counts requests, asks every write for ReturnConsumedCapacity, and
    reads a recording transaction's two items before and after it to count its write units."""

    def __init__(self, client: Any, table: str) -> None:
        self.client, self.table = client, table
        self.requests: Counter[str] = Counter()
        self.units: list[int] = []  # per transaction: job item + chunk item
        self.index_units: list[int] = []
        self.consumed: list[float] = []  # what the endpoint reported, per transaction
        self.sizes: dict[str, int] = {"job": 0, "chunk": 0, "index": 0}
        self._request: dict[str, Any] = {}
        self._before: list[int] = []
        self._projection = self._index_projection()
        events = client.meta.events
        events.register("before-call.dynamodb.*", self._count)
        events.register("provide-client-params.dynamodb.*", self._ask_capacity)
        events.register("before-parameter-build.dynamodb.TransactWriteItems", self._remember_before)
        events.register("after-call.dynamodb.TransactWriteItems", self._account)

    def _count(self, model: Any, **_: Any) -> None:
        self.requests[model.name] += 1

    def _ask_capacity(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name in WRITES:
            params.setdefault("ReturnConsumedCapacity", "INDEXES")

    def _keys(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return [entry["Update"]["Key"] for entry in params["TransactItems"]]

    def _item(self, key: dict[str, Any]) -> dict[str, Any]:
        return self.client.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item", {})

    def _remember_before(self, params: dict[str, Any], **_: Any) -> None:
        self._request = params
        self._before = [item_size(self._item(key)) for key in self._keys(params)]

    def _account(self, http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if http_response.status_code != 200:
            return
        units, index = 0, 0
        for key, before in zip(self._keys(self._request), self._before, strict=True):
            after = self._item(key)
            size = max(before, item_size(after))
            units += 2 * math.ceil(size / KB)
            kind = "job" if key[SK]["S"] == "META" else "chunk"
            self.sizes[kind] = max(self.sizes[kind], size)
            if kind == "job":
                entry = item_size(self.index_entry(after))
                self.sizes["index"] = max(self.sizes["index"], entry)
                index = math.ceil(entry / KB)
        self.units.append(units)
        self.index_units.append(index)
        self.consumed.append(sum(c.get("CapacityUnits", 0.0) for c in parsed.get("ConsumedCapacity") or []))

    def _index_projection(self) -> set[str] | None:
        """The attributes the listing index keeps (None: all of them)."""
        table = self.client.describe_table(TableName=self.table)["Table"]
        index = next(i for i in table["GlobalSecondaryIndexes"] if i["IndexName"] == GSI_NAME)
        projection = index["Projection"]
        if projection["ProjectionType"] == "ALL":
            return None
        return {PK, SK, GSI_PK, GSI_SK, *projection.get("NonKeyAttributes", [])}

    def index_entry(self, item: dict[str, Any]) -> dict[str, Any]:
        """What the listing index keeps of a job item."""
        return item if self._projection is None else {k: v for k, v in item.items() if k in self._projection}


def measure(chunks: int, attempts: int) -> dict[str, Any]:
    client = boto3.client("dynamodb", region_name="us-east-1")
    table = f"bench-{chunks}"
    create_table(client, table)
    bucket = f"bench-specs-{chunks}"
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=bucket)
    meter = UnitMeter(client, table)
    repo = DynamoDBJobRepository(table, client=client, storage=S3Storage(bucket))
    spec = spec_of(chunks)
    repo.save(JobRecord.new(spec, now=time.time()))
    lease = Lease(new_run_id(), time.time() + 15)  # a running job's item carries its runner's lease
    assert repo.take_lease(spec.id, lease, now=time.time(), expected={JobState.PENDING})
    meter.requests.clear()
    writer = StoreWriter(repo, spec.id)
    recorded = spec.chunks[-attempts:]
    for chunk in recorded:
        writer.put(ChunkStarted(chunk.id, 1, time.time()))
        if chunk.id % 50 == 0:
            writer.flush()  # some starts reach the store before their result, as with slow chunks
        writer.put(ChunkAttempt(
            chunk_id=chunk.id, attempt=1, state=ChunkState.COMPLETED, duration_ms=61234.5, billed_duration_ms=61235,
            memory_mb=2048, max_memory_used_mb=812, init_duration_ms=412.37, request_id=str(uuid.uuid4()),
            cost_usd=0.0020412, stdout_tail=tail(LOG), stderr_tail=tail(LOG), started_at=time.time() - 61.2,
            finished_at=time.time(), output=f"s3://{bucket}/jobs/{spec.id}/chunks/{chunk.id:05d}.mp4"))
    writer.close()
    assert writer.error is None, writer.error
    assert repo.get(spec.id, chunks=False).completed_chunks == len(recorded)
    assert client.get_item(TableName=table, Key={PK: {"S": job_pk(spec.id)}, SK: {"S": chunk_sk(recorded[-1].id)}})
    key = {PK: {"S": job_pk(spec.id)}, SK: {"S": "META"}}
    before = meter.index_entry(client.get_item(TableName=table, Key=key)["Item"])
    # every 2 s of a running job: does renewing its lease write to the index?
    assert repo.renew_lease(spec.id, Lease(lease.owner, time.time() + 15), now=time.time()) is not None
    after = meter.index_entry(client.get_item(TableName=table, Key=key)["Item"])
    heartbeat_units = 0 if before == after else math.ceil(item_size(after) / KB)
    n = len(meter.units)
    return {"chunks": chunks, "recorded": n, "job": meter.sizes["job"], "chunk": meter.sizes["chunk"],
            "index": meter.sizes["index"], "units": sum(meter.units) / n, "index_units": sum(meter.index_units) / n,
            "consumed": sum(meter.consumed) / n if any(meter.consumed) else None,
            "requests": sum(meter.requests[name] for name in WRITES) / n,
            "heartbeat_index_units": heartbeat_units}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1_000, 10_000])
    parser.add_argument("--attempts", type=int, default=200, help="attempts recorded per job (moto: hundreds)")
    args = parser.parse_args()
    for name, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(name, value)
    from moto import mock_aws

    from framefarm.devcloud import fix_moto_number_arithmetic

    fix_moto_number_arithmetic()
    print("write units per recorded attempt (transaction: 2 per started KB of each item; index: 1 per KB)")
    print(" chunks  recorded  job item  chunk item  index entry  job+chunk  +index  consumed (endpoint)  writes"
          "  heartbeat→index")
    with mock_aws():
        for size in args.sizes:
            row = measure(size, min(size, args.attempts))
            consumed = "-" if row["consumed"] is None else f"{row['consumed']:.1f}"
            print(f"{row['chunks']:>7,}  {row['recorded']:>8}  {row['job']:>6} B  {row['chunk']:>8,} B  "
                  f"{row['index']:>9} B  {row['units']:>9.1f}  {row['index_units']:>6.1f}  {consumed:>19}  "
                  f"{row['requests']:>6.2f}  {row['heartbeat_index_units']:>15}")


if __name__ == "__main__":
    main()
