"""Run one chunk on a worker: the code the Lambda render-chunk handler and the Cloud Run server share.

    request {job_id, chunk_id, spec_url, attempt}
      -> fetch the spec (and the asset bundle, if any) into a fresh temporary directory
      -> run the chunk's command there (no shell; ``{ffmpeg}`` is this worker's ffmpeg, ``{input.NAME}`` a
         URL presigned now, for this attempt: see ``framefarm.inputs``)
      -> upload the output to jobs/<job>/chunks/<00042>.<ext> in the spec's store (same key on re-runs),
         and its media record to jobs/<job>/media/<00042>.json (codec, size, rate, pixel format, frames:
         ``stitch.records``)
      (the job's cancel marker is checked between these stages and while the command runs)
      -> keep stdout/stderr longer than a record's tail whole in the store (``storage.logs``)
      -> reply {exit_code, kind, stdout, stderr, output_key, duration_ms, error}, stdout/stderr as tails

The reply carries tails (``status.TAIL_CHARS`` each), so it stays far below Lambda's 6 MB response
limit (Cloud Run's is 32 MB; one rule for both) however much a command prints.

A chunk that exits 0 but wrote no output is reported as failed (``no_output``): nothing would be
there to stitch. Bad requests get a ``bad_request`` reply with ``error`` set, never an exception.
The request and reply models are ``framefarm.protocol``'s.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from framefarm.adapters.base import CANCELLED, WorkerAdapter, WorkerJob
from framefarm.adapters.local import LocalWorkerAdapter
from framefarm.cancel import CancelToken
from framefarm.config import CHUNK_TAG, ENV_CANCEL_POLL
from framefarm.errors import JobSpecError
from framefarm.failures import FailureKind
from framefarm.inputs import outside_job
from framefarm.protocol import ChunkRequest, ChunkResponse, bad_request
from framefarm.redaction import chunk_environment, redact_result, secret_values
from framefarm.spec import JobSpec
from framefarm.stitch.records import media_path, read_record, write_record
from framefarm.storage import storage_for_url
from framefarm.storage.base import Storage
from framefarm.storage.keys import cancel_key, chunk_key, chunk_media_key, job_prefix
from framefarm.storage.logs import keep_full_logs
from framefarm.tails import tail
from framefarm.worker.assets import unpack_assets

logger = logging.getLogger(__name__)


def run_chunk(request: ChunkRequest, *, adapter: WorkerAdapter | None = None,
              storage_for: Callable[[str], tuple[Storage, str]] = storage_for_url, tmp_root: str | None = None,
              timeout: float | None = None, cancel: CancelToken | None = None,
              clock: Callable[[], float] = time.monotonic, cancel_poll: float | None = None) -> ChunkResponse:
    """Fetch, run, upload. Never raises for a bad request or a failing command.

    Between stages, and every ``cancel_poll`` seconds while the command runs, it looks for the
    job's cancel marker (``storage.keys.cancel_key``); once there, it stops and replies cancelled.
    """
    started = clock()

    def elapsed() -> float:
        return (clock() - started) * 1000.0

    try:
        storage, spec_key = storage_for(request.spec_url)
    except ValueError as exc:
        return bad_request(str(exc))
    if not spec_key.startswith(job_prefix(request.job_id)):
        return bad_request(f"spec_url {request.spec_url!r} is outside job {request.job_id}'s prefix")
    try:
        spec = JobSpec.model_validate_json(storage.get_bytes(spec_key))
    except FileNotFoundError:
        return bad_request(f"no spec at {request.spec_url}")
    except JobSpecError as exc:
        return bad_request(f"invalid spec at {request.spec_url}: {exc}")
    if spec.id != request.job_id:
        return bad_request(f"spec at {request.spec_url} is job {spec.id!r}, not {request.job_id!r}")
    try:
        chunk = spec.chunk(request.chunk_id)
    except KeyError:
        return bad_request(f"job {spec.id} has no chunk {request.chunk_id}")
    if spec.assets_url and not spec.assets_url.startswith(storage.url(job_prefix(spec.id))):
        return bad_request(f"assets_url {spec.assets_url!r} is outside job {spec.id}'s prefix")
    outside = outside_job(spec.inputs, store_root=request.spec_url[:-len(spec_key)],
                          job_prefix_url=storage.url(job_prefix(spec.id)))
    if outside is not None:
        return bad_request(f"{outside} is in this store but outside job {spec.id}'s prefix")
    marker = CancelMarker(storage, spec.id)
    if marker.present():
        return cancelled(elapsed())

    with tempfile.TemporaryDirectory(prefix=f"framefarm-{spec.id}-{chunk.id}-", dir=tmp_root) as scratch:
        workdir = Path(scratch)
        if spec.assets_url:
            try:
                unpack_assets(spec.assets_url, workdir, storage_for=storage_for)
            except (ValueError, FileNotFoundError, OSError) as exc:
                return ChunkResponse(kind=FailureKind.FUNCTION_ERROR, error=f"assets: {exc}",
                                     stderr=f"assets: {exc}\n", duration_ms=elapsed())
            if marker.present():
                return cancelled(elapsed())
        output = workdir / chunk.output_file
        output.parent.mkdir(parents=True, exist_ok=True)
        token = cancel.child() if cancel is not None else CancelToken()
        with marker.watching(token, every=cancel_poll or float(os.environ.get(ENV_CANCEL_POLL) or 2.0)):
            runner = adapter or LocalWorkerAdapter(base_env=chunk_environment(), storage_for=storage_for)
            result = runner.execute(WorkerJob(
                command=chunk.command, cwd=workdir, timeout=timeout, cancel=token,
                meta={"job_id": spec.id, "chunk_id": chunk.id, "output_file": chunk.output_file,
                      "inputs": spec.inputs}))
        result = redact_result(result, secret_values())
        keep_full_logs(storage, request.job_id, request.chunk_id, request.attempt, stdout=result.stdout,
                       stderr=result.stderr)
        stdout, stderr = tail(result.stdout), tail(result.stderr)
        if result.kind is FailureKind.CANCELLED or (result.ok and marker.present()):
            return cancelled(elapsed(), stdout=stdout, stderr=stderr)
        if not result.ok:  # the adapter also fails a chunk that exited 0 without writing its output
            return ChunkResponse(exit_code=result.exit_code, kind=result.kind, stdout=stdout, stderr=stderr,
                                 error=result.error, duration_ms=elapsed())
        key = chunk_key(spec.id, chunk.id, chunk.output_file)
        storage.put_file(key, output, tags=CHUNK_TAG)
        keep_media_record(storage, output, chunk_media_key(spec.id, chunk.id))
        return ChunkResponse(exit_code=0, stdout=stdout, stderr=stderr, output_key=key, duration_ms=elapsed())


def keep_media_record(storage: Storage, output: Path, key: str) -> None:
    """Store what the chunk video holds, measured here once (``stitch.records``): by the local
    adapter when it ran the command, else now. Without one the stitcher probes the chunk itself."""
    if read_record(output) is None and write_record(output) is None:
        return  # not a video ffmpeg reads: the stitcher will name it
    try:
        storage.put_file(key, media_path(output), tags=CHUNK_TAG)
    except Exception:  # the chunk is stored; only the stitcher's shortcut is lost
        logger.warning("cannot store the media record %s", key, exc_info=True)


def cancelled(duration_ms: float, *, stdout: str = "", stderr: str = "") -> ChunkResponse:
    """The reply of a chunk stopped by its job's cancel marker (recorded as a cancelled attempt)."""
    return ChunkResponse(kind=FailureKind.CANCELLED, error=CANCELLED, duration_ms=duration_ms, stdout=stdout,
                         stderr=stderr)


class CancelMarker:
    """The job's cancel marker in its store, as a worker sees it."""

    def __init__(self, storage: Storage, job_id: str) -> None:
        self.storage, self.key = storage, cancel_key(job_id)

    def present(self) -> bool:
        try:
            return self.storage.exists(self.key)
        except Exception:  # the store cannot say: keep working (the caller's own cancel still applies)
            logger.warning("cannot read the cancel marker %s", self.key, exc_info=True)
            return False

    @contextlib.contextmanager
    def watching(self, token: CancelToken, *, every: float) -> Iterator[None]:
        """While the block runs, cancel ``token`` as soon as the marker appears (checked every ``every`` s)."""
        done = threading.Event()

        def watch() -> None:
            while not done.wait(every):
                if self.present():
                    token.cancel("cancelled")
                    return

        watcher = threading.Thread(target=watch, name="framefarm-cancel-marker", daemon=True)
        watcher.start()
        try:
            yield
        finally:
            done.set()
