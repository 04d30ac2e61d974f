"""`framefarm render --frames A-B`: a part of a job, for checking a scene before rendering it all."""

from __future__ import annotations

import pytest

from framefarm import JobState
from framefarm.stitch.probe import packets, probe
from tests.integration.test_cli import framefarm, shortened_example, store


def test_frames_render_only_the_chunks_covering_them_and_the_video_holds_just_those(tmp_path):
    # GIVEN the example job shortened to 90 frames in 3 chunks of 30, with its sine track
    job = shortened_example(tmp_path)
    # WHEN frames 35-40 are rendered
    result = framefarm("render", str(job), "--job-id", "scene", "--frames", "35-40")
    # THEN only chunk 1 (frames 30-59) is in the job, and the video is its 30 frames, without audio,
    # beside the whole video's place, never over it
    assert result.returncode == 0, result.stderr
    assert "job scene: 1 chunks, 30 frames (frames 30-59) →" in " ".join(result.stderr.split())
    status = store().require("scene")
    assert status.state is JobState.COMPLETED and [c.chunk_id for c in status.chunks] == [1]
    video = tmp_path / "out" / "testsrc.frames-30-59.mp4"
    assert len(packets(video)) == 30 and not (tmp_path / "out" / "testsrc.mp4").exists()
    assert probe(video).audio_codec is None


@pytest.mark.parametrize(("frames", "message"), [
    ("40-35", "error: frames: 40-35 ends before it starts; give A-B with A <= B"),
    ("80-95", "error: frames: 80-95 is outside job scene's frames 0-89"),
])
def test_a_bad_frame_range_is_one_line_exit_2_before_anything_is_stored(tmp_path, frames, message):
    result = framefarm("render", str(shortened_example(tmp_path)), "--job-id", "scene", "--frames", frames)
    assert result.returncode == 2 and result.stderr.strip() == message, result.stderr
    assert store().get("scene") is None


def test_a_frame_range_that_is_not_a_range_is_a_usage_error(tmp_path):
    result = framefarm("render", str(shortened_example(tmp_path)), "--frames", "35")
    assert result.returncode == 2 and "'35' is not a frame range; give A-B, e.g. 0-149" in result.stderr


def test_render_help_says_the_video_holds_just_the_chunks():
    assert "the video then holds just those chunks" in " ".join(framefarm("render", "--help").stdout.split())
