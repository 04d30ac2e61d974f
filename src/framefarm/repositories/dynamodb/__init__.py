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

The package: ``table`` (key and index names, the table as the stack creates it), ``items`` (the item
codec: jobs and chunk records to and from items, tails, sizes), ``expressions`` (the conditional
writes), ``specs`` (where a job item finds its spec), ``paging`` (paged reads, batched writes) and
``repository`` (DynamoDBJobRepository). Their public names are importable from here.
"""

from __future__ import annotations

from framefarm.repositories.dynamodb.expressions import ADDED_FIELDS, COUNTERS, LEASE_FREE
from framefarm.repositories.dynamodb.items import ITEM_ERROR_CHARS, ITEM_TAIL_CHARS, RECORD_FIELDS, ItemCodec, item_size
from framefarm.repositories.dynamodb.paging import UNPROCESSED_BACKOFF, UNPROCESSED_TRIES
from framefarm.repositories.dynamodb.repository import (
    ALREADY_DONE,
    CONFLICT_BACKOFF,
    FINE,
    MAX_TRANSACTION_ITEMS,
    RECORDING_ITEMS,
    RETRIED,
    DynamoDBJobRepository,
)
from framefarm.repositories.dynamodb.specs import INLINE_SPEC_LIMIT
from framefarm.repositories.dynamodb.table import (
    CHUNK_PREFIX,
    GSI_NAME,
    GSI_PK,
    GSI_SK,
    JOBS_PARTITION,
    LISTED,
    META,
    PK,
    SK,
    TTL_ATTRIBUTE,
    chunk_sk,
    create_table,
    item_key,
    job_pk,
)

__all__ = [
    "ADDED_FIELDS",
    "ALREADY_DONE",
    "CHUNK_PREFIX",
    "CONFLICT_BACKOFF",
    "COUNTERS",
    "FINE",
    "GSI_NAME",
    "GSI_PK",
    "GSI_SK",
    "INLINE_SPEC_LIMIT",
    "ITEM_ERROR_CHARS",
    "ITEM_TAIL_CHARS",
    "JOBS_PARTITION",
    "LEASE_FREE",
    "LISTED",
    "MAX_TRANSACTION_ITEMS",
    "META",
    "PK",
    "RECORDING_ITEMS",
    "RECORD_FIELDS",
    "RETRIED",
    "SK",
    "TTL_ATTRIBUTE",
    "UNPROCESSED_BACKOFF",
    "UNPROCESSED_TRIES",
    "DynamoDBJobRepository",
    "ItemCodec",
    "chunk_sk",
    "create_table",
    "item_key",
    "item_size",
    "job_pk",
]
