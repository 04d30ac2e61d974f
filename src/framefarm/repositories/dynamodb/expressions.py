"""The conditional writes, as DynamoDB requests: recording an attempt (a chunk update and the job's
counters, one transaction), marking a chunk started, moving a job's state, taking its lease, and
reopening completed chunks. Every attribute is aliased (``#name``): DynamoDB reserves many plain
words (state, error, ...). The repository sends these and judges the answers."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

from framefarm.lease import Lease
from framefarm.repositories.dynamodb.items import kept
from framefarm.repositories.dynamodb.table import META, PK, TTL_ATTRIBUTE, chunk_sk, item_key
from framefarm.status import ChunkAttempt, ChunkStarted, JobState

Encode = Callable[[dict[str, Any]], dict[str, Any]]
# An update of the job item: UpdateExpression, ConditionExpression, attribute names and (plain) values.
JobUpdate = tuple[str, str, dict[str, str], dict[str, Any]]

LEASE_FREE = "(attribute_not_exists(#lease_until) OR #lease_until <= :free_at)"
ADDED_FIELDS = ("duration_ms", "billed_duration_ms", "cost_usd", "throttles")
COUNTERS = ("completed_chunks", "failed_attempts", "total_duration_ms", "total_billed_duration_ms", "cost_usd")


def started_update(table: str, job_id: str, event: ChunkStarted, *, expires: int, encode: Encode) -> dict[str, Any]:
    """UpdateItem marking a chunk running; its condition fails once the chunk has completed."""
    values = {":running": "running", ":at": event.at, ":cid": event.chunk_id, ":completed": "completed",
              ":chunk": "chunk", ":expires": expires, ":zero": 0}
    return {
        "TableName": table, "Key": item_key(job_id, chunk_sk(event.chunk_id)),
        "UpdateExpression": "SET #state = :running, #started_at = :at, #chunk_id = :cid, #type = :chunk, "
                            "#expires = if_not_exists(#expires, :expires), "
                            "#attempts = if_not_exists(#attempts, :zero)",
        "ConditionExpression": "attribute_not_exists(#state) OR #state <> :completed",
        "ExpressionAttributeNames": {"#state": "state", "#type": "type", "#started_at": "started_at",
                                     "#chunk_id": "chunk_id", "#expires": TTL_ATTRIBUTE, "#attempts": "attempts"},
        "ExpressionAttributeValues": encode(values),
    }


def recording_items(table: str, job_id: str, attempt: ChunkAttempt, *, expires: int, now: float,
                    encode: Encode) -> list[dict[str, Any]]:
    """The TransactWriteItems items recording ``attempt``: its chunk item, then the job item's counters."""
    names = {"#state": "state", "#attempts": "attempts", "#expires": TTL_ATTRIBUTE}
    values: dict[str, Any] = {":state": attempt.state.value, ":attempt": attempt.attempt,
                              ":cid": attempt.chunk_id, ":chunk": "chunk", ":completed": "completed",
                              ":expires": expires, ":zero": 0}
    sets = ["#state = :state", "#attempts = :attempt", "#chunk_id = :cid", "#type = :chunk",
            "#expires = if_not_exists(#expires, :expires)"]
    names.update({"#chunk_id": "chunk_id", "#type": "type"})
    for name in ADDED_FIELDS:
        names[f"#{name}"] = name
        sets.append(f"#{name} = if_not_exists(#{name}, :zero) + :{name}")
        values[f":{name}"] = getattr(attempt, name)
    replaced = ["memory_mb", "max_memory_used_mb", "init_duration_ms", "request_id", "stdout_tail",
                "stderr_tail", "error", "kind", "output", "finished_at"]
    if attempt.started_at is not None:
        replaced.append("started_at")
    for name in replaced:
        names[f"#{name}"] = name
        sets.append(f"#{name} = :{name}")
        values[f":{name}"] = kept(name, getattr(attempt, name))
    deltas = attempt.counter_deltas()
    counter_values = {f":{name}": deltas[name] for name in COUNTERS}
    counter_values[":updated"] = attempt.finished_at or now
    chunk_update = {
        "TableName": table, "Key": item_key(job_id, chunk_sk(attempt.chunk_id)),
        "UpdateExpression": "SET " + ", ".join(sets),
        # A missing attribute compares false in DynamoDB, so "no attempts yet" must be spelled out.
        "ConditionExpression": "attribute_not_exists(#state) OR (#state <> :completed AND "
                               "(attribute_not_exists(#attempts) OR #attempts < :attempt))",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": encode(values),
    }
    job_update = {
        "TableName": table, "Key": item_key(job_id, META),
        "UpdateExpression": "ADD " + ", ".join(f"#{name} :{name}" for name in COUNTERS)
                            + " SET #updated_at = :updated",
        "ConditionExpression": f"attribute_exists({PK})",
        "ExpressionAttributeNames": {**{f"#{name}": name for name in COUNTERS}, "#updated_at": "updated_at"},
        "ExpressionAttributeValues": encode(counter_values),
    }
    return [{"Update": chunk_update}, {"Update": job_update}]


