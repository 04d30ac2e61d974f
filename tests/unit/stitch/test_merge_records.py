"""A merge's media records are a shortcut: one the store will not give (throttled past the client's
retries, refused, timed out) costs a probe of its chunk, not the merge."""

from __future__ import annotations

import logging

from botocore.exceptions import ClientError

from framefarm import FfmpegStitcher, plan_job
from framefarm.stitch.merge import S3MergeAdapter
from framefarm.stitch.probe import packets
from framefarm.stitch.records import media_path, write_record
from framefarm.storage.keys import chunk_key, chunk_media_key
from framefarm.storage.local import LocalStorage
from tests.helpers import CommandLog


class ThrottledRecord(LocalStorage):
    """A store that answers SlowDown (503) to one media record's reads, as S3 does under load."""

    def __init__(self, root, key: str) -> None:
        super().__init__(root)
        self.key = key

    def get_bytes(self, key):
        if key == self.key:
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."},
                               "ResponseMetadata": {"HTTPStatusCode": 503}}, "GetObject")
        return super().get_bytes(key)


def test_a_record_the_store_will_not_give_costs_a_probe_not_the_merge(tmp_path, encode_chunk, caplog):
    # GIVEN a job's three chunks stored with their records, the store throttling reads of chunk 1's record
    spec = plan_job({"id": "slow", "width": 160, "height": 120, "fps": 10, "total_frames": 30,
                     "frames_per_chunk": 10, "command": "render {output}"})
    storage = ThrottledRecord(tmp_path / "store", chunk_media_key(spec.id, 1))
    for chunk in spec.chunks:
        video = encode_chunk(tmp_path / "rendered" / f"{chunk.id}.mp4", chunk.id * 10, 10)
        write_record(video)
        storage.put_file(chunk_key(spec.id, chunk.id, chunk.output_file), video)
        storage.put_file(chunk_media_key(spec.id, chunk.id), media_path(video))
    runner = CommandLog()
    # WHEN it is merged
    with caplog.at_level(logging.WARNING, logger="framefarm.stitch.merge"):
        video = S3MergeAdapter(storage, stitcher=FfmpegStitcher(runner=runner)).merge(spec, tmp_path / "final.mp4")
    # THEN the video has every frame, chunk 1 was probed (one ffmpeg run), and a one-line warning names its record
    assert len(packets(video)) == 30
    assert len(runner.commands) == 1
    assert [record.getMessage() for record in caplog.records] == [
        f"cannot read the media record {storage.url(chunk_media_key(spec.id, 1))} (probing chunk 1 instead): "
        "An error occurred (SlowDown) when calling the GetObject operation: Please reduce your request rate."]
