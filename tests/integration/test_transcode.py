"""Chunked transcodes of a 20-s 1080p source with a burned-in frame counter (lavfi testsrc2), locally
and on devcloud's Lambda reading the source from moto's S3 over presigned URLs: frame-exact, every seam
checked, the bytes each chunk read counted at the storage server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import framefarm as ff
from framefarm.config import ffmpeg_path
from framefarm.devcloud import LocalAwsStack
from framefarm.devcloud.byte_counter import CountingRelay
from framefarm.stitch.probe import decoded_audio_samples, packets
from framefarm.transcode import seam_frames, transcode_spec, verify_seams
from framefarm.transcode.source import probe_source

SECONDS, RATE, SAMPLE_RATE = 20, 30, 48_000
FRAMES = SECONDS * RATE
CHUNKS = 6


def make_source(path: Path, *, size: str = "1920x1080", seconds: int = SECONDS) -> Path:
    """testsrc2 (its frame counter burned in) with a sine track; a keyframe every second, moov first."""
    subprocess.run([ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={RATE}:duration={seconds}",
                    "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={SAMPLE_RATE}:duration={seconds}",
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", str(RATE), "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-movflags", "+faststart", str(path)], check=True, timeout=600)
    return path


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_source(tmp_path_factory.mktemp("source") / "counter.mp4")


def frame_hashes(path: Path) -> list[str]:
    """The MD5 of every decoded frame, in order."""
    done = subprocess.run([ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", "0:v:0",
                           "-f", "framemd5", "-"], capture_output=True, text=True, check=True, timeout=600)
    return [line.rsplit(",", 1)[1].strip() for line in done.stdout.splitlines() if line and not line.startswith("#")]


@pytest.mark.slow
def test_a_lossless_transcode_in_6_chunks_has_every_source_frame_once_in_order(source, tmp_path):
    # GIVEN a 20-s 1080p source of 600 numbered frames, with audio
    output = tmp_path / "out.mp4"
    # WHEN `framefarm transcode` re-encodes it losslessly in 6 chunks and checks its seams
    done = subprocess.run([sys.executable, "-m", "framefarm", "--home", str(tmp_path / "home"), "transcode",
                           str(source), "-o", str(output), "--chunks", str(CHUNKS), "--crf", "0",
                           "--preset", "ultrafast", "--verify-seams"],
                          capture_output=True, text=True, timeout=900, env={**os.environ, "CI": "1"})
    # THEN it says so: frame-exact at each of the 5 seams
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("frame-exact: 600 frames out of 600; at each of 5 seams"), done.stdout
    # AND every decoded frame is the source's, once, in order (MD5 of each frame, lossless codec)
    assert frame_hashes(output) == frame_hashes(source)
    # AND the audio was taken once from the source: 20 s of it, whole
    assert decoded_audio_samples(output) == decoded_audio_samples(source) == SECONDS * SAMPLE_RATE


def test_the_seam_check_names_a_dropped_frame(tmp_path):
    # GIVEN a small source and a "transcode" of it that lost frame 10 at a seam (chunks 0-9 and 11-29)
    source = make_source(tmp_path / "small.mp4", size="320x180", seconds=1)
    broken = tmp_path / "broken.mp4"
    subprocess.run([ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-i", str(source), "-vf",
                    "select='not(eq(n,10))'", "-fps_mode", "passthrough", "-an", "-c:v", "libx264", "-crf", "18",
                    str(broken)], check=True, timeout=120)
    # WHEN its seams are checked
    report = verify_seams(source, broken, [10, 20])
    # THEN it is not frame-exact, and the report says which output frame shows which source frame
    assert not report.ok
    assert next((match.frame, match.best) for match in report.failures()) == (10, 11)
    assert report.summary().startswith("NOT frame-exact: 29 frames out of 30; frame counts differ; "
                                       "output frame 10 matches source frame 11 (+1)")


def test_a_transcode_plan_seeks_half_a_frame_early_and_counts_frames(source):
    # GIVEN the probed source
    info = probe_source(source)
    assert (info.frames, info.rate, info.width, info.height, info.audio_codec) == (FRAMES, RATE, 1920, 1080, "aac")
    assert info.keyframes[:3] == (0, 30, 60) and info.keyframe_before(215) == 210
    # WHEN it is planned in 6 chunks
    spec = transcode_spec(info, chunks=CHUNKS, crf=20, preset="fast", job_id="plan")
    # THEN each chunk seeks half a frame before its first frame and encodes exactly its frames, video only
    assert [(chunk.start_frame, chunk.frame_count) for chunk in spec.chunks] == [(i * 100, 100) for i in range(6)]
    second = spec.chunks[1].command
    assert second[second.index("-ss") + 1] == "3.316667" and second[second.index("-i") + 1] == "{input.source}"
    assert second[second.index("-frames:v") + 1] == "100" and "-an" in second
    assert "-ss" not in spec.chunks[0].command
    assert spec.inputs == {"source": str(source)} and seam_frames(spec) == [100, 200, 300, 400, 500]
    # AND the audio is one track copied from the source file at stitch time
    assert spec.audio is not None and str(source) in spec.audio.command and "copy" in spec.audio.command
    # AND read over HTTP (a presigned URL), a chunk asks for bounded ranges, on one kept-alive connection
    remote = transcode_spec(info, chunks=CHUNKS, over_http=True, job_id="plan").chunks[1].command
    assert remote[remote.index("-request_size") + 1] == "1048576" and remote.index("-request_size") < remote.index("-i")
    assert "-request_size" not in second


@pytest.mark.slow
def test_on_lambda_each_chunk_reads_its_part_of_the_source_from_s3_by_byte_ranges(source, tmp_path, aws_credentials,
                                                                                   monkeypatch):
    # GIVEN devcloud's Lambda and moto's S3, every S3 request passing a relay that counts what it sends back
    with LocalAwsStack(worker_timeout=300) as stack:
        moto_port = int(stack.env["AWS_ENDPOINT_URL_S3"].rsplit(":", 1)[1])
        # (patched inside the stack: the stack puts its own endpoint back, then takes it away, as it ends)
        with CountingRelay(moto_port) as relay, monkeypatch.context() as patch:
            patch.setenv("AWS_ENDPOINT_URL_S3", relay.endpoint)
            backend = ff.Lambda(table=stack.table, bucket=stack.bucket, function="framefarm-render-chunk",
                                run_here=True)
            # WHEN the source is transcoded there in 6 chunks, one at a time (so reads can be told apart)
            result = ff.transcode(source, tmp_path / "out.mp4", chunks=CHUNKS, crf=23, preset="ultrafast",
                                  backend=backend, concurrency=1, verify=True, job_id="on-lambda")
            reads = [c for c in relay.connections() if c.request_line.startswith("GET ")
                     and "/jobs/on-lambda/inputs/source.mp4" in c.request_line]
            records = ff.attach("on-lambda", backend=backend).status().chunks
    # THEN the video is frame-exact: 600 frames, each seam's frames their own source frames
    assert result.render.frames == FRAMES and result.seams is not None
    assert result.seams.ok, result.seams.summary()
    assert len(packets(result.render.output)) == FRAMES
    # AND every chunk read the source over HTTP, by ranges: well under 2/6 of the file each
    size = source.stat().st_size
    per_chunk = [sum(c.bytes_down for c in reads if r.started_at <= c.opened_at <= r.finished_at) for r in records]
    shares = [round(read / size, 3) for read in per_chunk]
    print(f"bytes read per chunk / source size ({size} B): {shares}")
    assert all(0 < read < 2 * size / CHUNKS for read in per_chunk), f"bytes read per chunk / source size: {shares}"
    assert sum(per_chunk) == sum(c.bytes_down for c in reads)  # every read was inside a chunk's attempt
    # AND no presigned URL is kept in the chunk records
    assert not any("X-Amz-Signature" in (r.stderr_tail + r.stdout_tail) for r in records)


def test_a_source_that_is_not_a_video_is_refused_in_one_line(tmp_path):
    # GIVEN no file, then a file that is not a video
    text = tmp_path / "notes.txt"
    text.write_text("not a video")
    for source, expected in ((tmp_path / "missing.mp4", "error: source: no file at"),
                             (text, "error: source: ")):
        # WHEN it is given to `framefarm transcode`
        done = subprocess.run([sys.executable, "-m", "framefarm", "--home", str(tmp_path / "home"), "transcode",
                               str(source), "-o", str(tmp_path / "out.mp4")], capture_output=True, text=True,
                              timeout=120)
        # THEN it exits 2 with one line saying what is wrong, and no job was made
        assert done.returncode == 2 and done.stderr.startswith(expected), done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "home" / "jobs").exists()
