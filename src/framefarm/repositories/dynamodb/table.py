"""The table's shape: key and index names, the key of each item, and the table as the CDK stack
creates it (the stack, devcloud and tests all use these names)."""

from __future__ import annotations

from typing import Any

PK, SK, GSI_NAME, GSI_PK, GSI_SK, TTL_ATTRIBUTE = "PK", "SK", "by-created", "GSI1PK", "GSI1SK", "expires_at"
META = "META"
# What a listing shows, and what a job's summary needs (its spec is read from spec_url when asked for).
LISTED = ("job_id", "state", "total_chunks", "completed_chunks", "failed_attempts", "total_duration_ms",
          "total_billed_duration_ms", "cost_usd", "error", "output", "requested", "created_at", "updated_at",
          "spec_url", "spec_sha256")
CHUNK_PREFIX = "CHUNK#"
DELIVERY_PREFIX = "DELIVERY#"  # a webhook delivery of the job: PK=JOB#<id>, SK=DELIVERY#<delivery id>
JOBS_PARTITION = "JOBS"


def job_pk(job_id: str) -> str:
    return f"JOB#{job_id}"


def chunk_sk(chunk_id: int) -> str:
    return f"{CHUNK_PREFIX}{chunk_id:05d}"


def delivery_sk(delivery_id: str) -> str:
    return f"{DELIVERY_PREFIX}{delivery_id}"


def item_key(job_id: str, sort_key: str) -> dict[str, Any]:
    """An item's key in the wire format."""
    return {PK: {"S": job_pk(job_id)}, SK: {"S": sort_key}}


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
