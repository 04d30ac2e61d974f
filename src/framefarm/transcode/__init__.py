"""Transcode an existing video in parallel chunks, frame-exact: ``ff.transcode(source, output, ...)``.

    import framefarm as ff
    result = ff.transcode("film.mov", "film.mp4", chunks=6, crf=20, verify_seams=True)
    print(result.render.frames, result.seams.summary())

The source is probed (``source``), planned into chunks of frames (``plan``), rendered on any backend
like any job (its local file uploaded once under the job's prefix when chunks run elsewhere, read by
byte ranges over presigned URLs), stitched with its audio taken once from the source, and optionally
checked at every seam (``seams``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from framefarm.api import RenderResult, check_output, render
from framefarm.backends import Backend, Local
from framefarm.options import RetryPolicy, RunHooks
from framefarm.spec import JobSpec
from framefarm.storage.keys import job_prefix
from framefarm.transcode.plan import transcode_spec
from framefarm.transcode.seams import SeamReport, verify_seams
from framefarm.transcode.source import SourceInfo, probe_source

__all__ = ["SeamReport", "SourceInfo", "TranscodeResult", "plan_transcode", "probe_source", "seam_frames",
           "transcode", "transcode_spec", "verify_seams"]


@dataclass(frozen=True)
class TranscodeResult:
    """The render's result, what the source was, and the seam check (None unless asked)."""

    render: RenderResult
    source: SourceInfo
    seams: SeamReport | None = None


def transcode(source: str | os.PathLike[str], output: str | os.PathLike[str], *, chunks: int | None = None,
              seconds: float | None = None, codec: str = "libx264", crf: float | None = 23,
              preset: str | None = "medium", backend: Backend | None = None, concurrency: int | None = None,
              retry: RetryPolicy | None = None, chunk_timeout: float | None = None, hooks: RunHooks | None = None,
              job_id: str | None = None, verify: bool = False, timeout: float | None = None) -> TranscodeResult:
    """Transcode ``source`` (a local file) into ``output`` in chunks of frames; ``chunks`` of even size or
    ``seconds`` each (default: as many chunks as the backend runs at once, each at least a second long).
    ``verify``: check the frames either side of every seam against the source (``seams``)."""
    backend = backend or Local()
    video = check_output(output)
    info, spec = plan_transcode(source, video, backend=backend, concurrency=concurrency, chunks=chunks,
                                seconds=seconds, codec=codec, crf=crf, preset=preset, job_id=job_id)
    result = render(spec, backend=backend, output=video, concurrency=concurrency, retry=retry,
                    chunk_timeout=chunk_timeout, hooks=hooks, timeout=timeout)
    seams = None
    if verify:
        assert result.output is not None  # a render with an output stitches it or fails
        seams = verify_seams(info.path, result.output, seam_frames(spec))
    return TranscodeResult(render=result, source=info, seams=seams)


def plan_transcode(source: str | os.PathLike[str], output: Path, *, backend: Backend, concurrency: int | None,
                   chunks: int | None, seconds: float | None, codec: str, crf: float | None, preset: str | None,
                   job_id: str | None) -> tuple[SourceInfo, JobSpec]:
    """Probe ``source`` and plan its transcode (what ``transcode`` and the CLI's ``transcode`` run)."""
    info = probe_source(source)
    if chunks is None and seconds is None:
        chunks = max(1, min(backend.concurrency(concurrency), info.frames // max(1, round(info.fps))))
    return info, transcode_spec(info, output=output, chunks=chunks, seconds=seconds, codec=codec, crf=crf,
                                preset=preset, job_id=job_id, over_http=reads_over_http(backend))


def reads_over_http(backend: Backend) -> bool:
    """Whether ``backend``'s workers read a job's inputs over HTTP (presigned, from a bucket), not as files."""
    return backend.chunks_in_storage and backend.storage().local_path(job_prefix("any")) is None


def seam_frames(spec: JobSpec) -> list[int]:
    """Where the chunks of ``spec`` meet: the first frame of each chunk but the first."""
    return sorted(chunk.start_frame for chunk in spec.chunks)[1:]
