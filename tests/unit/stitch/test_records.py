"""Media records: measured once where a chunk is rendered (the local adapter, the worker runtime), and
the stitcher's check of the chunks made from them, probing only what has none or disagrees."""

from __future__ import annotations

import dataclasses

import pytest

from framefarm import FfmpegStitcher, LocalStorage, StitchError, plan_job
from framefarm.adapters.base import WorkerJob
from framefarm.adapters.local import LocalWorkerAdapter
from framefarm.protocol import ChunkRequest
from framefarm.repositories.base import put_spec
from framefarm.stitch.probe import packets
from framefarm.stitch.records import MediaRecord, media_path, read_record, write_record
from framefarm.worker.runtime import run_chunk
from tests.helpers import CommandLog


def rewrite_record(path, **info_changes) -> None:
    record = read_record(path)
    assert record is not None
    changed = dataclasses.replace(record, info=dataclasses.replace(record.info, **info_changes))
    media_path(path).write_text(changed.to_json())


def test_a_committed_chunk_video_is_measured_once_by_the_local_adapter(tmp_path, ffmpeg):
    # GIVEN a chunk command that renders 12 frames
    command = [ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=12", "-frames:v", "12",
               "-pix_fmt", "yuv420p", "chunks/00000.mp4"]
    (tmp_path / "chunks").mkdir()
    # WHEN the local adapter runs it as a chunk
    result = LocalWorkerAdapter().execute(WorkerJob(command=command, cwd=tmp_path,
                                                    meta={"chunk_id": 0, "output_file": "chunks/00000.mp4"}))
    # THEN the video's record lies beside it: what it holds, and which file it is
    assert result.ok
    record = read_record(tmp_path / "chunks" / "00000.mp4")
    assert record is not None
    assert (record.info.video_codec, record.info.width, record.info.height, record.info.fps, record.info.pix_fmt,
            record.frames) == ("h264", 96, 64, 12.0, "yuv420p", 12)
    assert record.size == (tmp_path / "chunks" / "00000.mp4").stat().st_size


def test_the_worker_stores_the_chunks_record_beside_it(tmp_path, ffmpeg):
    # GIVEN a job in a store whose chunk command renders 5 frames
    storage = LocalStorage(tmp_path / "store")
    spec = plan_job({"id": "measured", "width": 96, "height": 64, "fps": 10, "total_frames": 10, "chunks": 2,
                     "command": [ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=10",
                                 "-frames:v", "5", "-pix_fmt", "yuv420p", "{output}"]})
    url = put_spec(storage, spec)
    # WHEN a worker runs chunk 1
    response = run_chunk(ChunkRequest(job_id="measured", chunk_id=1, spec_url=url))
    # THEN the record of the stored chunk is stored beside it
    assert response.exit_code == 0
    stored = MediaRecord.from_json(storage.get_bytes("jobs/measured/media/00001.json"))
    assert stored is not None and stored.frames == 5
    assert stored.size == len(storage.get_bytes(response.output_key))


def test_no_record_is_written_for_a_file_that_is_no_video(tmp_path):
    # GIVEN a chunk output that ffmpeg cannot read
    video = tmp_path / "00000.mp4"
    video.write_bytes(b"not a video" * 10)
    # WHEN it is measured, THEN nothing is recorded (the stitcher will probe it and name it)
    assert write_record(video) is None
    assert not media_path(video).exists()


def test_the_stitcher_probes_no_chunk_it_has_a_record_of(tmp_path, encode_chunk):
    # GIVEN three chunks, each with its record
    chunks = [encode_chunk(tmp_path / f"{i}.mp4", i * 10, 10) for i in range(3)]
    for chunk in chunks:
        write_record(chunk)
    runner = CommandLog()
    # WHEN they are stitched
    output = FfmpegStitcher(runner=runner).stitch(chunks, tmp_path / "final.mp4")
    # THEN no chunk was probed: ffmpeg never ran (the direct join wrote the video)
    assert runner.commands == []
    assert len(packets(output)) == 30


def test_a_chunk_without_a_record_or_with_another_files_record_is_probed(tmp_path, encode_chunk):
    # GIVEN three chunks: 0 with its record, 1 with none, 2 with a record of another file (other size)
    chunks = [encode_chunk(tmp_path / f"{i}.mp4", i * 10, 10) for i in range(3)]
    write_record(chunks[0])
    first = read_record(chunks[0])
    assert first is not None
    media_path(chunks[2]).write_text(dataclasses.replace(first, size=chunks[2].stat().st_size + 1).to_json())
    runner = CommandLog()
    # WHEN they are stitched, THEN only chunks 1 and 2 were probed
    FfmpegStitcher(runner=runner).stitch(chunks, tmp_path / "final.mp4")
    assert [runner.probed(chunk) for chunk in chunks] == [False, True, True]


def test_a_record_that_disagrees_is_checked_against_the_file_before_the_chunk_is_refused(tmp_path, encode_chunk):
    # GIVEN two good chunks, chunk 1's record saying (wrongly) it is 320x240
    chunks = [encode_chunk(tmp_path / f"{i}.mp4", i * 10, 10) for i in range(2)]
    for chunk in chunks:
        write_record(chunk)
    rewrite_record(chunks[1], width=320, height=240)
    runner = CommandLog()
    # WHEN they are stitched, THEN the files were probed, found to match, and joined
    output = FfmpegStitcher(runner=runner).stitch(chunks, tmp_path / "final.mp4")
    assert runner.probed(chunks[1]) and len(packets(output)) == 20


def test_a_chunk_that_truly_differs_is_named_though_its_record_agreed_before_it_changed(tmp_path, encode_chunk):
    # GIVEN chunk 1 re-rendered at another size after its record was written (the record is of another file)
    chunks = [encode_chunk(tmp_path / f"{i}.mp4", i * 10, 10) for i in range(2)]
    for chunk in chunks:
        write_record(chunk)
    encode_chunk(chunks[1], 10, 10, size="320x240")
    # WHEN they are stitched, THEN chunk 1 is probed and named with what differs
    with pytest.raises(StitchError, match=r"chunk .*1.mp4 cannot be joined with .*0.mp4: size 320x240"):
        FfmpegStitcher().stitch(chunks, tmp_path / "final.mp4")
