"""S3MergeAdapter: the operator-side merge. Download a job's chunks, verify them, stitch them locally.

Works with any store behind the storage interface (S3, GCS, a local directory). Before anything is
downloaded it checks that every chunk of the spec is in the store and refuses, naming the missing
ones. A local directory's chunks are joined where they are (``Storage.readable_file``), not copied.
The phases overlap: chunks download in order on a pool, each checked by the store's own checksum as
it comes down (S3: SHA256, GCS: CRC32C; see ``storage.s3``, ``storage.gcs``), never in a second pass,
and against the listed size; the chunks are checked from the media records the workers stored with
them (``stitch.records``) before they land; and ffmpeg joins chunk k while the chunks after it
download (``stitch.feed``). Audio, if the job has any, is rendered here in one pass while
the chunks download, and muxed in.
"""

from __future__ import annotations

import logging
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from framefarm.adapters.base import WorkerAdapter, WorkerJob
from framefarm.adapters.local import LocalWorkerAdapter
from framefarm.errors import StitchError, StorageError, id_list
from framefarm.options import Stitcher
from framefarm.spec import Chunk, JobSpec
from framefarm.stitch.feed import ChunkFeed
from framefarm.stitch.ffmpeg import FfmpegStitcher
from framefarm.stitch.records import MediaRecord
from framefarm.storage.base import Storage, StoredObject
from framefarm.storage.keys import chunk_key, chunk_media_key, chunks_prefix, job_prefix, media_prefix

logger = logging.getLogger(__name__)


class S3MergeAdapter:
    """``merge(spec, output)``: chunks from ``storage`` to one local video (optionally uploaded back)."""

    def __init__(self, storage: Storage, *, stitcher: Stitcher | None = None, workers: int = 8,
                 audio_adapter: WorkerAdapter | None = None) -> None:
        self.storage = storage
        self.stitcher = stitcher or FfmpegStitcher()
        self.workers = workers
        self.audio_adapter = audio_adapter or LocalWorkerAdapter()

    def merge(self, spec: JobSpec, output: Path, *, work_dir: Path | None = None,
              upload_key: str | None = None) -> Path:
        listed = {obj.key: obj for prefix in (chunks_prefix(spec.id), media_prefix(spec.id))
                  for obj in self.storage.list(prefix)}
        chunks = sorted(spec.chunks, key=lambda c: c.id)
        missing = [chunk.id for chunk in chunks if chunk_key(spec.id, chunk.id, chunk.output_file) not in listed]
        if missing:
            raise StitchError(f"job {spec.id}: {len(missing)} of {len(chunks)} chunks are not in "
                              f"{self.storage.url(job_prefix(spec.id))}: {id_list(missing)}")
        with tempfile.TemporaryDirectory(prefix=f"framefarm-merge-{spec.id}-", dir=work_dir) as scratch, \
                ThreadPoolExecutor(1, thread_name_prefix="framefarm-audio") as audio_pool:
            base = Path(scratch)
            audio = audio_pool.submit(self._render_audio, spec, base) if spec.audio is not None else None
            paths = [base / "chunks" / Path(chunk_key(spec.id, chunk.id, chunk.output_file)).name for chunk in chunks]
            # The records first: small, they let the join start as soon as the first chunk has landed
            # (read while the chunks download, they queue behind them and hold it back; measured in
            # bench/merge.py).
            records = self._records(spec.id, chunks, listed)
            with ChunkFeed(lambda index: self._download(spec.id, chunks[index], listed, paths[index]), paths,
                           workers=self.workers) as feed:
                feed.records = records
                return self._stitch(feed, Path(output), audio, upload_key)

    def _stitch(self, feed: ChunkFeed, output: Path, audio: Future[Path] | None, upload_key: str | None) -> Path:
        track = audio.result() if audio is not None else None  # its command's own timeout bounds it
        if not isinstance(self.stitcher, FfmpegStitcher):  # another stitcher takes files that are there
            result = self.stitcher.stitch(feed.landed(), output, audio=track)
            if upload_key is not None:
                self.storage.put_file(upload_key, result)
            return result
        upload = self.storage.upload_as_written(upload_key) if upload_key is not None else None
        try:
            video = self.stitcher.stitch_arriving(feed, output, audio=track, upload=upload)
        except StitchError:
            failed = feed.failure()  # a download that failed stops ffmpeg: name the chunk, not ffmpeg's symptom
            if failed is not None:
                raise failed from None
            raise
        try:
            feed.landed()  # every chunk came down whole and checked, or the video is not the job's
        except StitchError:
            video.unlink(missing_ok=True)
            raise
        return video

    def _records(self, job_id: str, chunks: list[Chunk], listed: dict[str, StoredObject]) -> list[MediaRecord | None]:
        """Every chunk's media record: the listed ones read all at once, as many as the store takes (a
        GET each, ~20 ms on S3: 10,000 chunks' records take 3 s on 64 threads, 25 s on 8); none when
        the listing shows none."""
        stored = [chunk for chunk in chunks if chunk_media_key(job_id, chunk.id) in listed]  # others: probed
        if not stored:
            return [None] * len(chunks)
        with ThreadPoolExecutor(min(self.storage.parallel_requests, len(stored)),
                                thread_name_prefix="framefarm-records") as pool:
            found = dict(zip([chunk.id for chunk in stored],
                             pool.map(lambda chunk: self._record(job_id, chunk, listed), stored), strict=True))
        return [found.get(chunk.id) for chunk in chunks]

    def _record(self, job_id: str, chunk: Chunk, listed: dict[str, StoredObject]) -> MediaRecord | None:
        """The chunk's listed media record, if it is one and of the very object listed (same size)."""
        key = chunk_media_key(job_id, chunk.id)
        try:
            found = MediaRecord.from_json(self.storage.get_bytes(key))
        except FileNotFoundError:
            return None
        except Exception as exc:  # throttled past the client's retries, refused: only a shortcut is lost
            logger.warning("cannot read the media record %s (probing chunk %s instead): %s",
                           self.storage.url(key), chunk.id, exc)
            return None
        video = listed[chunk_key(job_id, chunk.id, chunk.output_file)]
        return found if found is not None and found.size == video.size else None

    def _download(self, job_id: str, chunk: Chunk, listed: dict[str, StoredObject], target: Path) -> Path:
        """Chunk ``chunk`` as a file to join: downloaded to ``target``, or a local store's own file."""
        key = chunk_key(job_id, chunk.id, chunk.output_file)
        try:
            found = self.storage.readable_file(key, target)
            size = found.stat().st_size
        except (StorageError, FileNotFoundError) as exc:
            raise StitchError(f"chunk {chunk.id}: {exc}") from None
        expected = listed[key]
        if size != expected.size:
            raise StitchError(f"chunk {chunk.id}: {key} has {size} bytes, the store listed {expected.size}")
        return found

    def _render_audio(self, spec: JobSpec, base: Path) -> Path:
        assert spec.audio is not None
        result = self.audio_adapter.execute(WorkerJob(command=spec.audio.command, cwd=base,
                                                      meta={"job_id": spec.id, "step": "audio",
                                                            "inputs": spec.inputs}))
        if not result.ok:
            raise StitchError(f"job {spec.id}: audio track failed: {result.failure_text()}")
        return base / spec.audio.output_file
