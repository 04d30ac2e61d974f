"""S3Storage: per-key DeleteObjects errors (botocore's Stubber: moto never reports them) and chunk
integrity from S3's own SHA256 checksums (moto)."""

from __future__ import annotations

import base64
import hashlib
import logging
import os

import pytest

from framefarm.errors import StorageError
from framefarm.storage.s3 import S3Storage, sha256_checksum
from tests.helpers import corrupt_s3_object, stubbed_client

MB = 2**20


@pytest.fixture
def stubbed(aws_credentials):
    with stubbed_client("s3") as pair:
        yield pair


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


@pytest.fixture
def chunk_file(tmp_path):
    def make(size: int):
        path = tmp_path / f"chunk-{size}.mp4"
        path.write_bytes(os.urandom(size))
        return path

    return make


def test_a_file_goes_up_with_its_sha256_and_s3_stores_it(bucket, s3_client, chunk_file):
    # GIVEN a chunk small enough for one PutObject
    source = chunk_file(3 * MB)
    # WHEN it is stored
    S3Storage(bucket, client=s3_client, multipart_mb=5).put_file("jobs/j/chunks/00000.mp4", source)
    # THEN S3 holds the SHA256 of the whole file
    head = s3_client.head_object(Bucket=bucket, Key="jobs/j/chunks/00000.mp4", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(source.read_bytes()).digest()).decode()


def test_a_multipart_file_is_checked_part_by_part_against_its_composite_sha256(bucket, s3_client, chunk_file,
                                                                               tmp_path):
    # GIVEN a chunk uploaded in three 5 MB parts
    source = chunk_file(11 * MB)
    storage = S3Storage(bucket, client=s3_client, multipart_mb=5)
    storage.put_file("jobs/j/chunks/00001.mp4", source)
    head = s3_client.head_object(Bucket=bucket, Key="jobs/j/chunks/00001.mp4", ChecksumMode="ENABLED")
    # THEN S3's checksum is the composite one (SHA256 of the parts' SHA256s), and a download passes it
    assert head["ChecksumSHA256"].partition("-")[0] == sha256_checksum(source, part_size=5 * MB)
    storage.get_file("jobs/j/chunks/00001.mp4", tmp_path / "down.mp4")
    assert (tmp_path / "down.mp4").read_bytes() == source.read_bytes()


def test_a_file_of_exactly_the_multipart_threshold_goes_up_as_one_part_and_downloads(bucket, s3_client, chunk_file,
                                                                                     tmp_path):
    # GIVEN a chunk of exactly the multipart threshold: a multipart upload of a single part
    storage = S3Storage(bucket, client=s3_client, multipart_mb=5)
    source = chunk_file(5 * MB)
    storage.put_file("jobs/j/chunks/00009.mp4", source)
    # WHEN it is downloaded, THEN its composite checksum of one part is checked as such, and passes
    storage.get_file("jobs/j/chunks/00009.mp4", tmp_path / "down.mp4")
    assert (tmp_path / "down.mp4").read_bytes() == source.read_bytes()


@pytest.mark.parametrize("size", [3 * MB, 11 * MB], ids=["one-part", "multipart"])
def test_a_download_that_does_not_match_s3s_checksum_is_refused(bucket, s3_client, chunk_file, tmp_path, size):
    # GIVEN a stored chunk whose bytes went bad after S3 took its checksum
    storage = S3Storage(bucket, client=s3_client, multipart_mb=5)
    storage.put_file("jobs/j/chunks/00002.mp4", chunk_file(size))
    corrupt_s3_object(bucket, "jobs/j/chunks/00002.mp4")
    # WHEN it is downloaded, THEN it is refused naming the object, and no file is left for anyone to use
    target = tmp_path / "down.mp4"
    with pytest.raises(StorageError, match=rf"^s3://{bucket}/jobs/j/chunks/00002.mp4 is corrupt: "):
        storage.get_file("jobs/j/chunks/00002.mp4", target)
    assert not target.exists()


def test_an_object_without_a_sha256_is_downloaded_with_a_warning(bucket, s3_client, tmp_path, caplog):
    # GIVEN an object put by something that asked S3 for no SHA256 (an older framefarm, another tool)
    s3_client.put_object(Bucket=bucket, Key="jobs/j/chunks/00003.mp4", Body=b"older chunk")
    # WHEN it is downloaded, THEN it arrives, and a warning says it could not be verified
    with caplog.at_level(logging.WARNING, logger="framefarm.storage.s3"):
        S3Storage(bucket, client=s3_client).get_file("jobs/j/chunks/00003.mp4", tmp_path / "old.mp4")
    assert (tmp_path / "old.mp4").read_bytes() == b"older chunk"
    assert caplog.messages == [f"s3://{bucket}/jobs/j/chunks/00003.mp4 has no SHA256 checksum in S3: not verified"]


class CountingSha256:
    """hashlib.sha256 that adds every byte it hashes to a shared count."""

    hashed = 0
    real = hashlib.sha256

    def __init__(self, data: bytes = b"") -> None:
        self._digest = CountingSha256.real()
        self.update(data)

    def update(self, data) -> None:
        CountingSha256.hashed += len(data)
        self._digest.update(data)

    def digest(self) -> bytes:
        return self._digest.digest()


@pytest.mark.parametrize("size", [3 * MB, 11 * MB], ids=["one-part", "multipart"])
def test_a_download_hashes_each_byte_once_as_it_arrives(bucket, s3_client, chunk_file, tmp_path, monkeypatch, size):
    import botocore.httpchecksum

    import framefarm.storage.s3 as s3_module

    # GIVEN a stored chunk, and every SHA256 that botocore or framefarm computes counted
    storage = S3Storage(bucket, client=s3_client, multipart_mb=5)
    storage.put_file("jobs/j/chunks/00004.mp4", chunk_file(size))
    CountingSha256.hashed = 0
    monkeypatch.setattr(botocore.httpchecksum, "sha256", CountingSha256)
    monkeypatch.setattr(s3_module.hashlib, "sha256", CountingSha256)
    # WHEN it is downloaded and checked
    storage.get_file("jobs/j/chunks/00004.mp4", tmp_path / "down.mp4")
    # THEN its bytes were hashed once (no second pass over the file), beyond the parts' digests
    assert size <= CountingSha256.hashed < size + 1024
    assert (tmp_path / "down.mp4").stat().st_size == size


def test_a_client_made_here_keeps_connections_for_a_merges_record_reads(bucket, s3_client):
    # GIVEN S3 storage on a client of its own making, and one on a client given to it (botocore's default pool)
    own, given = S3Storage(bucket), S3Storage(bucket, client=s3_client)
    # WHEN asked how many requests are worth sending at once, THEN each says what its client keeps open
    assert own.parallel_requests == own.client.meta.config.max_pool_connections == 64
    assert given.parallel_requests == 10
