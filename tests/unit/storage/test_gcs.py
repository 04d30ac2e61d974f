"""GcsStorage against a GCS emulator: downloads are checked as the bytes arrive."""

from __future__ import annotations

import logging

import pytest

from framefarm.errors import StorageError
from framefarm.storage.gcs import GcsStorage
from tests.helpers import corrupt_gcs_object


def test_an_object_whose_bytes_differ_from_its_checksum_is_refused_with_no_file_left(gcs_bucket, gcs_client,
                                                                                       tmp_path):
    # GIVEN an object in GCS whose served bytes no longer match the checksums GCS holds for it
    storage = GcsStorage(gcs_bucket, client=gcs_client)
    storage.put_bytes("jobs/a/chunks/00001.mp4", b"the chunk as rendered")
    corrupt_gcs_object(gcs_client, gcs_bucket, "jobs/a/chunks/00001.mp4")
    target = tmp_path / "down" / "00001.mp4"
    # WHEN it is downloaded, THEN one line names the object as corrupt, and no file is left to be taken for it
    with pytest.raises(StorageError, match=rf"^gs://{gcs_bucket}/jobs/a/chunks/00001.mp4 is corrupt: [^\n]+$"):
        storage.get_file("jobs/a/chunks/00001.mp4", target)
    assert not target.exists()


def test_a_sound_object_comes_down_whole_and_checked(gcs_bucket, gcs_client, tmp_path, caplog):
    # GIVEN an object in GCS
    storage = GcsStorage(gcs_bucket, client=gcs_client)
    storage.put_bytes("jobs/a/chunks/00001.mp4", b"the chunk as rendered")
    # WHEN it is downloaded, THEN its bytes are there, checked against the CRC32C that came with them
    with caplog.at_level(logging.WARNING, logger="framefarm.storage.gcs"):
        storage.get_file("jobs/a/chunks/00001.mp4", tmp_path / "00001.mp4")
    assert (tmp_path / "00001.mp4").read_bytes() == b"the chunk as rendered"
    assert "not verified" not in caplog.text