def state_update(state: JobState, *, now: float, error: str | None, output: str | None,
                 expected: Collection[JobState] | None, owner: str | None, free_at: float | None,
                 release: bool) -> JobUpdate:
    """A job's move to ``state``, conditional on ``expected`` states, the lease's ``owner`` or its
    being free at ``free_at``; a stopped (or ``release``d) job drops its lease."""
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
    return (f"SET {', '.join(sets)} REMOVE {', '.join(removes)}", " AND ".join(conditions), names, values)


def lease_take(lease: Lease, *, now: float, expected: Collection[JobState], successor_of: str | None) -> JobUpdate:
    """A job's lease taken by ``lease``'s owner: free, expired, its own, or handed to it by ``successor_of``."""
    placeholders = [f":expected{i}" for i, _ in enumerate(expected)]
    values: dict[str, Any] = {name: allowed.value for name, allowed in zip(placeholders, expected, strict=True)}
    values.update({":running": JobState.RUNNING.value, ":now": now, ":free_at": now, ":owner": lease.owner,
                   ":until": lease.until, ":successor_of": successor_of or lease.owner})
    return (
        "SET #state = :running, #updated_at = :now, #heartbeat_at = :now, #lease_owner = :owner, "
        "#lease_until = :until REMOVE #error",
        f"attribute_exists({PK}) AND #state IN ({', '.join(placeholders)}) AND "
        f"({LEASE_FREE} OR #lease_owner = :owner OR #lease_owner = :successor_of)",
        {"#state": "state", "#updated_at": "updated_at", "#heartbeat_at": "heartbeat_at", "#error": "error",
         "#lease_owner": "lease_owner", "#lease_until": "lease_until"},
        values)


def reopen_items(table: str, job_id: str, reopened: Sequence[int], *, state: JobState, now: float,
                 expected: Collection[JobState], gone_owner: str | None, encode: Encode) -> list[dict[str, Any]]:
    """TransactWriteItems items putting ``reopened`` (completed) chunks back to pending and the job into
    ``state``, if it is in an ``expected`` state and its lease is free or held by ``gone_owner``."""
    allowed = {f":expected{i}": allowed.value for i, allowed in enumerate(expected)}
    job_update = {
        "TableName": table, "Key": item_key(job_id, META),
        "UpdateExpression": "SET #state = :state, #updated_at = :now ADD #completed_chunks :reopened "
                            "REMOVE #error, #requested, #lease_owner, #lease_until",
        "ConditionExpression": f"attribute_exists({PK}) AND #state IN ({', '.join(allowed)}) "
                               f"AND ({LEASE_FREE} OR #lease_owner = :gone)",
        "ExpressionAttributeNames": {"#state": "state", "#updated_at": "updated_at", "#error": "error",
                                     "#requested": "requested", "#completed_chunks": "completed_chunks",
                                     "#lease_owner": "lease_owner", "#lease_until": "lease_until"},
        "ExpressionAttributeValues": encode({":state": state.value, ":now": now, ":free_at": now,
                                             ":gone": gone_owner or "-", ":reopened": -len(reopened), **allowed}),
    }
    chunk_updates = [{
        "TableName": table, "Key": item_key(job_id, chunk_sk(cid)),
        "UpdateExpression": "SET #state = :pending REMOVE #output",
        "ConditionExpression": "#state = :completed",
        "ExpressionAttributeNames": {"#state": "state", "#output": "output"},
        "ExpressionAttributeValues": encode({":pending": "pending", ":completed": "completed"}),
    } for cid in reopened]
    return [{"Update": job_update}, *({"Update": update} for update in chunk_updates)]
