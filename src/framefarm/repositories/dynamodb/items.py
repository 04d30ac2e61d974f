"""The item codec: JobRecord and ChunkRecord to and from DynamoDB items, values in DynamoDB's types,
log tails and errors cut so a chunk item stays under 2 KB, and an item's size by DynamoDB's rules."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from framefarm.failures import FailureKind
from framefarm.repositories.dynamodb.table import (
    GSI_PK,
    GSI_SK,
    JOBS_PARTITION,
    META,
    PK,
    SK,
    TTL_ATTRIBUTE,
    chunk_sk,
    delivery_sk,
    job_pk,
)
from framefarm.spec import JobSpec
from framefarm.status import (
    TAIL_MARK,
    ChunkRecord,
    ChunkState,
    DeliveryRecord,
    DeliveryState,
    JobMetrics,
    JobRecord,
    JobState,
    tail,
)

# ~6 lines of ffmpeg's output: enough to see in `framefarm status` why a chunk failed; with these,
# a chunk item (keys, numbers, request id, output URL ~100 B) stays under 2 KB for ASCII logs.
ITEM_TAIL_CHARS = 500
ITEM_ERROR_CHARS = 300
RECORD_FIELDS = tuple(name for name in ChunkRecord.model_fields if name != "chunk_id")


class ItemCodec:
    """Items in the wire format (``{"name": {"S": "..."}}``) to Python values and back."""

    def __init__(self) -> None:
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer  # boto3 stays a lazy import

        self._serializer, self._deserializer = TypeSerializer(), TypeDeserializer()

    def encode(self, values: dict[str, Any]) -> dict[str, Any]:
        return {name: self._serializer.serialize(_dynamo_value(value)) for name, value in values.items()}

    def decode(self, item: dict[str, Any]) -> dict[str, Any]:
        return {name: self._deserializer.deserialize(value) for name, value in item.items()}


def job_item(status: JobRecord, spec_attributes: dict[str, Any], ttl: float | None) -> dict[str, Any]:
    """The job item for ``status``; ``spec_attributes`` say where its spec is, ``ttl`` (s) when it expires."""
    item: dict[str, Any] = {
        PK: job_pk(status.id), SK: META, "type": "job", GSI_PK: JOBS_PARTITION, GSI_SK: status.created_at,
        "job_id": status.id, "state": status.state.value, "total_chunks": status.total_chunks,
        "completed_chunks": status.completed_chunks, "failed_attempts": status.metrics.failed_attempts,
        "total_duration_ms": status.metrics.total_duration_ms,
        "total_billed_duration_ms": status.metrics.total_billed_duration_ms,
        "cost_usd": status.metrics.cost_usd, "error": status.error, "output": status.output,
        "requested": status.pending_action, "created_at": status.created_at, "updated_at": status.updated_at,
        "heartbeat_at": status.heartbeat_at, "lease_owner": status.lease_owner,
        "lease_until": status.lease_until, "client_token": status.client_token,
        **spec_attributes,
    }
    if ttl is not None:
        item[TTL_ATTRIBUTE] = int(status.created_at + ttl)
    # Absent, not NULL: conditions such as "no lease" test for a missing attribute.
    return {name: value for name, value in item.items() if value is not None}


def job_from_item(meta: dict[str, Any], chunks: builtins.list[ChunkRecord],
                  spec: JobSpec | Callable[[], JobSpec]) -> JobRecord:
    """The job an item (or index entry) describes; ``spec`` may be a function that reads it when asked for."""
    return JobRecord(
        id=meta["job_id"], spec=spec,
        state=JobState(meta["state"]),
        total_chunks=int(meta["total_chunks"]), completed_chunks=int(meta.get("completed_chunks", 0)),
        error=meta.get("error"), output=meta.get("output"), pending_action=meta.get("requested"),
        created_at=float(meta["created_at"]), updated_at=float(meta["updated_at"]),
        heartbeat_at=_float(meta.get("heartbeat_at")), lease_owner=meta.get("lease_owner"),
        lease_until=_float(meta.get("lease_until")), client_token=meta.get("client_token"),
        metrics=JobMetrics(total_duration_ms=float(meta.get("total_duration_ms", 0)),
                           total_billed_duration_ms=int(meta.get("total_billed_duration_ms", 0)),
                           cost_usd=float(meta.get("cost_usd", 0)),
                           failed_attempts=int(meta.get("failed_attempts", 0))),
        chunks=chunks,
    )


def record_from_item(item: dict[str, Any]) -> ChunkRecord:
    # DynamoDB numbers come back as Decimals; pydantic turns integral floats into ints where needed.
    values: dict[str, Any] = {name: float(value) if isinstance(value, Decimal) else value
                              for name in RECORD_FIELDS if (value := item.get(name)) is not None}
    return ChunkRecord(chunk_id=int(item["chunk_id"]), **values)


def chunk_item(job_id: str, record: ChunkRecord, meta: dict[str, Any]) -> dict[str, Any]:
    """The chunk item for ``record``, expiring with its job item ``meta``."""
    item = {PK: job_pk(job_id), SK: chunk_sk(record.chunk_id), "type": "chunk", "chunk_id": record.chunk_id,
            **{name: kept(name, getattr(record, name)) for name in RECORD_FIELDS}}
    item["state"] = record.state.value
    if TTL_ATTRIBUTE in meta:
        item[TTL_ATTRIBUTE] = meta[TTL_ATTRIBUTE]
    return item


def delivery_item(job_id: str, record: DeliveryRecord, expires: int) -> dict[str, Any]:
    """The item of a webhook delivery (under 2 KB: the body sent and a few short outcomes)."""
    item = {PK: job_pk(job_id), SK: delivery_sk(record.delivery_id), "type": "delivery",
            **record.model_dump(mode="json")}
    if expires:
        item[TTL_ATTRIBUTE] = expires
    return {name: value for name, value in item.items() if value is not None}


def delivery_from_item(item: dict[str, Any]) -> DeliveryRecord:
    values = {name: float(value) if isinstance(value, Decimal) else value
              for name in DeliveryRecord.model_fields if (value := item.get(name)) is not None}
    return DeliveryRecord.model_validate(values)


def _dynamo_value(value: Any) -> Any:
    """Python values as DynamoDB takes them: floats as exact Decimals, enums as their values."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, (ChunkState, JobState, FailureKind, DeliveryState)):
        return value.value
    return value


def kept(name: str, value: Any) -> Any:
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
