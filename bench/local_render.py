"""The demo video rendered in chunks (JobManager, local workers, stitch) vs one single ffmpeg pass.

Both encode the same frames with the same x264 settings and the same AAC tone; both outputs are
checked to have every frame. Target (issue 2): chunked / single <= 1.3x on this 2-core machine.

    python bench/local_render.py [--job examples/testsrc.yaml] [--concurrency 2] [--repeat 2]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from framefarm import (
    ExecutionOptions,
    FfmpegStitcher,
    JobExecutor,
    JobManager,
    JobState,
    LocalStorage,
    LocalWorkerAdapter,
    SqliteJobRepository,
    load_job_file,
)
from framefarm.config import ffmpeg_path
from framefarm.stitch.probe import packets

ROOT = Path(__file__).resolve().parents[1]


def chunked(job_file: Path, concurrency: int, scratch: Path) -> tuple[float, Path]:
    spec = load_job_file(job_file)
    manager = JobManager(SqliteJobRepository(scratch / "jobs.db"), JobExecutor(LocalWorkerAdapter()),
                         LocalStorage(scratch))
    output = scratch / "chunked.mp4"
    started = time.perf_counter()
    manager.create_job(spec)
    status = manager.run_job(spec.id, ExecutionOptions(concurrency=concurrency, stitcher=FfmpegStitcher(),
                                                       output_file=output))
    elapsed = time.perf_counter() - started
    assert status.state is JobState.COMPLETED, status.error
    return elapsed, output


def single_pass(job_file: Path, scratch: Path) -> tuple[float, Path]:
    spec = load_job_file(job_file)
    meta = spec.metadata
    fps = f"{meta.fps:g}"
    output = scratch / "single.mp4"
    command = [ffmpeg_path(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
               "-f", "lavfi", "-i", f"testsrc2=size={meta.width}x{meta.height}:rate={fps}",
               "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={meta.duration:g}",
               "-vf", f"trim=start_frame=0:end_frame={meta.total_frames},setpts=PTS-STARTPTS",
               "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
               "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", str(output)]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started, output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", type=Path, default=ROOT / "examples" / "testsrc.yaml")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    chunked_times, single_times = [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as scratch:
            seconds, output = chunked(args.job, args.concurrency, Path(scratch))
            frames = len(packets(output))
            chunked_times.append(seconds)
        with tempfile.TemporaryDirectory() as scratch:
            seconds, output = single_pass(args.job, Path(scratch))
            assert len(packets(output)) == frames, "single pass and chunked differ in frame count"
            single_times.append(seconds)
    chunked_s, single_s = statistics.median(chunked_times), statistics.median(single_times)
    spec = load_job_file(args.job)
    print(f"{spec.metadata.total_frames} frames {spec.metadata.width}x{spec.metadata.height} in "
          f"{len(spec.chunks)} chunks, concurrency {args.concurrency}, median of {args.repeat}")
    print(f"  chunked (render + audio + stitch): {chunked_s:.2f} s")
    print(f"  single ffmpeg pass:                {single_s:.2f} s")
    print(f"  ratio (chunked / single): {chunked_s / single_s:.2f}x")


if __name__ == "__main__":
    main()
