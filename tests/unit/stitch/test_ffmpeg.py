"""FfmpegStitcher and probing, on real small encodes."""

from __future__ import annotations

import itertools
import subprocess

import pytest

from framefarm import FfmpegStitcher, StitchError
from framefarm.stitch.arriving import Present
from framefarm.stitch.probe import decoded_audio_samples, packets, parse_probe_output, probe
from framefarm.stitch.records import read_record, write_record
from framefarm.storage.growing import UploadWhenWritten

FFMPEG_I_OUTPUT = """\
Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'x.mp4':
  Duration: 00:01:02.50, start: 0.000000, bitrate: 390 kb/s
  Stream #0:0[0x1](und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(tv, bt709, progressive), 1920x1080 [SAR 1:1 DAR 16:9], 307 kb/s, 29.97 fps, 29.97 tbr, 30k tbn (default)
  Stream #0:1[0x2](und): Audio: aac (LC) (mp4a / 0x6134706D), 48000 Hz, stereo, fltp, 69 kb/s (default)
"""


def test_parse_probe_output_handles_nested_commas_and_fractional_rates():
    info = parse_probe_output(FFMPEG_I_OUTPUT, "x.mp4")
    assert (info.duration, info.video_codec, info.pix_fmt, info.width, info.height, info.fps) == (
        62.5, "h264", "yuv420p", 1920, 1080, 29.97)
    assert (info.audio_codec, info.sample_rate) == ("aac", 48000)


def test_probe_and_packets_of_a_real_chunk(tmp_path, encode_chunk):
    path = encode_chunk(tmp_path / "c.mp4", 0, 25)
    info = probe(path)
    assert (info.video_codec, info.width, info.height, info.fps, info.pix_fmt) == ("h264", 160, 120, 10.0, "yuv420p")
    assert len(packets(path)) == 25


def test_stitch_joins_chunks_frame_exact_with_monotonic_timestamps(tmp_path, encode_chunk):
    # GIVEN three chunks of 10, 10 and 7 frames
    chunks = [encode_chunk(tmp_path / f"{i}.mp4", start, count) for i, (start, count) in
              enumerate([(0, 10), (10, 10), (20, 7)])]
    # WHEN they are stitched
    output = FfmpegStitcher().stitch(chunks, tmp_path / "out" / "final.mp4")
    # THEN the result has every frame once, in increasing decode order, and the right duration
    video = packets(output)
    assert len(video) == 27
    assert all(b.dts > a.dts for a, b in itertools.pairwise(video))
    assert probe(output).duration == pytest.approx(2.7, abs=0.1)
    assert not list((tmp_path / "out").glob(".*partial*"))


def test_stitch_muxes_one_audio_track_sample_exact(tmp_path, encode_chunk, ffmpeg):
    chunks = [encode_chunk(tmp_path / f"{i}.mp4", i * 10, 10) for i in range(3)]
    audio = tmp_path / "audio.m4a"
    subprocess.run([ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "sine=sample_rate=48000:duration=3",
                    "-c:a", "aac", str(audio)], check=True)
    output = FfmpegStitcher().stitch(chunks, tmp_path / "final.mp4", audio=audio)
    assert probe(output).audio_codec == "aac"
    assert decoded_audio_samples(output) == 3 * 48000
    assert len(packets(output)) == 30


def test_missing_chunk_is_named(tmp_path, encode_chunk):
    chunks = [encode_chunk(tmp_path / "0.mp4"), tmp_path / "chunks" / "00001.mp4"]
    with pytest.raises(StitchError, match=r"chunk output missing: .*chunks/00001.mp4"):
        FfmpegStitcher().stitch(chunks, tmp_path / "final.mp4")
    assert not (tmp_path / "final.mp4").exists()


def test_corrupt_chunk_is_named(tmp_path, encode_chunk):
    bad = tmp_path / "00001.mp4"
    bad.write_bytes(b"\x00not a video" * 100)
    with pytest.raises(StitchError, match=r"00001.mp4: not a readable media file"):
        FfmpegStitcher().stitch([encode_chunk(tmp_path / "0.mp4"), bad], tmp_path / "final.mp4")


def test_empty_chunk_is_named(tmp_path, encode_chunk):
    empty = tmp_path / "00001.mp4"
    empty.write_bytes(b"")
    with pytest.raises(StitchError, match=r"chunk output is empty: .*00001.mp4"):
        FfmpegStitcher().stitch([encode_chunk(tmp_path / "0.mp4"), empty], tmp_path / "final.mp4")


@pytest.mark.parametrize(("change", "named"), [
    ({"size": "320x240"}, r"size 320x240 \(first chunk: 160x120\)"),
    ({"fps": 25}, r"frame rate 25 \(first chunk: 10\)"),
    ({"pix_fmt": "yuv444p"}, r"pixel format yuv444p \(first chunk: yuv420p\)"),
    ({"codec": "mpeg4"}, r"codec mpeg4 \(first chunk: h264\)"),
])
def test_mismatched_chunk_is_named_with_what_differs(tmp_path, encode_chunk, change, named):
    good = [encode_chunk(tmp_path / f"{i}.mp4", i * 10) for i in range(2)]
    odd = encode_chunk(tmp_path / "00002.mp4", 20, **change)
    with pytest.raises(StitchError, match=rf"chunk .*00002.mp4 cannot be joined with .*0.mp4: {named}"):
        FfmpegStitcher().stitch([*good, odd], tmp_path / "final.mp4")


def test_paths_with_quotes_and_spaces(tmp_path, encode_chunk):
    weird = tmp_path / "it's a dir"
    chunks = [encode_chunk(weird / f"chunk {i}.mp4", i * 10) for i in range(2)]
    output = FfmpegStitcher().stitch(chunks, weird / "final.mp4")
    assert len(packets(output)) == 20


def test_no_inputs_and_missing_audio(tmp_path, encode_chunk):
    with pytest.raises(StitchError, match="no chunk outputs"):
        FfmpegStitcher().stitch([], tmp_path / "o.mp4")
    with pytest.raises(StitchError, match="audio track missing"):
        FfmpegStitcher().stitch([encode_chunk(tmp_path / "0.mp4")], tmp_path / "o.mp4", audio=tmp_path / "a.m4a")




def test_an_ffmpeg_that_cannot_start_drops_the_upload_begun_for_its_output(tmp_path, encode_chunk):
    # GIVEN two recorded chunks (so nothing is probed) and an upload begun as the stitch writes its video
    chunks = [encode_chunk(tmp_path / f"{index}.mp4", index * 10) for index in range(2)]
    for chunk in chunks:
        write_record(chunk)
    finished = []

    class Upload(UploadWhenWritten):
        def finish(self, written):
            finished.append(written)

    # WHEN the stitch's ffmpeg (its concat: the direct join is off) cannot be started
    with pytest.raises(FileNotFoundError):
        FfmpegStitcher(str(tmp_path / "no-ffmpeg"), direct=False).stitch_arriving(
            Present(chunks, [read_record(chunk) for chunk in chunks]), tmp_path / "final.mp4",
            upload=Upload(None, "jobs/j/final.mp4"))
    # THEN the upload is told the video was not written (a multipart one is aborted, its follower stops)
    assert finished == [False]
    assert not (tmp_path / "final.mp4").exists()
