"""DynamoDBJobRepository: every job and its chunks in one table (docs/architecture.md, the store model).

    PK=JOB#<id>  SK=META          the job: state, counters, a pointer to its spec in storage
                                  (or, with no storage, the spec itself, zlib-compressed)
    PK=JOB#<id>  SK=CHUNK#00042   one chunk: state, attempts, amounts, short log tails (under 2 KB)
    GSI by-created: GSI1PK="JOBS", GSI1SK=created_at   lists jobs newest first (LISTED attributes only)
    expires_at                    TTL attribute (epoch seconds) on every item

A chunk that has never been touched has no item: it is pending. So creating a 10,000-chunk job is
one PutItem, and every item stays O(1) in size whatever the number of chunks.

Recording an attempt is one TransactWriteItems: the chunk item is updated only if it has not
completed and has not seen this attempt number, and in the same transaction the job item's counters
move by ADD. A cancelled transaction is judged by each item's reason, by position: a failed condition
on the chunk item means "already recorded", on the job item that the job is gone; conflicts (two
transactions on one job item at once) and throttles are retried with backoff, a bounded number of
times; anything else (a ValidationError) is raised at once. Every item stays the same size whatever
the number of chunks: the spec (O(chunks)) lives in storage, not in the job item.

The listing index keeps only what a listing shows (LISTED), so a heartbeat (every 2 s of every
running job) or a lease renewal never writes to it: it changes when a job is created, records an
attempt or changes state. Its one partition ("JOBS") then takes at most one write per recorded
attempt, ~400 B (1 unit); DynamoDB serves up to 1,000 write units a second on one partition, i.e.
1,000 chunks finishing every second across all jobs, twice the 1,000-chunk Lambda fan-out of
bench/lambda_fanout.py. Sharding it (N partitions, a listing then a merge of N newest-first queries
with N cursors) is not worth that complexity below such a rate.

Write units: a transaction costs 2 per started KB of each item it writes, so a recorded attempt
costs 2 (job item, under 1 KB) + 4 (chunk item, under 2 KB: the last ITEM_TAIL_CHARS characters of
each log, the first ITEM_ERROR_CHARS of the error) + 1 for the listing index. The manager keeps
every log longer than ``tail_chars`` whole in storage (``framefarm logs`` reads it there).
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import time
import zlib
from collections.abc import Callable, Collection, Iterator, Sequence
from decimal import Decimal
from typing import Any

from framefarm.backoff import Backoff, no_jitter
from framefarm.errors import FramefarmError, JobNotFoundError
from framefarm.lease import Beat, Lease
from framefarm.repositories.base import JobRepository, SpecCache, put_spec
from framefarm.spec import JobSpec
from framefarm.status import (
    TAIL_MARK,
    ChunkAttempt,
    ChunkEvent,
    ChunkRecord,
    ChunkStarted,
    ChunkState,
    JobMetrics,
    JobState,
    JobStatus,
    tail,
)
from framefarm.storage.base import Storage
from framefarm.storage.keys import spec_key

PK, SK, GSI_NAME, GSI_PK, GSI_SK, TTL_ATTRIBUTE = "PK", "SK", "by-created", "GSI1PK", "GSI1SK", "expires_at"
META = "META"
# What a listing shows, and what a job's summary needs (its spec is read from spec_url when asked for).
LISTED = ("job_id", "state", "total_chunks", "completed_chunks", "failed_attempts", "total_duration_ms",
          "total_billed_duration_ms", "cost_usd", "error", "output", "requested", "created_at", "updated_at",
          "spec_url", "spec_sha256")
CHUNK_PREFIX = "CHUNK#"
JOBS_PARTITION = "JOBS"
# ~6 lines of ffmpeg's output: enough to see in `framefarm status` why a chunk failed; with these,
# a chunk item (keys, numbers, request id, output URL ~100 B) stays under 2 KB for ASCII logs.
ITEM_TAIL_CHARS = 500
ITEM_ERROR_CHARS = 300
INLINE_SPEC_LIMIT = 300_000  # bytes of compressed spec kept in the job item (the item limit is 400 KB)
RECORD_FIELDS = tuple(name for name in ChunkRecord.model_fields if name != "chunk_id")
ADDED_FIELDS = ("duration_ms", "billed_duration_ms", "cost_usd", "throttles")
CONFLICT_BACKOFF = Backoff(0.02, 1.0)  # between transactions that conflicted on the job item
UNPROCESSED_BACKOFF = Backoff(0.05, 2.0, no_jitter)  # before re-sending a batch's unprocessed items
LEASE_FREE = "(attribute_not_exists(#lease_until) OR #lease_until <= :free_at)"
MAX_TRANSACTION_ITEMS = 100  # TransactWriteItems' limit
UNPROCESSED_TRIES = 8  # BatchWriteItem calls per batch of 25 before giving up on its unprocessed items (~5 s)
RETRIED = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})
FINE, ALREADY_DONE = frozenset({"None", None}), "ConditionalCheckFailed"  # cancellation reason codes
RECORDING_ITEMS = ("chunk item", "job item")  # a recording transaction's items, in order
COUNTERS = ("completed_chunks", "failed_attempts", "total_duration_ms", "total_billed_duration_ms", "cost_usd")


def job_pk(job_id: str) -> str:
    return f"JOB#{job_id}"


def chunk_sk(chunk_id: int) -> str:
    return f"{CHUNK_PREFIX}{chunk_id:05d}"


class DynamoDBJobRepository(JobRepository):
    """Jobs in one DynamoDB table. ``storage`` holds specs too large for an item, and is where a
    deleted job's objects are removed from; ``ttl_days`` sets ``expires_at`` (None: never)."""

    tail_chars = ITEM_TAIL_CHARS

    def __init__(self, table_name: str, *, client: Any = None, storage: Storage | None = None,
                 ttl_days: float | None = 30, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, conflict_tries: int = 8) -> None:
        if client is None:
            import boto3

            client = boto3.client("dynamodb")
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        self.table = table_name
        self.client = client
        self.storage = storage
        self._ttl = None if ttl_days is None else ttl_days * 86_400
        self._clock = clock
        self._sleep = sleep
        self._conflict_tries = conflict_tries
        self._serializer, self._deserializer = TypeSerializer(), TypeDeserializer()
        self._specs = SpecCache()

    # -- jobs -------------------------------------------------------------------------------------

    def save(self, status: JobStatus) -> None:
        if self.get(status.id, chunks=False) is not None:
            self.delete(status.id, keep_storage=True)
        text = status.spec.model_dump_json().encode()
        item = self._job_item(status, text)
        self._put_spec(status.spec, text)
        self.client.put_item(TableName=self.table, Item=self._encode(item))
        self._put_chunks(status, item)

    def create(self, status: JobStatus) -> JobStatus | None:
        existing = self.get(status.id, chunks=False)
        if existing is not None:  # checked first, so its spec in storage is never overwritten
            return existing
        text = status.spec.model_dump_json().encode()
        item = self._job_item(status, text)
        try:
            self.client.put_item(TableName=self.table, Item=self._encode(item),
                                 ConditionExpression=f"attribute_not_exists({PK})")
        except self.client.exceptions.ConditionalCheckFailedException:
            return self.get(status.id, chunks=False)  # created by a racing call in between
        # Only the call that created the item writes the spec: a racing create of the same id with
        # another spec can never replace the one this job's item describes.
        self._put_spec(status.spec, text)
        self._put_chunks(status, item)
        return None

    def _job_item(self, status: JobStatus, spec_json: bytes) -> dict[str, Any]:
        item: dict[str, Any] = {
            PK: job_pk(status.id), SK: META, "type": "job", GSI_PK: JOBS_PARTITION, GSI_SK: status.created_at,
            "job_id": status.id, "state": status.state.value, "total_chunks": status.total_chunks,
            "completed_chunks": status.completed_chunks, "failed_attempts": status.metrics.failed_attempts,
            "total_duration_ms": status.metrics.total_duration_ms,
            "total_billed_duration_ms": status.metrics.total_billed_duration_ms,
            "cost_usd": status.metrics.cost_usd, "error": status.error, "output": status.output,
            "requested": status.requested, "created_at": status.created_at, "updated_at": status.updated_at,
            "heartbeat_at": status.heartbeat_at, "lease_owner": status.lease_owner,
            "lease_until": status.lease_until, "client_token": status.client_token,
            **self._spec_attributes(status.id, status.spec, spec_json),
        }
        if self._ttl is not None:
            item[TTL_ATTRIBUTE] = int(status.created_at + self._ttl)
        # Absent, not NULL: conditions such as "no lease" test for a missing attribute.
        return {name: value for name, value in item.items() if value is not None}

    def _put_chunks(self, status: JobStatus, item: dict[str, Any]) -> None:
        touched = [record for record in status.chunks
                   if record.attempts or record.state is not ChunkState.PENDING or record.started_at is not None]
        puts = [{"PutRequest": {"Item": self._encode(self._chunk_item(status.id, record, item))}} for record in touched]
        self._batch_write(status.id, puts)

    def get(self, job_id: str, *, chunks: bool = True) -> JobStatus | None:
        if not chunks:
            found = self.client.get_item(TableName=self.table, Key=self._key(job_id, META), ConsistentRead=True)
            return self._job(self._decode(found["Item"]), []) if "Item" in found else None
        meta, records = None, {}
        for item in self._query(job_id):
            if item[SK] == META:
                meta = item
            else:
                record = self._record(item)
                records[record.chunk_id] = record
        if meta is None:
            return None
        spec = self._spec(meta)
        ordered = [records.get(chunk.id) or ChunkRecord(chunk_id=chunk.id)
                   for chunk in sorted(spec.chunks, key=lambda c: c.id)]
        return self._job(meta, ordered, spec)

    def chunk_states(self, job_id: str) -> dict[int, tuple[ChunkState, int]]:
        return {int(item["chunk_id"]): (ChunkState(item["state"]), int(item.get("attempts", 0)))
                for item in self._query(job_id, chunks_only=True, projection="#chunk_id, #state, #attempts")}

    def list(self, limit: int | None = None) -> list[JobStatus]:
        jobs: list[JobStatus] = []
        request: dict[str, Any] = {
            "TableName": self.table, "IndexName": GSI_NAME, "ScanIndexForward": False,
            "KeyConditionExpression": "#pk = :jobs", "ExpressionAttributeNames": {"#pk": GSI_PK},
            "ExpressionAttributeValues": {":jobs": {"S": JOBS_PARTITION}},
        }
        while limit is None or len(jobs) < limit:
            if limit is not None:
                request["Limit"] = limit - len(jobs)
            page = self.client.query(**request)
            jobs.extend(self._job(self._decode(item), []) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return jobs

    def delete(self, job_id: str, *, keep_storage: bool = False) -> bool:
        keys = [{PK: {"S": item[PK]}, SK: {"S": item[SK]}} for item in self._query(job_id, projection="#PK, #SK")]
        self._batch_write(job_id, [{"DeleteRequest": {"Key": key}} for key in keys])
        if self.storage is not None and not keep_storage:
            from framefarm.storage.keys import job_prefix

            self.storage.delete_prefix(job_prefix(job_id))
        return any(key[SK]["S"] == META for key in keys)

    # -- chunk events -----------------------------------------------------------------------------

    def record_batch(self, job_id: str, events: Sequence[ChunkEvent]) -> int:
        applied = 0
        for event in events:
            if isinstance(event, ChunkStarted):
                self._mark_started(job_id, event)
            elif self._record_attempt(job_id, event):
                applied += 1
        return applied

    def _mark_started(self, job_id: str, event: ChunkStarted) -> None:
        values = {":running": "running", ":at": event.at, ":cid": event.chunk_id, ":completed": "completed",
                  ":chunk": "chunk", ":expires": self._expires(), ":zero": 0}
        # A failed condition means the chunk already completed: a late start event changes nothing.
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
            self.client.update_item(
                TableName=self.table, Key=self._key(job_id, chunk_sk(event.chunk_id)),
                UpdateExpression="SET #state = :running, #started_at = :at, #chunk_id = :cid, #type = :chunk, "
                                 "#expires = if_not_exists(#expires, :expires), "
                                 "#attempts = if_not_exists(#attempts, :zero)",
                ConditionExpression="attribute_not_exists(#state) OR #state <> :completed",
                ExpressionAttributeNames={"#state": "state", "#type": "type", "#started_at": "started_at",
                                          "#chunk_id": "chunk_id", "#expires": TTL_ATTRIBUTE, "#attempts": "attempts"},
                ExpressionAttributeValues=self._encode(values))

    def _record_attempt(self, job_id: str, attempt: ChunkAttempt) -> bool:
        # Every attribute is aliased (#name): DynamoDB reserves many plain words (state, error, ...).
        names = {"#state": "state", "#attempts": "attempts", "#expires": TTL_ATTRIBUTE}
        values: dict[str, Any] = {":state": attempt.state.value, ":attempt": attempt.attempt,
                                  ":cid": attempt.chunk_id, ":chunk": "chunk", ":completed": "completed",
                                  ":expires": self._expires(), ":zero": 0}
        sets = ["#state = :state", "#attempts = :attempt", "#chunk_id = :cid", "#type = :chunk",
                "#expires = if_not_exists(#expires, :expires)"]
        names.update({"#chunk_id": "chunk_id", "#type": "type"})
        for name in ADDED_FIELDS:
            names[f"#{name}"] = name
            sets.append(f"#{name} = if_not_exists(#{name}, :zero) + :{name}")
            values[f":{name}"] = getattr(attempt, name)
        replaced = ["memory_mb", "max_memory_used_mb", "init_duration_ms", "request_id", "stdout_tail",
                    "stderr_tail", "error", "output", "finished_at"]
        if attempt.started_at is not None:
            replaced.append("started_at")
        for name in replaced:
            names[f"#{name}"] = name
            sets.append(f"#{name} = :{name}")
            values[f":{name}"] = _kept(name, getattr(attempt, name))
        deltas = attempt.counter_deltas()
        counter_values = {f":{name}": deltas[name] for name in COUNTERS}
        counter_values[":updated"] = attempt.finished_at or self._clock()
        chunk_update = {
            "TableName": self.table, "Key": self._key(job_id, chunk_sk(attempt.chunk_id)),
            "UpdateExpression": "SET " + ", ".join(sets),
            # A missing attribute compares false in DynamoDB, so "no attempts yet" must be spelled out.
            "ConditionExpression": "attribute_not_exists(#state) OR (#state <> :completed AND "
                                   "(attribute_not_exists(#attempts) OR #attempts < :attempt))",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": self._encode(values),
        }
        job_update = {
            "TableName": self.table, "Key": self._key(job_id, META),
            "UpdateExpression": "ADD " + ", ".join(f"#{name} :{name}" for name in COUNTERS)
                                + " SET #updated_at = :updated",
            "ConditionExpression": f"attribute_exists({PK})",
            "ExpressionAttributeNames": {**{f"#{name}": name for name in COUNTERS}, "#updated_at": "updated_at"},
            "ExpressionAttributeValues": self._encode(counter_values),
        }
        return self._transact_recording(job_id, attempt.chunk_id, [{"Update": chunk_update}, {"Update": job_update}])

    def _transact_recording(self, job_id: str, chunk_id: int, items: builtins.list[dict[str, Any]]) -> bool:
        """Run a recording transaction (items as in RECORDING_ITEMS); False when it was recorded before."""
        failed = f"job {job_id}: chunk {chunk_id} not recorded"
        tries = 0
        while True:
            tries += 1
            try:
                self.client.transact_write_items(TransactItems=items)
                return True
            except self.client.exceptions.TransactionCanceledException as exc:
                reasons = exc.response.get("CancellationReasons", [])
                # One reason per item, in the items' order: a reason's position says which item failed.
                codes = {item: reason.get("Code") for item, reason in zip(RECORDING_ITEMS, reasons, strict=False)}
                refused = [f"{item}: {code}: {' '.join(str(reason.get('Message', '')).split())}"
                           for (item, code), reason in zip(codes.items(), reasons, strict=False)
                           if code not in FINE | RETRIED | {ALREADY_DONE}]
                if refused or len(reasons) != len(RECORDING_ITEMS):
                    raise FramefarmError(f"{failed}: DynamoDB refused it ({'; '.join(refused) or exc})") from exc
                if codes["job item"] == ALREADY_DONE:
                    raise JobNotFoundError(job_id, f"{failed}: job {job_id} is no longer in the table "
                                                   "(deleted while it ran?)") from exc
                if codes["chunk item"] == ALREADY_DONE:
                    return False  # this attempt, or a later one, or the chunk's completion is recorded
                if tries >= self._conflict_tries:
                    detail = "; ".join(f"{item}: {code}" for item, code in codes.items() if code in RETRIED)
                    raise FramefarmError(f"{failed} after {tries} tries, each cancelled ({detail}); "
                                         "the table is busy or throttled, try again") from exc
                self._sleep(CONFLICT_BACKOFF.delay(tries))

    # -- state and control ------------------------------------------------------------------------

    def set_state(self, job_id: str, state: JobState, *, now: float, error: str | None = None,
                  output: str | None = None, expected: Collection[JobState] | None = None,
                  owner: str | None = None, free_at: float | None = None, release: bool = False) -> bool:
        sets = ["#state = :state", "#updated_at = :now"]
        removes = ["#requested"]
        names = {"#state": "state", "#updated_at": "updated_at", "#requested": "requested"}
        values: dict[str, Any] = {":state": state.value, ":now": now}
        if error is None:
            removes.append("#error")
        else:
            sets.append("#error = :error")
            values[":error"] = error
        names["#error"] = "error"
        if output is not None:
            sets.append("#output = :output")
            values[":output"] = output
            names["#output"] = "output"
        if release or not state.is_active:
            removes += ["#lease_owner", "#lease_until"]
        conditions = [f"attribute_exists({PK})"]
        if expected is not None:
            placeholders = [f":expected{i}" for i, _ in enumerate(expected)]
            values.update({name: allowed.value for name, allowed in zip(placeholders, expected, strict=True)})
            conditions.append(f"#state IN ({', '.join(placeholders)})")
        if owner is not None:
            conditions.append("#lease_owner = :owner")
            values[":owner"] = owner
        if free_at is not None:
            conditions.append(LEASE_FREE)
            values[":free_at"] = free_at
        if owner is not None or release or not state.is_active:
            names["#lease_owner"] = "lease_owner"
        if free_at is not None or release or not state.is_active:
            names["#lease_until"] = "lease_until"
        return self._conditional_update(job_id, f"SET {', '.join(sets)} REMOVE {', '.join(removes)}",
                                        " AND ".join(conditions), names, values)

    def take_lease(self, job_id: str, lease: Lease, *, now: float, expected: Collection[JobState],
                   successor_of: str | None = None) -> bool:
        placeholders = [f":expected{i}" for i, _ in enumerate(expected)]
        values: dict[str, Any] = {name: allowed.value for name, allowed in zip(placeholders, expected, strict=True)}
        values.update({":running": JobState.RUNNING.value, ":now": now, ":free_at": now, ":owner": lease.owner,
                       ":until": lease.until, ":successor_of": successor_of or lease.owner})
        return self._conditional_update(
            job_id,
            "SET #state = :running, #updated_at = :now, #heartbeat_at = :now, #lease_owner = :owner, "
            "#lease_until = :until REMOVE #error",
            f"attribute_exists({PK}) AND #state IN ({', '.join(placeholders)}) AND "
            f"({LEASE_FREE} OR #lease_owner = :owner OR #lease_owner = :successor_of)",
            {"#state": "state", "#updated_at": "updated_at", "#heartbeat_at": "heartbeat_at", "#error": "error",
             "#lease_owner": "lease_owner", "#lease_until": "lease_until"},
            values)

    def renew_lease(self, job_id: str, lease: Lease, *, now: float) -> Beat | None:
        if not self._conditional_update(
                job_id, "SET #heartbeat_at = :now, #lease_until = :until", "#lease_owner = :owner",
                {"#heartbeat_at": "heartbeat_at", "#lease_until": "lease_until", "#lease_owner": "lease_owner"},
                {":now": now, ":until": lease.until, ":owner": lease.owner}):
            return None
        # A second small read rather than ReturnValues=ALL_NEW, which would return the whole item every beat.
        found = self.client.get_item(TableName=self.table, Key=self._key(job_id, META), ConsistentRead=True,
                                     ProjectionExpression="#requested",
                                     ExpressionAttributeNames={"#requested": "requested"})
        return Beat(found.get("Item", {}).get("requested", {}).get("S"))

    def hand_over(self, job_id: str, owner: str, successor: Lease) -> bool:
        return self._conditional_update(
            job_id, "SET #lease_owner = :successor, #lease_until = :until", "#lease_owner = :owner",
            {"#lease_owner": "lease_owner", "#lease_until": "lease_until"},
            {":successor": successor.owner, ":until": successor.until, ":owner": owner})

    def _conditional_update(self, job_id: str, update: str, condition: str, names: dict[str, str],
                            values: dict[str, Any]) -> bool:
        """One UpdateItem on the job item; False when its condition failed."""
        try:
            self.client.update_item(TableName=self.table, Key=self._key(job_id, META), UpdateExpression=update,
                                    ConditionExpression=condition, ExpressionAttributeNames=names,
                                    ExpressionAttributeValues=self._encode(values))
            return True
        except self.client.exceptions.ConditionalCheckFailedException:
            return False

    def reopen_chunks(self, job_id: str, chunk_ids: Collection[int], *, state: JobState, now: float,
                      expected: Collection[JobState], gone_owner: str | None = None) -> builtins.list[int] | None:
        """One TransactWriteItems: each completed chunk item back to pending, the job item's state
        and counter, every item conditional; a chunk that changed meanwhile means read and try again."""
        wanted = set(chunk_ids)
        allowed = {f":expected{i}": allowed.value for i, allowed in enumerate(expected)}
        for tries in range(1, self._conflict_tries + 1):
            reopened = sorted(cid for cid, (chunk_state, _) in self.chunk_states(job_id).items()
                              if cid in wanted and chunk_state is ChunkState.COMPLETED)
            if len(reopened) >= MAX_TRANSACTION_ITEMS:
                raise FramefarmError(f"job {job_id}: {len(reopened)} completed chunks to reopen; a DynamoDB "
                                     f"transaction holds {MAX_TRANSACTION_ITEMS - 1} at most, so retry fewer at once")
            job_update = {
                "TableName": self.table, "Key": self._key(job_id, META),
                "UpdateExpression": "SET #state = :state, #updated_at = :now ADD #completed_chunks :reopened "
                                    "REMOVE #error, #requested, #lease_owner, #lease_until",
                "ConditionExpression": f"attribute_exists({PK}) AND #state IN ({', '.join(allowed)}) "
                                       f"AND ({LEASE_FREE} OR #lease_owner = :gone)",
                "ExpressionAttributeNames": {"#state": "state", "#updated_at": "updated_at", "#error": "error",
                                             "#requested": "requested", "#completed_chunks": "completed_chunks",
                                             "#lease_owner": "lease_owner", "#lease_until": "lease_until"},
                "ExpressionAttributeValues": self._encode({":state": state.value, ":now": now, ":free_at": now,
                                                           ":gone": gone_owner or "-",
                                                           ":reopened": -len(reopened), **allowed}),
            }
            chunk_updates = [{
                "TableName": self.table, "Key": self._key(job_id, chunk_sk(cid)),
                "UpdateExpression": "SET #state = :pending REMOVE #output",
                "ConditionExpression": "#state = :completed",
                "ExpressionAttributeNames": {"#state": "state", "#output": "output"},
                "ExpressionAttributeValues": self._encode({":pending": "pending", ":completed": "completed"}),
            } for cid in reopened]
            try:
                self.client.transact_write_items(
                    TransactItems=[{"Update": job_update}, *({"Update": update} for update in chunk_updates)])
                return reopened
            except self.client.exceptions.TransactionCanceledException as exc:
                codes = [reason.get("Code") for reason in exc.response.get("CancellationReasons", [])]
                if codes and codes[0] == "ConditionalCheckFailed":
                    return None  # the job is gone or no longer in an expected state
                if tries == self._conflict_tries:
                    raise FramefarmError(f"job {job_id}: chunks not reopened after {tries} conflicting "
                                         f"transactions ({codes})") from exc
                self._sleep(CONFLICT_BACKOFF.delay(tries))
        return None

    def request(self, job_id: str, action: str, *, now: float) -> bool:
        return self._conditional_update(job_id, "SET #requested = :action", "#lease_until > :now",
                                        {"#requested": "requested", "#lease_until": "lease_until"},
                                        {":action": action, ":now": now})

    # -- helpers ----------------------------------------------------------------------------------

    def _spec_attributes(self, job_id: str, spec: JobSpec, text: bytes) -> dict[str, Any]:
        """Where the job item finds its spec: in storage (``_put_spec`` writes it there), else inline."""
        digest = hashlib.sha256(text).hexdigest()
        self._specs.remember(digest, digest, spec)
        if self.storage is not None:  # keeps the job item the same size whatever the number of chunks
            # A full URL, so a reader given only the table (framefarm status --table) finds it.
            return {"spec_url": self.storage.url(spec_key(job_id)), "spec_sha256": digest}
        packed = zlib.compress(text, 6)
        if len(packed) > INLINE_SPEC_LIMIT:
            raise FramefarmError(f"job {job_id}: spec is {len(packed):,} bytes compressed, too large for a "
                                 "DynamoDB item; give the repository a storage to keep it in")
        return {"spec": packed, "spec_sha256": digest}

    def _put_spec(self, spec: JobSpec, text: bytes) -> None:
        if self.storage is not None:
            put_spec(self.storage, spec, text)

    def _spec(self, meta: dict[str, Any]) -> JobSpec:
        digest = meta.get("spec_sha256", "")
        return self._specs.get(digest, digest, lambda: JobSpec.model_validate_json(self._stored_spec(meta)))

    def _stored_spec(self, meta: dict[str, Any]) -> bytes:
        """A job item's spec JSON: inline (compressed), or from storage: this store's own when the
        ``spec_url`` is in it, else the store the URL names (a reader given only the table)."""
        if "spec" in meta:
            return zlib.decompress(bytes(meta["spec"]))
        if "spec_url" not in meta:  # an index entry: the inline spec stays in the table
            found = self.client.get_item(TableName=self.table, Key=self._key(meta["job_id"], META),
                                         ProjectionExpression="#spec", ExpressionAttributeNames={"#spec": "spec"})
            if "spec" not in found.get("Item", {}):
                raise JobNotFoundError(meta["job_id"])
            return zlib.decompress(bytes(self._decode(found["Item"])["spec"]))
        key = spec_key(meta["job_id"])
        if self.storage is not None and self.storage.url(key) == meta["spec_url"]:
            return self.storage.get_bytes(key)
        from framefarm.storage import storage_for_url

        storage, key = storage_for_url(meta["spec_url"])
        return storage.get_bytes(key)

    def _job(self, meta: dict[str, Any], chunks: builtins.list[ChunkRecord], spec: JobSpec | None = None
             ) -> JobStatus:
        """The job an item (or index entry) describes; without ``spec``, its spec is read when asked for."""
        return JobStatus(
            id=meta["job_id"], spec=(lambda: self._spec(meta)) if spec is None else spec,
            state=JobState(meta["state"]),
            total_chunks=int(meta["total_chunks"]), completed_chunks=int(meta.get("completed_chunks", 0)),
            error=meta.get("error"), output=meta.get("output"), requested=meta.get("requested"),
            created_at=float(meta["created_at"]), updated_at=float(meta["updated_at"]),
            heartbeat_at=_float(meta.get("heartbeat_at")), lease_owner=meta.get("lease_owner"),
            lease_until=_float(meta.get("lease_until")), client_token=meta.get("client_token"),
            metrics=JobMetrics(total_duration_ms=float(meta.get("total_duration_ms", 0)),
                               total_billed_duration_ms=int(meta.get("total_billed_duration_ms", 0)),
                               cost_usd=float(meta.get("cost_usd", 0)),
                               failed_attempts=int(meta.get("failed_attempts", 0))),
            chunks=chunks,
        )

    def _record(self, item: dict[str, Any]) -> ChunkRecord:
        # DynamoDB numbers come back as Decimals; pydantic turns integral floats into ints where needed.
        values: dict[str, Any] = {name: float(value) if isinstance(value, Decimal) else value
                                  for name in RECORD_FIELDS if (value := item.get(name)) is not None}
        return ChunkRecord(chunk_id=int(item["chunk_id"]), **values)

    def _chunk_item(self, job_id: str, record: ChunkRecord, meta: dict[str, Any]) -> dict[str, Any]:
        item = {PK: job_pk(job_id), SK: chunk_sk(record.chunk_id), "type": "chunk", "chunk_id": record.chunk_id,
                **{name: _kept(name, getattr(record, name)) for name in RECORD_FIELDS}}
        item["state"] = record.state.value
        if TTL_ATTRIBUTE in meta:
            item[TTL_ATTRIBUTE] = meta[TTL_ATTRIBUTE]
        return item

    def _query(self, job_id: str, *, chunks_only: bool = False, projection: str | None = None
               ) -> Iterator[dict[str, Any]]:
        request: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True,
                                   "KeyConditionExpression": "PK = :pk",
                                   "ExpressionAttributeValues": {":pk": {"S": job_pk(job_id)}}}
        if chunks_only:
            request["KeyConditionExpression"] += " AND begins_with(SK, :chunk)"
            request["ExpressionAttributeValues"][":chunk"] = {"S": CHUNK_PREFIX}
        if projection:
            request["ProjectionExpression"] = projection
            request["ExpressionAttributeNames"] = {f"#{name}": name for name in
                                                   (part.strip().lstrip("#") for part in projection.split(","))}
        while True:
            page = self.client.query(**request)
            for item in page.get("Items", []):
                yield self._decode(item)
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _batch_write(self, job_id: str, requests: builtins.list[dict[str, Any]]) -> None:
        for start in range(0, len(requests), 25):  # BatchWriteItem takes at most 25
            pending = {self.table: requests[start:start + 25]}
            for tries in range(1, UNPROCESSED_TRIES + 1):
                answer = self.client.batch_write_item(RequestItems=pending)
                pending = answer.get("UnprocessedItems") or {}
                if not pending:
                    break
                if tries == UNPROCESSED_TRIES:
                    left = sum(map(len, pending.values())) + max(0, len(requests) - start - 25)
                    raise FramefarmError(f"job {job_id}: {left} of {len(requests)} item writes not done: DynamoDB "
                                         f"returned them unprocessed {tries} times (throttled); try again")
                self._sleep(UNPROCESSED_BACKOFF.delay(tries))

    def _expires(self) -> int:
        return int(self._clock() + self._ttl) if self._ttl is not None else 0

    def _key(self, job_id: str, sort_key: str) -> dict[str, Any]:
        return {PK: {"S": job_pk(job_id)}, SK: {"S": sort_key}}

    def _encode(self, values: dict[str, Any]) -> dict[str, Any]:
        return {name: self._serializer.serialize(_dynamo_value(value)) for name, value in values.items()}

    def _decode(self, item: dict[str, Any]) -> dict[str, Any]:
        return {name: self._deserializer.deserialize(value) for name, value in item.items()}


