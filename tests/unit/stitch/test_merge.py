import dataclasses
import itertools
import os
import sys
import threading

import pytest

from framefarm import FfmpegStitcher, plan_job
from framefarm.errors import StitchError, StorageError
from framefarm.stitch.merge import S3MergeAdapter
from framefarm.stitch.probe import packets
from framefarm.stitch.records import media_path, write_record
from framefarm.storage.keys import chunk_key, chunk_media_key
from framefarm.storage.local import LocalStorage
from tests.helpers import CommandLog, RecordingStitcher, corrupt_gcs_object, corrupt_s3_object, eventually


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


def test_a_chunk_that_does_not_match_gcss_checksum_is_refused_naming_it(gcs_bucket, gcs_client, tmp_path):
    from framefarm.storage.gcs import GcsStorage

    # GIVEN a job's two chunks in GCS, chunk 1 gone bad since (its bytes are not those GCS holds checksums of)
    spec = plan_job({"id": "bad", "width": 64, "height": 48, "fps": 10, "total_frames": 20, "frames_per_chunk": 10,
                     "command": "render {output}"})
    storage = GcsStorage(gcs_bucket, client=gcs_client)
    for chunk in spec.chunks:
        storage.put_bytes(chunk_key(spec.id, chunk.id, chunk.output_file), os.urandom(2**20))
    corrupt_gcs_object(gcs_client, gcs_bucket, chunk_key(spec.id, 1, spec.chunk(1).output_file))
    stitcher = RecordingStitcher()
    # WHEN the job is merged, THEN chunk 1 is named as corrupt in one line and nothing is stitched
    with pytest.raises(StitchError, match=rf"^chunk 1: gs://{gcs_bucket}/jobs/bad/chunks/00001.mp4 is corrupt: "
                                          r"[^\n]*CRC32C[^\n]*$"):
        S3MergeAdapter(storage, stitcher=stitcher).merge(spec, tmp_path / "out.mp4")
    assert stitcher.calls == []


class SlowLastChunk(LocalStorage):
    """A store whose last chunk comes down only once the stitch has begun writing the video (its
    partial file exists), or raises after ``timeout`` seconds."""

    def __init__(self, root, last_key: str, partial, timeout: float = 60.0) -> None:
        super().__init__(root)
        self.last_key, self.partial, self.timeout = last_key, partial, timeout

    def readable_file(self, key, path):
        if key == self.last_key:
            eventually(self.partial.exists, timeout=self.timeout, what="the stitch writing before the last download")
        return super().readable_file(key, path)


def stored_job(storage, tmp_path, encode_chunk, job_id: str, chunks: int, *, records: bool):
    spec = plan_job({"id": job_id, "width": 160, "height": 120, "fps": 10, "total_frames": 10 * chunks,
                     "frames_per_chunk": 10, "command": "render {output}"})
    for chunk in spec.chunks:
        video = encode_chunk(tmp_path / "rendered" / f"{chunk.id}.mp4", chunk.start_frame, chunk.frame_count)
        storage.put_file(chunk_key(spec.id, chunk.id, chunk.output_file), video)
        if records:
            write_record(video)
            storage.put_file(chunk_media_key(spec.id, chunk.id), media_path(video))
    return spec


def test_the_first_chunks_are_joined_while_the_last_one_still_downloads(tmp_path, encode_chunk):
    # GIVEN a job of four chunks whose last chunk arrives only once the video is being written
    output = tmp_path / "out" / "final.mp4"
    storage = SlowLastChunk(tmp_path / "store", "jobs/overlap/chunks/00003.mp4", output.with_name(".final.partial.mp4"))
    spec = stored_job(storage, tmp_path, encode_chunk, "overlap", 4, records=True)
    # WHEN it is merged, THEN the join began before the last download ended, and every frame is there in order
    video = S3MergeAdapter(storage).merge(spec, output)
    found = packets(video)
    assert len(found) == 40
    assert all(b.dts > a.dts for a, b in itertools.pairwise(found))


def test_the_merge_checks_chunks_from_their_stored_records_without_probing_them(tmp_path, encode_chunk):
    # GIVEN a job's three chunks in a store, each with the record its worker stored beside it
    storage = LocalStorage(tmp_path / "store")
    spec = stored_job(storage, tmp_path, encode_chunk, "recorded", 3, records=True)
    runner = CommandLog()
    # WHEN it is merged, THEN ffmpeg never ran: no chunk was probed, and the direct join wrote the video
    video = S3MergeAdapter(storage, stitcher=FfmpegStitcher(runner=runner)).merge(spec, tmp_path / "final.mp4")
    assert runner.commands == []
    assert len(packets(video)) == 30


