"""S3Storage behaviour that moto does not produce: per-key DeleteObjects errors (botocore's Stubber)."""

from __future__ import annotations

import pytest

from framefarm.errors import StorageError
from framefarm.storage.s3 import S3Storage


@pytest.fixture
def stubbed(aws_credentials):
    import boto3
    from botocore.stub import Stubber

    client = boto3.client("s3", region_name="us-east-1")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def listing(*keys: str) -> dict:
    return {"IsTruncated": False, "KeyCount": len(keys),
            "Contents": [{"Key": key, "Size": 9, "ETag": '"0"'} for key in keys]}


def test_a_key_delete_objects_refuses_is_an_error_naming_it(stubbed):
    client, stub = stubbed
    # GIVEN S3 deletes one object under the prefix and refuses the other (DeleteObjects itself succeeds)
    stub.add_response("list_objects_v2", listing("jobs/j/cancel", "jobs/j/cancel.old"))
    stub.add_response("delete_objects", {
        "Deleted": [{"Key": "jobs/j/cancel.old"}],
        "Errors": [{"Key": "jobs/j/cancel", "Code": "AccessDenied", "Message": "Access Denied"}]})
    # WHEN the prefix is deleted, THEN it raises, naming the key that is still there and why
    with pytest.raises(StorageError) as raised:
        S3Storage("bucket", client=client).delete_prefix("jobs/j/cancel")
    assert str(raised.value) == ("S3 did not delete 1 of 2 objects under s3://bucket/jobs/j/cancel: "
                                 "jobs/j/cancel (AccessDenied: Access Denied)")


def test_every_batch_is_tried_before_the_refusals_are_reported(stubbed):
    client, stub = stubbed
    # GIVEN 1,001 objects (two DeleteObjects batches), of which S3 refuses one in each batch
    keys = [f"jobs/j/logs/{i:05d}.log" for i in range(1001)]
    stub.add_response("list_objects_v2", listing(*keys))
    stub.add_response("delete_objects", {"Errors": [{"Key": keys[0], "Code": "InternalError", "Message": "x"}]})
    stub.add_response("delete_objects", {"Errors": [{"Key": keys[1000], "Code": "SlowDown", "Message": "y"}]})
    # WHEN the prefix is deleted, THEN both batches were sent and the error counts both refusals
    with pytest.raises(StorageError, match=r"did not delete 2 of 1001 objects .*00000\.log \(InternalError: x\) …$"):
        S3Storage("bucket", client=client).delete_prefix("jobs/j/logs/")
