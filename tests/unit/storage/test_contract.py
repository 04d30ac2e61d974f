"""One storage contract, every backend: local directory and S3 (moto)."""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from pathlib import Path

import pytest

from framefarm.storage import LocalStorage, storage_for_url
from framefarm.storage.s3 import S3Storage


@pytest.fixture(params=["local", "s3", "gcs"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalStorage(tmp_path / "store")
    if request.param == "gcs":
        from framefarm.storage.gcs import GcsStorage

        return GcsStorage(request.getfixturevalue("gcs_bucket"), client=request.getfixturevalue("gcs_client"))
    return S3Storage(request.getfixturevalue("bucket"), client=request.getfixturevalue("s3_client"),
                     multipart_mb=5)


def test_bytes_round_trip_and_missing_keys(store):
    store.put_bytes("jobs/a/spec.json", b'{"x": 1}')
    assert store.get_bytes("jobs/a/spec.json") == b'{"x": 1}'
    assert store.exists("jobs/a/spec.json") and not store.exists("jobs/a/nope")
    with pytest.raises(FileNotFoundError):
        store.get_bytes("jobs/a/nope")
    with pytest.raises(FileNotFoundError):
        store.get_file("jobs/a/nope", store_path := __import__("pathlib").Path("/tmp/ff-never"))
    assert not store_path.exists()


def test_large_files_round_trip_through_managed_transfers(store, tmp_path):
    # GIVEN a file larger than the 5 MB multipart threshold
    source = tmp_path / "chunk.mp4"
    data = os.urandom(6 * 1024 * 1024 + 123)
    source.write_bytes(data)
    # WHEN it goes up and comes back down
    store.put_file("jobs/a/chunks/00001.mp4", source)
    target = tmp_path / "down" / "00001.mp4"
    store.get_file("jobs/a/chunks/00001.mp4", target)
    # THEN it is byte-identical
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_a_readable_file_holds_the_objects_bytes_and_a_local_store_gives_its_own(store, tmp_path):
    # GIVEN an object in the store
    store.put_bytes("jobs/a/chunks/00001.mp4", b"chunk one")
    # WHEN it is asked for as a file to read
    found = store.readable_file("jobs/a/chunks/00001.mp4", tmp_path / "down" / "00001.mp4")
    # THEN the file holds its bytes: a local store's own file (nothing copied), any other store's a download
    assert found.read_bytes() == b"chunk one"
    if isinstance(store, LocalStorage):
        assert found == store.path("jobs/a/chunks/00001.mp4") and not (tmp_path / "down").exists()
    else:
        assert found == tmp_path / "down" / "00001.mp4"
    with pytest.raises(FileNotFoundError):
        store.readable_file("jobs/a/chunks/00002.mp4", tmp_path / "down" / "00002.mp4")
    assert not (tmp_path / "down" / "00002.mp4").exists()


def test_list_is_sorted_with_sizes_and_md5_when_known(store):
    store.put_bytes("jobs/a/chunks/00002.mp4", b"bb")
    store.put_bytes("jobs/a/chunks/00001.mp4", b"a")
    store.put_bytes("jobs/ab/chunks/00001.mp4", b"other job")
    listed = store.list("jobs/a/chunks/")
    assert [(obj.key, obj.size) for obj in listed] == [("jobs/a/chunks/00001.mp4", 1), ("jobs/a/chunks/00002.mp4", 2)]
    if isinstance(store, S3Storage):  # an S3 ETag is no MD5 under SSE-KMS or multipart; S3 checks SHA256 instead
        assert listed[0].md5 is None
    elif not isinstance(store, LocalStorage):
        assert listed[0].md5 == hashlib.md5(b"a").hexdigest()


def test_delete_prefix_removes_only_that_job(store):
    for key in ("jobs/a/spec.json", "jobs/a/chunks/00000.mp4", "jobs/ab/spec.json"):
        store.put_bytes(key, b"x")
    assert store.delete_prefix("jobs/a/") == 2
    assert [obj.key for obj in store.list("jobs/")] == ["jobs/ab/spec.json"]


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs/key", "jobs/../../x", ""])
def test_keys_cannot_escape_the_store(store, key):
    with pytest.raises(ValueError, match="storage key"):
        store.put_bytes(key, b"x")


def test_urls_name_the_object_and_resolve_back(store, s3_client, gcs_client):
    store.put_bytes("jobs/a/spec.json", b"{}")
    url = store.url("jobs/a/spec.json")
    resolved, key = storage_for_url(url, s3_client=s3_client, gcs_client=gcs_client)
    assert key == "jobs/a/spec.json" and resolved.get_bytes(key) == b"{}"


def test_unsupported_urls_are_rejected():
    with pytest.raises(ValueError, match="unsupported storage URL"):
        storage_for_url("ftp://host/x")


def test_s3_objects_carry_their_tags(bucket, s3_client, tmp_path):
    source = tmp_path / "c.mp4"
    source.write_bytes(b"chunk")
    S3Storage(bucket, client=s3_client).put_file("jobs/a/chunks/00000.mp4", source, tags={"framefarm-kind": "chunk"})
    tags = s3_client.get_object_tagging(Bucket=bucket, Key="jobs/a/chunks/00000.mp4")["TagSet"]
    assert tags == [{"Key": "framefarm-kind", "Value": "chunk"}]


def test_two_local_uploads_of_one_key_at_once_never_mix(tmp_path, monkeypatch):
    # GIVEN a slow upload of one chunk (an attempt given up on, still running) that stops halfway
    slow, fast = tmp_path / "slow.mp4", tmp_path / "fast.mp4"
    slow.write_bytes(b"S" * 1000)
    fast.write_bytes(b"F" * 1000)
    halfway, other_done = threading.Event(), threading.Event()
    real_copyfile = shutil.copyfile

    def copyfile(source, target):
        if Path(source) != slow:
            return real_copyfile(source, target)
        with open(target, "wb") as out:
            out.write(slow.read_bytes()[:500])
            out.flush()
            halfway.set()
            assert other_done.wait(30)
            out.write(slow.read_bytes()[500:])
        return target

    monkeypatch.setattr(shutil, "copyfile", copyfile)
    store = LocalStorage(tmp_path / "store")
    errors: list[BaseException] = []

    def upload_slowly():
        try:
            store.put_file("jobs/a/chunks/00001.mp4", slow)
        except BaseException as exc:
            errors.append(exc)

    slow_upload = threading.Thread(target=upload_slowly)
    slow_upload.start()
    assert halfway.wait(30)
    # WHEN the retry's upload of the same key happens meanwhile
    store.put_file("jobs/a/chunks/00001.mp4", fast)
    other_done.set()
    slow_upload.join(30)
    # THEN both uploads finish, and the key holds one of them whole, never a mix
    assert errors == []
    assert store.get_bytes("jobs/a/chunks/00001.mp4") in (b"S" * 1000, b"F" * 1000)
    assert [obj.key for obj in store.list("jobs/a/")] == ["jobs/a/chunks/00001.mp4"]
