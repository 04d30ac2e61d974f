"""Uploading a file while it is written: S3 gets each settled part as soon as it is written, the
unsettled head last, and the object is the finished file, checked like any other."""

from __future__ import annotations

import os

import pytest

from framefarm import LocalStorage
from framefarm.errors import StorageError
from framefarm.storage.s3 import S3Storage
from tests.helpers import eventually

MB = 2**20


def parts_received(s3_client, bucket: str, key: str) -> list[int]:
    uploads = s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    if not uploads:
        return []
    listed = s3_client.list_parts(Bucket=bucket, Key=key, UploadId=uploads[0]["UploadId"])
    return [part["PartNumber"] for part in listed.get("Parts", [])]


def test_settled_parts_go_up_while_the_file_is_written_and_the_head_last(bucket, s3_client, tmp_path):
    # GIVEN an upload of a file being written, whose first 100 bytes the writer rewrites at the end
    storage = S3Storage(bucket, client=s3_client, multipart_mb=5)
    video = tmp_path / ".final.partial.mp4"
    upload = storage.upload_as_written("jobs/j/final.mp4")
    upload.start(video, settled_from=100)
    body = os.urandom(12 * MB)
    with open(video, "wb") as stream:
        stream.write(bytes(100) + body[100:])
        stream.flush()
        # WHEN 12 MB are written, THEN part 2 (5-10 MB) goes up before the writer is done, part 1 not yet
        assert eventually(lambda: parts_received(s3_client, bucket, "jobs/j/final.mp4"), timeout=30,
                          what="a part uploaded while the file is written") == [2]
        stream.seek(0)
        stream.write(body[:100])  # the writer fills in its head
    upload.finish(written=True)
    # THEN the object is the finished file, in three parts, and a download checks it against its SHA256
    assert s3_client.head_object(Bucket=bucket, Key="jobs/j/final.mp4", PartNumber=1)["PartsCount"] == 3
    storage.get_file("jobs/j/final.mp4", tmp_path / "down.mp4")
    assert (tmp_path / "down.mp4").read_bytes() == body
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_writer_that_failed_leaves_no_object_and_no_open_upload(bucket, s3_client, tmp_path):
    # GIVEN an upload that has sent a part of a file whose writer then fails
    storage = S3Storage(bucket, client=s3_client, multipart_mb=5)
    video = tmp_path / ".final.partial.mp4"
    upload = storage.upload_as_written("jobs/j/final.mp4")
    upload.start(video, settled_from=100)
    video.write_bytes(os.urandom(11 * MB))
    eventually(lambda: parts_received(s3_client, bucket, "jobs/j/final.mp4"), timeout=30, what="a part uploaded")
    # WHEN it finishes unwritten, THEN nothing is stored and the multipart upload is aborted
    upload.finish(written=False)
    assert not storage.exists("jobs/j/final.mp4")
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_part_that_fails_to_go_up_is_an_error_naming_the_object(bucket, s3_client, tmp_path, monkeypatch):
    # GIVEN an upload whose part uploads S3 refuses
    storage = S3Storage(bucket, client=s3_client, multipart_mb=5)
    monkeypatch.setattr(s3_client, "upload_part", lambda **kwargs: (_ for _ in ()).throw(OSError("connection reset")))
    video = tmp_path / ".final.partial.mp4"
    upload = storage.upload_as_written("jobs/j/final.mp4")
    upload.start(video, settled_from=100)
    video.write_bytes(os.urandom(11 * MB))
    # WHEN the writer is done, THEN the error names the object and why, and no upload is left open
    with pytest.raises(StorageError, match=rf"^uploading s3://{bucket}/jobs/j/final.mp4 as it was written failed: "
                                           "connection reset$"):
        upload.finish(written=True)
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_store_without_parts_takes_the_finished_file(tmp_path):
    # GIVEN a local store and a file written in full
    storage = LocalStorage(tmp_path / "store")
    video = tmp_path / "final.mp4"
    upload = storage.upload_as_written("jobs/j/final.mp4")
    upload.start(video, settled_from=None)
    video.write_bytes(b"the whole video")
    # WHEN the writer is done, THEN the store holds it
    upload.finish(written=True)
    assert storage.get_bytes("jobs/j/final.mp4") == b"the whole video"
