import os
import sys

import pytest

from framefarm import plan_job
from framefarm.errors import StitchError
from framefarm.stitch.merge import S3MergeAdapter
from framefarm.storage.keys import chunk_key
from framefarm.storage.local import LocalStorage
from tests.helpers import RecordingStitcher, corrupt_s3_object


def test_a_failing_audio_track_is_named_with_its_stderr(tmp_path):
    # GIVEN a job whose chunks are all in the store, and whose audio command fails
    spec = plan_job({"id": "sound", "width": 64, "height": 48, "fps": 10, "total_frames": 20, "frames_per_chunk": 10,
                     "command": "render {output}",
                     "audio": [sys.executable, "-c", "import sys; sys.exit('no such synth: moog')"]})
    storage = LocalStorage(tmp_path / "store")
    for chunk in spec.chunks:
        storage.put_bytes(chunk_key(spec.id, chunk.id, chunk.output_file), b"chunk")
    stitcher = RecordingStitcher()
    # WHEN it is merged, THEN the error says which step failed and why, and nothing was stitched
    with pytest.raises(StitchError, match=r"^job sound: audio track failed: no such synth: moog$"):
        S3MergeAdapter(storage, stitcher=stitcher).merge(spec, tmp_path / "out.mp4")
    assert stitcher.calls == []


def test_a_chunk_that_does_not_match_s3s_checksum_is_refused_naming_it(bucket, s3_client, tmp_path):
    from framefarm.storage.s3 import S3Storage

    # GIVEN a job's two chunks in S3, uploaded in parts (their ETags are no MD5), chunk 1 gone bad since
    spec = plan_job({"id": "bad", "width": 64, "height": 48, "fps": 10, "total_frames": 20, "frames_per_chunk": 10,
                     "command": "render {output}"})
    storage = S3Storage(bucket, client=s3_client, multipart_mb=5)
    for chunk in spec.chunks:
        source = tmp_path / f"{chunk.id}.mp4"
        source.write_bytes(os.urandom(6 * 2**20))
        storage.put_file(chunk_key(spec.id, chunk.id, chunk.output_file), source)
    corrupt_s3_object(bucket, chunk_key(spec.id, 1, spec.chunk(1).output_file))
    stitcher = RecordingStitcher()
    # WHEN the job is merged, THEN chunk 1 is named as corrupt and nothing is stitched
    with pytest.raises(StitchError, match=rf"^chunk 1: s3://{bucket}/jobs/bad/chunks/00001.mp4 is corrupt: its SHA256"):
        S3MergeAdapter(storage, stitcher=stitcher).merge(spec, tmp_path / "out.mp4")
    assert stitcher.calls == []