class FailingChunk(LocalStorage):
    def __init__(self, root, failing_key: str) -> None:
        super().__init__(root)
        self.failing_key = failing_key

    def readable_file(self, key, path):
        if key == self.failing_key:
            raise StorageError(f"{self.url(key)} is corrupt: its SHA256 is x, S3 stored y")
        return super().readable_file(key, path)


@pytest.mark.parametrize("records", [True, False], ids=["with-records", "older-chunks"])
def test_a_chunk_that_fails_to_download_during_the_join_is_named_and_no_video_is_left(tmp_path, encode_chunk,
                                                                                       records):
    # GIVEN a job of four chunks whose chunk 2 cannot be downloaded
    storage = FailingChunk(tmp_path / "store", "jobs/broken/chunks/00002.mp4")
    spec = stored_job(storage, tmp_path, encode_chunk, "broken", 4, records=records)
    output = tmp_path / "out" / "final.mp4"
    # WHEN it is merged, THEN the error names chunk 2 and why, and neither the video nor a partial one is left
    with pytest.raises(StitchError, match=r"^chunk 2: .*00002.mp4 is corrupt: its SHA256 is x, S3 stored y$"):
        S3MergeAdapter(storage).merge(spec, output)
    assert not output.exists() and not list(output.parent.glob("*"))


def test_an_uploaded_merge_stores_the_video_it_wrote(bucket, s3_client, tmp_path, encode_chunk):
    from framefarm.storage.s3 import S3Storage

    # GIVEN a job's three chunks, with their records, in S3
    storage = S3Storage(bucket, client=s3_client)
    spec = stored_job(storage, tmp_path, encode_chunk, "up", 3, records=True)
    # WHEN it is merged with an upload key, THEN the stored video is the one written here, byte for byte
    video = S3MergeAdapter(storage).merge(spec, tmp_path / "final.mp4", upload_key="jobs/up/final.mp4")
    storage.get_file("jobs/up/final.mp4", tmp_path / "down.mp4")
    assert (tmp_path / "down.mp4").read_bytes() == video.read_bytes()
    assert len(packets(video)) == 30


class CopyCounting(LocalStorage):
    def __init__(self, root) -> None:
        super().__init__(root)
        self.copied: list[str] = []

    def get_file(self, key, path):
        self.copied.append(key)
        super().get_file(key, path)


def test_a_local_store_is_joined_in_place_without_copying_a_chunk_or_touching_it(tmp_path, encode_chunk):
    # GIVEN a job's four chunks, with their records, in a local directory store
    storage = CopyCounting(tmp_path / "store")
    spec = stored_job(storage, tmp_path, encode_chunk, "inplace", 4, records=True)
    before = {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in storage.root.rglob("*")
              if path.is_file()}
    # WHEN it is merged
    video = S3MergeAdapter(storage).merge(spec, tmp_path / "final.mp4", work_dir=tmp_path)
    # THEN no chunk was copied, the store's files are as they were, and every frame is there in order
    assert storage.copied == []
    assert {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in storage.root.rglob("*")
            if path.is_file()} == before
    found = packets(video)
    assert len(found) == 40
    assert all(b.dts > a.dts for a, b in itertools.pairwise(found))


class GoneSinceListed(LocalStorage):
    """A store from which another process removes ``gone`` right after the merge listed the chunks."""

    def __init__(self, root, gone: str) -> None:
        super().__init__(root)
        self.gone = gone

    def list(self, prefix):
        listed = super().list(prefix)
        self.path(self.gone).unlink(missing_ok=True)
        return listed


class ListedLarger(LocalStorage):
    """A store whose listing says ``key`` holds one byte more than its file."""

    def __init__(self, root, key: str) -> None:
        super().__init__(root)
        self.key = key

    def list(self, prefix):
        return [dataclasses.replace(obj, size=obj.size + 1) if obj.key == self.key else obj
                for obj in super().list(prefix)]


@pytest.mark.parametrize(("store", "error"), [
    (GoneSinceListed, r"^chunk 2: no object 'jobs/local/chunks/00002.mp4' in .*/store$"),
    (ListedLarger, r"^chunk 2: jobs/local/chunks/00002.mp4 has 7 bytes, the store listed 8$"),
], ids=["gone", "wrong-size"])
def test_a_local_chunk_read_in_place_that_is_not_what_was_listed_is_named(tmp_path, store, error):
    # GIVEN a job's three chunks in a local store, chunk 2 gone or of another size since the listing
    spec = plan_job({"id": "local", "width": 64, "height": 48, "fps": 10, "total_frames": 30, "frames_per_chunk": 10,
                     "command": "render {output}"})
    storage = store(tmp_path / "store", chunk_key(spec.id, 2, spec.chunk(2).output_file))
    for chunk in spec.chunks:
        storage.put_bytes(chunk_key(spec.id, chunk.id, chunk.output_file), f"chunk {chunk.id}".encode())
    stitcher = RecordingStitcher()
    # WHEN it is merged, THEN the error names chunk 2 and what is wrong with it, and nothing was stitched
    with pytest.raises(StitchError, match=error):
        S3MergeAdapter(storage, stitcher=stitcher).merge(spec, tmp_path / "out.mp4")
    assert stitcher.calls == []


