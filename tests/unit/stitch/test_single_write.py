"""The stitch writes its output once: the index (moov) in space reserved at the front, no +faststart
rewrite; the frames and the media data are today's, byte for byte (checked against today's command:
ffmpeg's concat, then +faststart)."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import pytest

from framefarm import FfmpegStitcher
from framefarm.stitch.probe import decoded_audio_samples, packets, probe
from tests.helpers import CommandLog, atoms, media_data, todays_stitch


def framemd5(ffmpeg: str, path: Path, stream: str) -> list[str]:
    listed = subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(path), "-map", f"0:{stream}:0", "-f", "framemd5",
                             "-"], capture_output=True, check=True).stdout.decode().splitlines()
    return [line for line in listed if not line.startswith("#")]


@pytest.fixture
def sine(tmp_path, ffmpeg):
    audio = tmp_path / "audio.m4a"
    subprocess.run([ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "sine=sample_rate=48000:duration=3",
                    "-c:a", "aac", str(audio)], check=True)
    return audio


@pytest.mark.parametrize("with_audio", [False, True], ids=["video", "video+audio"])
def test_the_output_is_written_once_with_todays_frames_and_media_data(tmp_path, encode_chunk, ffmpeg, sine,
                                                                      with_audio):
    # GIVEN three chunks (10, 10 and 7 frames), and the audio track when there is one
    chunks = [encode_chunk(tmp_path / f"{i}.mp4", start, count) for i, (start, count) in
              enumerate([(0, 10), (10, 10), (20, 7)])]
    audio = sine if with_audio else None
    runner = CommandLog()
    # WHEN they are stitched
    output = FfmpegStitcher(runner=runner).stitch(chunks, tmp_path / "final.mp4", audio=audio)
    # THEN no ffmpeg wrote the output (the direct join copied the samples: no concat, no second pass to
    # move the index), and its index is in front of the media data
    assert not [command for command in runner.commands if str(output.with_name(".final.partial.mp4")) in command]
    kinds = [kind for kind, *_ in atoms(output)]
    assert kinds.index("moov") < kinds.index("mdat")
    # AND the video is today's stitch but for the index's place: the same frames, the same media bytes
    today = todays_stitch(ffmpeg, chunks, tmp_path / "today.mp4", audio)
    assert framemd5(ffmpeg, output, "v") == framemd5(ffmpeg, today, "v")
    assert media_data(output) == media_data(today)
    assert probe(output).duration == probe(today).duration
    video = packets(output)
    assert len(video) == 27
    assert all(b.dts > a.dts for a, b in itertools.pairwise(video))
    if with_audio:
        assert decoded_audio_samples(output) == decoded_audio_samples(today) == 3 * 48000
