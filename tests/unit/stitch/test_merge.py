import sys

import pytest

from framefarm import plan_job
from framefarm.errors import StitchError
from framefarm.stitch.merge import S3MergeAdapter
from framefarm.storage.keys import chunk_key
from framefarm.storage.local import LocalStorage
from tests.helpers import RecordingStitcher


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
