"""DynamoDBJobRepository: the job store's operations on the table, and the judging of DynamoDB's
answers (a cancelled transaction's reasons, failed conditions). The package docstring describes the
table model; ``expressions`` builds the conditional writes it sends, ``items`` the items."""

from __future__ import annotations

import builtins
import contextlib
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any

from framefarm.backoff import Backoff
from framefarm.concurrency import SlotAsk, SlotHolder
from framefarm.errors import FramefarmError, JobNotFoundError
from framefarm.lease import Beat, Lease
from framefarm.repositories.base import JobRepository
from framefarm.repositories.dynamodb.expressions import (
    lease_take,
    recording_items,
    reopen_items,
    started_update,
    state_update,
)
from framefarm.repositories.dynamodb.items import (
    ITEM_TAIL_CHARS,
    ItemCodec,
    chunk_item,
    delivery_from_item,
    delivery_item,
    job_from_item,
    job_item,
    record_from_item,
)
from framefarm.repositories.dynamodb.paging import batch_write, query_job
from framefarm.repositories.dynamodb.slots import SlotItems
from framefarm.repositories.dynamodb.specs import ItemSpecs
from framefarm.repositories.dynamodb.table import (
    CHUNK_PREFIX,
    DELIVERY_PREFIX,
    GSI_NAME,
    GSI_PK,
    JOBS_PARTITION,
    META,
    PK,
    SK,
    item_key,
)
from framefarm.spec import JobSpec
from framefarm.status import (
    ChunkAttempt,
    ChunkEvent,
    ChunkRecord,
    ChunkStarted,
    ChunkState,
    DeliveryRecord,
    JobRecord,
    JobState,
)
from framefarm.storage.base import Storage

CONFLICT_BACKOFF = Backoff(0.02, 1.0)  # between transactions that conflicted on the job item
MAX_TRANSACTION_ITEMS = 100  # TransactWriteItems' limit
RETRIED = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})
FINE, ALREADY_DONE = frozenset({"None", None}), "ConditionalCheckFailed"  # cancellation reason codes
RECORDING_ITEMS = ("chunk item", "job item")  # a recording transaction's items, in order