def create_table(client: Any, table_name: str) -> None:
    """Create the table as the CDK stack does (tests, devcloud). On-demand billing, listing GSI, TTL."""
    client.create_table(
        TableName=table_name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": PK, "KeyType": "HASH"}, {"AttributeName": SK, "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": name, "AttributeType": kind}
                              for name, kind in ((PK, "S"), (SK, "S"), (GSI_PK, "S"), (GSI_SK, "N"))],
        GlobalSecondaryIndexes=[{"IndexName": GSI_NAME,
                                 "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(LISTED)},
                                 "KeySchema": [{"AttributeName": GSI_PK, "KeyType": "HASH"},
                                               {"AttributeName": GSI_SK, "KeyType": "RANGE"}]}],
    )
    client.get_waiter("table_exists").wait(TableName=table_name)
    client.update_time_to_live(TableName=table_name,
                               TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE})


def _dynamo_value(value: Any) -> Any:
    """Python values as DynamoDB takes them: floats as exact Decimals, enums as their values."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, (ChunkState, JobState)):
        return value.value
    return value


def _kept(name: str, value: Any) -> Any:
    """A chunk field as its item keeps it: log tails and the error cut, so the item stays under 2 KB."""
    if name in ("stdout_tail", "stderr_tail"):
        return tail(value, ITEM_TAIL_CHARS)
    if name == "error" and value is not None and len(value) > ITEM_ERROR_CHARS:
        return value[:ITEM_ERROR_CHARS - 1] + TAIL_MARK  # an error's start says what failed
    return value


def item_size(item: dict[str, Any]) -> int:
    """An item's size by DynamoDB's rules, on which its write units are counted: each attribute's name
    in UTF-8 bytes plus its value's size (``item`` in the wire format, ``{"name": {"S": "..."}}``)."""
    return sum(len(name.encode()) + _value_size(typed) for name, typed in item.items())


def _value_size(typed: dict[str, Any]) -> int:
    (kind, value), = typed.items()
    if kind == "S":
        return len(value.encode())
    if kind == "B":
        return len(value)
    if kind == "N":  # 1 byte per two significant digits, plus 1
        digits = Decimal(value).normalize().as_tuple().digits
        return (len(digits) + 1) // 2 + 1
    if kind in ("NULL", "BOOL"):
        return 1
    if kind == "L":  # 3 bytes, and 1 per element
        return 3 + sum(1 + _value_size(element) for element in value)
    if kind == "M":
        return 3 + sum(1 + len(key.encode()) + _value_size(element) for key, element in value.items())
    return sum(_value_size({kind[0]: element}) for element in value)  # SS, NS, BS


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