class RecordsReadTogether(LocalStorage):
    """A store where each media-record read waits until ``together`` of them are in flight at once."""

    def __init__(self, root, together: int) -> None:
        super().__init__(root)
        self.together = threading.Barrier(together, timeout=20)
        self.records_read: list[str] = []

    def get_bytes(self, key):
        if key.endswith(".json") and "/media/" in key:
            self.records_read.append(key)
            self.together.wait()  # BrokenBarrierError when fewer are ever read at once
        return super().get_bytes(key)


def byte_chunks(storage, job_id: str, chunks: int, *, records: bool):
    spec = plan_job({"id": job_id, "width": 64, "height": 48, "fps": 10, "total_frames": 10 * chunks,
                     "frames_per_chunk": 10, "command": "render {output}"})
    for chunk in spec.chunks:
        storage.put_bytes(chunk_key(spec.id, chunk.id, chunk.output_file), f"chunk {chunk.id}".encode())
        if records:
            storage.put_bytes(chunk_media_key(spec.id, chunk.id), b"{}")
    return spec


def test_media_records_are_read_many_at_once_not_eight(tmp_path):
    # GIVEN a job of 20 chunks with records, in a store where every record read waits for all 20 to be in flight
    storage = RecordsReadTogether(tmp_path / "store", together=20)
    spec = byte_chunks(storage, "records", 20, records=True)
    stitcher = RecordingStitcher()
    # WHEN it is merged, THEN the 20 records were read at once, and every chunk was stitched in order
    S3MergeAdapter(storage, stitcher=stitcher).merge(spec, tmp_path / "out.mp4")
    assert len(storage.records_read) == 20
    assert stitcher.texts == [f"chunk {n}" for n in range(20)]


def test_no_record_is_read_and_no_thread_started_for_them_when_none_are_listed(tmp_path):
    # GIVEN a job of older chunks, stored without media records
    storage = RecordsReadTogether(tmp_path / "store", together=1)
    spec = byte_chunks(storage, "older", 3, records=False)
    stitcher = RecordingStitcher()
    started: set[str] = set()
    # WHEN it is merged (noting the name of every thread started meanwhile)
    threading.setprofile(lambda *_: started.add(threading.current_thread().name))
    try:
        S3MergeAdapter(storage, stitcher=stitcher).merge(spec, tmp_path / "out.mp4")
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
    # THEN no record was read, no thread was started to read them, and the chunks were stitched
    assert storage.records_read == []
    assert not [name for name in started if name.startswith("framefarm-records")]
    assert any(name.startswith("framefarm-download") for name in started)
    assert stitcher.texts == ["chunk 0", "chunk 1", "chunk 2"]


class DownloadedStore(LocalStorage):
    """A local store whose chunks are downloaded like a remote store's (not read in place); the last
    chunk comes down only once the first has left the merge's scratch directory (or after 30 s)."""

    def __init__(self, root, last_key: str) -> None:
        super().__init__(root)
        self.last_key = last_key
        self.first_gone = False

    def readable_file(self, key, path):
        if key == self.last_key:
            first = path.with_name("00000.mp4")
            try:
                self.first_gone = eventually(lambda: not first.exists(), timeout=30, what="chunk 0 deleted")
            except AssertionError:
                self.first_gone = False
        self.get_file(key, path)
        return path


def test_a_downloaded_chunk_is_deleted_once_joined_and_a_stores_own_file_is_kept(tmp_path, encode_chunk):
    # GIVEN a job of four chunks, downloaded one after the other, whose last chunk comes down only once chunk 0
    # (landed first) is gone from the scratch directory
    store = DownloadedStore(tmp_path / "store", "jobs/scratch/chunks/00003.mp4")
    spec = stored_job(store, tmp_path, encode_chunk, "scratch", 4, records=True)
    # WHEN it is merged
    video = S3MergeAdapter(store, workers=1).merge(spec, tmp_path / "final.mp4")
    # THEN chunk 0 was deleted once joined, before the merge ended (the disk holds the chunks not yet joined,
    # not all of them), and all 40 frames are there
    assert store.first_gone
    assert len(packets(video)) == 40
    # AND a store read in place keeps every one of its files
    local = LocalStorage(tmp_path / "store")
    S3MergeAdapter(local).merge(spec, tmp_path / "again.mp4")
    assert all(local.exists(chunk_key(spec.id, c.id, c.output_file)) for c in spec.chunks)