class DynamoDBJobRepository(JobRepository):
    """Jobs in one DynamoDB table. ``storage`` holds specs too large for an item, and is where a
    deleted job's objects are removed from; ``ttl_days`` sets ``expires_at`` (None: never)."""

    tail_chars = ITEM_TAIL_CHARS

    @property
    def location(self) -> str:
        return f"the DynamoDB table {self.table}"

    def __init__(self, table_name: str, *, client: Any = None, storage: Storage | None = None,
                 ttl_days: float | None = 30, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, conflict_tries: int = 8) -> None:
        if client is None:
            import boto3

            client = boto3.client("dynamodb")
        self.table = table_name
        self.client = client
        self.storage = storage
        self._ttl = None if ttl_days is None else ttl_days * 86_400
        self._clock = clock
        self._sleep = sleep
        self._conflict_tries = conflict_tries
        self._codec = ItemCodec()
        self._specs = ItemSpecs(client, table_name, self._codec, storage)
        self._slots = SlotItems(client, table_name, self._codec, sleep=sleep, backoff=CONFLICT_BACKOFF,
                                tries=conflict_tries)

    # -- jobs -------------------------------------------------------------------------------------

    def save(self, status: JobRecord) -> None:
        if self.get(status.id, chunks=False) is not None:
            self.delete(status.id, keep_storage=True)
        text = status.spec.model_dump_json().encode()
        item = self._job_item(status, text)
        self._specs.put(status.spec, text)
        self.client.put_item(TableName=self.table, Item=self._codec.encode(item))
        self._put_chunks(status, item)

    def create(self, status: JobRecord) -> JobRecord | None:
        existing = self.get(status.id, chunks=False)
        if existing is not None:  # checked first, so its spec in storage is never overwritten
            return existing
        text = status.spec.model_dump_json().encode()
        item = self._job_item(status, text)
        try:
            self.client.put_item(TableName=self.table, Item=self._codec.encode(item),
                                 ConditionExpression=f"attribute_not_exists({PK})")
        except self.client.exceptions.ConditionalCheckFailedException:
            return self.get(status.id, chunks=False)  # created by a racing call in between
        # Only the call that created the item writes the spec: a racing create of the same id with
        # another spec can never replace the one this job's item describes.
        self._specs.put(status.spec, text)
        self._put_chunks(status, item)
        return None

    def _job_item(self, status: JobRecord, spec_json: bytes) -> dict[str, Any]:
        return job_item(status, self._specs.attributes(status.id, status.spec, spec_json), self._ttl)

    def _put_chunks(self, status: JobRecord, item: dict[str, Any]) -> None:
        touched = [record for record in status.chunks
                   if record.attempts or record.state is not ChunkState.PENDING or record.started_at is not None]
        puts = [{"PutRequest": {"Item": self._codec.encode(chunk_item(status.id, record, item))}} for record in touched]
        self._batch_write(status.id, puts)

    def get(self, job_id: str, *, chunks: bool = True) -> JobRecord | None:
        if not chunks:
            found = self.client.get_item(TableName=self.table, Key=item_key(job_id, META), ConsistentRead=True)
            return self._job(self._codec.decode(found["Item"]), []) if "Item" in found else None
        meta, records = None, {}
        for item in self._query(job_id):
            if item[SK] == META:
                meta = item
            elif item[SK].startswith(CHUNK_PREFIX):  # not a webhook delivery's item
                record = record_from_item(item)
                records[record.chunk_id] = record
        if meta is None:
            return None
        spec = self._specs.get(meta)
        ordered = [records.get(chunk.id) or ChunkRecord(chunk_id=chunk.id)
                   for chunk in sorted(spec.chunks, key=lambda c: c.id)]
        return self._job(meta, ordered, spec)

    def chunk_states(self, job_id: str) -> dict[int, tuple[ChunkState, int]]:
        return {int(item["chunk_id"]): (ChunkState(item["state"]), int(item.get("attempts", 0)))
                for item in self._query(job_id, chunks_only=True, projection="#chunk_id, #state, #attempts")}

    def list(self, limit: int | None = None) -> list[JobRecord]:
        jobs: list[JobRecord] = []
        request: dict[str, Any] = {
            "TableName": self.table, "IndexName": GSI_NAME, "ScanIndexForward": False,
            "KeyConditionExpression": "#pk = :jobs", "ExpressionAttributeNames": {"#pk": GSI_PK},
            "ExpressionAttributeValues": {":jobs": {"S": JOBS_PARTITION}},
        }
        while limit is None or len(jobs) < limit:
            if limit is not None:
                request["Limit"] = limit - len(jobs)
            page = self.client.query(**request)
            jobs.extend(self._job(self._codec.decode(item), []) for item in page.get("Items", []))
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
        # A failed condition means the chunk already completed: a late start event changes nothing.
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
            self.client.update_item(**started_update(self.table, job_id, event, expires=self._expires(),
                                                     encode=self._codec.encode))

    def _record_attempt(self, job_id: str, attempt: ChunkAttempt) -> bool:
        items = recording_items(self.table, job_id, attempt, expires=self._expires(), now=self._clock(),
                                encode=self._codec.encode)
        return self._transact_recording(job_id, attempt.chunk_id, items)

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
        return self._conditional_update(job_id, *state_update(
            state, now=now, error=error, output=output, expected=expected, owner=owner, free_at=free_at,
            release=release))

    def take_lease(self, job_id: str, lease: Lease, *, now: float, expected: Collection[JobState],
                   successor_of: str | None = None) -> bool:
        return self._conditional_update(job_id, *lease_take(lease, now=now, expected=expected,
                                                             successor_of=successor_of))

    def renew_lease(self, job_id: str, lease: Lease, *, now: float) -> Beat | None:
        if not self._conditional_update(
                job_id, "SET #heartbeat_at = :now, #lease_until = :until", "#lease_owner = :owner",
                {"#heartbeat_at": "heartbeat_at", "#lease_until": "lease_until", "#lease_owner": "lease_owner"},
                {":now": now, ":until": lease.until, ":owner": lease.owner}):
            return None
        # A second small read rather than ReturnValues=ALL_NEW, which would return the whole item every beat.
        found = self.client.get_item(TableName=self.table, Key=item_key(job_id, META), ConsistentRead=True,
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
            self.client.update_item(TableName=self.table, Key=item_key(job_id, META), UpdateExpression=update,
                                    ConditionExpression=condition, ExpressionAttributeNames=names,
                                    ExpressionAttributeValues=self._codec.encode(values))
            return True
        except self.client.exceptions.ConditionalCheckFailedException:
            return False

    def reopen_chunks(self, job_id: str, chunk_ids: Collection[int], *, state: JobState, now: float,
                      expected: Collection[JobState], gone_owner: str | None = None) -> builtins.list[int] | None:
        """One TransactWriteItems: each completed chunk item back to pending, the job item's state
        and counter, every item conditional; a chunk that changed meanwhile means read and try again."""
        wanted = set(chunk_ids)
        for tries in range(1, self._conflict_tries + 1):
            reopened = sorted(cid for cid, (chunk_state, _) in self.chunk_states(job_id).items()
                              if cid in wanted and chunk_state is ChunkState.COMPLETED)
            if len(reopened) >= MAX_TRANSACTION_ITEMS:
                raise FramefarmError(f"job {job_id}: {len(reopened)} completed chunks to reopen; a DynamoDB "
                                     f"transaction holds {MAX_TRANSACTION_ITEMS - 1} at most, so retry fewer at once")
            try:
                self.client.transact_write_items(TransactItems=reopen_items(
                    self.table, job_id, reopened, state=state, now=now, expected=expected, gone_owner=gone_owner,
                    encode=self._codec.encode))
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

    def ask_runner(self, job_id: str, action: str, *, now: float) -> bool:
        return self._conditional_update(job_id, "SET #requested = :action", "#lease_until > :now",
                                        {"#requested": "requested", "#lease_until": "lease_until"},
                                        {":action": action, ":now": now})

    # -- the shared concurrency budget (repositories/dynamodb/slots.py) ---------------------------

    def take_slots(self, ask: SlotAsk, *, count: int, limit: int, now: float) -> int:
        return self._slots.take(ask, count=count, limit=limit, now=now)

    def give_slot(self, owner: str, *, wants: int) -> None:
        self._slots.give(owner, wants=wants)

    def renew_slots(self, owner: str, until: float) -> None:
        self._slots.renew(owner, until)

    def leave_slots(self, owner: str) -> None:
        self._slots.leave(owner)

    def slot_holders(self) -> builtins.list[SlotHolder]:
        return self._slots.holders()
    # -- webhook deliveries -----------------------------------------------------------------------

    def record_delivery(self, job_id: str, delivery: DeliveryRecord) -> bool:
        """One transaction: the job item must exist, and the delivery item be new, or pending with
        no more attempts than this one has."""
        items = [
            {"ConditionCheck": {"TableName": self.table, "Key": item_key(job_id, META),
                                "ConditionExpression": f"attribute_exists({PK})"}},
            {"Put": {"TableName": self.table, "Item": self._codec.encode(delivery_item(job_id, delivery,
                                                                                       self._expires())),
                     "ConditionExpression": f"attribute_not_exists({PK}) OR (#state = :pending AND #attempts <= :n)",
                     "ExpressionAttributeNames": {"#state": "state", "#attempts": "attempts"},
                     "ExpressionAttributeValues": self._codec.encode({":pending": "pending",
                                                                      ":n": delivery.attempts})}}]
        for tries in range(1, self._conflict_tries + 1):
            try:
                self.client.transact_write_items(TransactItems=items)
                return True
            except self.client.exceptions.TransactionCanceledException as exc:
                codes = [reason.get("Code") for reason in exc.response.get("CancellationReasons", [])]
                if ALREADY_DONE in codes or not set(codes) <= FINE | RETRIED or tries == self._conflict_tries:
                    return False  # the job is gone, or a newer record is stored (or the table stays busy)
                self._sleep(CONFLICT_BACKOFF.delay(tries))
        return False

    def deliveries(self, job_id: str) -> builtins.list[DeliveryRecord]:
        found = [delivery_from_item(item) for item in self._query(job_id, prefix=DELIVERY_PREFIX)]
        return sorted(found, key=lambda record: record.created_at)

    # -- helpers ----------------------------------------------------------------------------------

    def _job(self, meta: dict[str, Any], chunks: builtins.list[ChunkRecord], spec: JobSpec | None = None
             ) -> JobRecord:
        """The job an item (or index entry) describes; without ``spec``, its spec is read when asked for."""
        return job_from_item(meta, chunks, (lambda: self._specs.get(meta)) if spec is None else spec)

    def _query(self, job_id: str, *, chunks_only: bool = False, projection: str | None = None,
               prefix: str | None = None) -> Iterator[dict[str, Any]]:
        return query_job(self.client, self.table, job_id, decode=self._codec.decode, chunks_only=chunks_only,
                         projection=projection, prefix=prefix)

    def _batch_write(self, job_id: str, requests: builtins.list[dict[str, Any]]) -> None:
        batch_write(self.client, self.table, job_id, requests, sleep=self._sleep)

    def _expires(self) -> int:
        return int(self._clock() + self._ttl) if self._ttl is not None else 0
