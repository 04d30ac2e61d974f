"""`framefarm share`: the stitched video, not the audio track or an asset, locally and on S3."""

from __future__ import annotations

import time

import pytest

from framefarm.cli import main
from framefarm.repositories.dynamodb import DynamoDBJobRepository
from framefarm.spec import plan_job
from framefarm.status import JobRecord, JobState
from framefarm.storage.s3 import S3Storage
from tests.integration.test_cli import framefarm, python_job, shortened_example, store


def test_local_share_gives_the_stitched_video_not_the_audio_track(tmp_path):
    # GIVEN a local job with an audio track, rendered and stitched (its job directory holds audio.m4a)
    assert framefarm("render", str(shortened_example(tmp_path)), "--job-id", "local").returncode == 0
    video = (tmp_path / "out" / "testsrc.mp4").resolve()
    assert store().require("local").state is JobState.COMPLETED
    assert (tmp_path / "home" / "jobs" / "local" / "audio.m4a").is_file()
    # WHEN it is shared
    shared = framefarm("share", "local")
    # THEN the link is the stitched video's, and it says the local store signs no links
    assert shared.returncode == 0, shared.stderr
    assert shared.stdout.strip() == video.as_uri()
    assert "the local store signs no links" in " ".join(shared.stderr.split())


def test_local_share_of_a_job_not_stitched_says_how_to_stitch_it(tmp_path):
    job = python_job(tmp_path, "import sys; open(sys.argv[2], 'w').write('x')")
    assert framefarm("render", str(job), "--job-id", "unstitched", "--no-stitch").returncode == 0
    shared = framefarm("share", "unstitched")
    assert shared.returncode == 2
    assert shared.stderr.strip() == (f"error: job 'unstitched' has no stitched video at {tmp_path / 'o.mp4'}; "
                                     "run `framefarm stitch unstitched` first")


@pytest.fixture
def s3_job(bucket, table, dynamodb_client):
    """A job on S3 whose prefix holds its spec, assets, an audio track and two videos; its record names one."""
    storage = S3Storage(bucket)
    for name in ("spec.json", "assets.zip", "audio.m4a", "draft.mp4", "final.mp4"):
        storage.put_bytes(f"jobs/shared/{name}", name.encode())
    spec = plan_job({"width": 64, "height": 48, "fps": 10, "total_frames": 2, "frames_per_chunk": 1,
                     "command": "x {output}"}, job_id="shared")
    now = time.time()
    DynamoDBJobRepository(table, client=dynamodb_client, storage=storage).save(JobRecord(
        id="shared", spec=spec, state=JobState.COMPLETED, total_chunks=2, completed_chunks=2,
        output="/home/me/out/final.mp4", created_at=now, updated_at=now))
    return bucket, table


def test_s3_share_gives_the_recorded_video_and_never_the_audio_track(s3_job, capsys):
    bucket, table = s3_job
    # WHEN the job is shared with its record at hand, THEN the link is the recorded output's
    assert main(["share", "shared", "--bucket", bucket, "--table", table]) == 0
    assert "/jobs/shared/final.mp4?" in capsys.readouterr().out
    # WHEN only the bucket is given (no record), THEN the first video by name, never the audio track
    assert main(["share", "shared", "--bucket", bucket]) == 0
    assert "/jobs/shared/draft.mp4?" in capsys.readouterr().out
