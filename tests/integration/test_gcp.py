"""Stitching a Cloud Run job's chunks from GCS through the CLI (GCS emulator on 127.0.0.1)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from framefarm import plan_job
from framefarm.repositories.base import put_spec
from framefarm.stitch.probe import packets
from framefarm.storage.gcs import GcsStorage
from framefarm.storage.keys import chunk_key


@pytest.mark.slow
def test_stitch_from_gcs(gcs_endpoint, gcs_client, gcs_bucket, encode_chunk, tmp_path):
    # GIVEN a job's spec and its three chunks in a GCS bucket, as Cloud Run workers leave them
    spec = plan_job({"id": "gcs-job", "width": 160, "height": 120, "fps": 10, "total_frames": 30,
                     "frames_per_chunk": 10, "command": "render {output}"})
    storage = GcsStorage(gcs_bucket, client=gcs_client)
    put_spec(storage, spec)
    for chunk in spec.chunks:
        local = encode_chunk(tmp_path / f"{chunk.id}.mp4", chunk.start_frame, chunk.frame_count)
        storage.put_file(chunk_key(spec.id, chunk.id, chunk.output_file), local)
    # WHEN `framefarm stitch --gcs-bucket` runs
    output = tmp_path / "gcs.mp4"
    result = subprocess.run([sys.executable, "-m", "framefarm", "stitch", "gcs-job", "--gcs-bucket", gcs_bucket,
                             "-o", str(output)], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "STORAGE_EMULATOR_HOST": gcs_endpoint,
                                 "GOOGLE_CLOUD_PROJECT": "framefarm-test"})
    # THEN the video has every frame
    assert result.returncode == 0, result.stderr
    assert len(packets(output)) == 30
    # AND a missing chunk is named
    storage.delete_prefix("jobs/gcs-job/chunks/00002.mp4")
    missing = subprocess.run([sys.executable, "-m", "framefarm", "stitch", "gcs-job", "--gcs-bucket", gcs_bucket,
                              "-o", str(tmp_path / "again.mp4")], capture_output=True, text=True, timeout=120,
                             env={**os.environ, "STORAGE_EMULATOR_HOST": gcs_endpoint,
                                  "GOOGLE_CLOUD_PROJECT": "framefarm-test"})
    assert missing.returncode == 1 and "1 of 3 chunks are not in gs://" in missing.stderr
