"""Reads across pages and writes in batches: a job's items by Query (every page), and BatchWriteItem
in batches of 25 whose unprocessed items are sent again, with backoff, a bounded number of times."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from framefarm.backoff import Backoff, no_jitter
from framefarm.errors import FramefarmError
from framefarm.repositories.dynamodb.table import CHUNK_PREFIX, job_pk

UNPROCESSED_BACKOFF = Backoff(0.05, 2.0, no_jitter)  # before re-sending a batch's unprocessed items
UNPROCESSED_TRIES = 8  # BatchWriteItem calls per batch of 25 before giving up on its unprocessed items (~5 s)


def query_job(client: Any, table: str, job_id: str, *, decode: Callable[[dict[str, Any]], dict[str, Any]],
              chunks_only: bool = False, projection: str | None = None, prefix: str | None = None
              ) -> Iterator[dict[str, Any]]:
    """The job's items (or only its chunk items, or those whose sort key starts with ``prefix``), decoded,
    read consistently across every page."""
    request: dict[str, Any] = {"TableName": table, "ConsistentRead": True,
                               "KeyConditionExpression": "PK = :pk",
                               "ExpressionAttributeValues": {":pk": {"S": job_pk(job_id)}}}
    prefix = CHUNK_PREFIX if chunks_only else prefix
    if prefix:
        request["KeyConditionExpression"] += " AND begins_with(SK, :prefix)"
        request["ExpressionAttributeValues"][":prefix"] = {"S": prefix}
    if projection:
        request["ProjectionExpression"] = projection
        request["ExpressionAttributeNames"] = {f"#{name}": name for name in
                                               (part.strip().lstrip("#") for part in projection.split(","))}
    while True:
        page = client.query(**request)
        for item in page.get("Items", []):
            yield decode(item)
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def batch_write(client: Any, table: str, job_id: str, requests: list[dict[str, Any]], *,
                sleep: Callable[[float], None]) -> None:
    """Send ``requests`` (PutRequest / DeleteRequest) 25 at a time; FramefarmError if some stay unprocessed."""
    for start in range(0, len(requests), 25):  # BatchWriteItem takes at most 25
        pending = {table: requests[start:start + 25]}
        for tries in range(1, UNPROCESSED_TRIES + 1):
            answer = client.batch_write_item(RequestItems=pending)
            pending = answer.get("UnprocessedItems") or {}
            if not pending:
                break
            if tries == UNPROCESSED_TRIES:
                left = sum(map(len, pending.values())) + max(0, len(requests) - start - 25)
                raise FramefarmError(f"job {job_id}: {left} of {len(requests)} item writes not done: DynamoDB "
                                     f"returned them unprocessed {tries} times (throttled); try again")
            sleep(UNPROCESSED_BACKOFF.delay(tries))
