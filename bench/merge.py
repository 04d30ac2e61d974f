"""Merge: download + verify + stitch a job's chunks from moto's S3 server, vs ``cat`` of the same bytes
from local disk (the physical floor: reading and writing them once).

The chunk is one lossless 720p encode (~10 MB at 150 frames) uploaded N times, so the stitch is a
real concat of valid chunks. moto runs in a process of its own, as S3 would be elsewhere (in this
process it would take the merge's interpreter lock for every byte it serves). Prints the wall and
CPU times of both, their ratio, each phase's span and its share of the merge (the phases overlap,
so the shares add up to more than 100 %), and the peak memory of the merge (this process and ffmpeg).

    python bench/merge.py [--chunks 50] [--frames 150] [--workers 8] [--older-chunks] [--upload]
    python bench/merge.py --total-gb 5 --frames 1500     # 5 GB of ~100 MB chunks: linear cost, flat memory
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from framefarm import plan_job
from framefarm.config import ffmpeg_path
from framefarm.stitch.ffmpeg import FfmpegStitcher
from framefarm.stitch.merge import S3MergeAdapter
from framefarm.stitch.probe import packets
from framefarm.storage.keys import chunk_key

MB = 1e6


class Phases:
    """(start, end) intervals per phase name, from any thread."""

    def __init__(self) -> None:
        self.spans: dict[str, list[tuple[float, float]]] = {}
        self._lock = threading.Lock()

    def timed(self, name: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            with self._lock:
                self.spans.setdefault(name, []).append((started, time.perf_counter()))

    def span(self, name: str) -> tuple[float, float] | None:
        found = self.spans.get(name)
        return (min(s for s, _ in found), max(e for _, e in found)) if found else None


def timed_storage(storage: Any, phases: Phases) -> Any:
    """The store with its calls timed: list, records (small GETs), download (+verify), upload."""
    listing, get_bytes, get_file, put_file = storage.list, storage.get_bytes, storage.get_file, storage.put_file
    storage.list = lambda *a, **k: phases.timed("list", listing, *a, **k)
    storage.get_bytes = lambda *a, **k: phases.timed("records", get_bytes, *a, **k)
    storage.get_file = lambda *a, **k: phases.timed("download+verify", get_file, *a, **k)
    storage.put_file = lambda *a, **k: phases.timed("upload", put_file, *a, **k)
    if hasattr(storage, "upload_as_written"):  # framefarm 0.3: the upload streams as the video is written
        as_written = storage.upload_as_written

        def timed_upload(key: str) -> Any:
            upload = as_written(key)
            finish = upload.finish
            upload.finish = lambda *a, **k: phases.timed("upload (rest)", finish, *a, **k)
            return upload
        storage.upload_as_written = timed_upload
    return storage


def timed_runner(phases: Phases) -> Any:
    def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        name = "concat" if "concat" in command else "probe"
        return phases.timed(name, subprocess.run, command, **kwargs)
    return run


class PeakMemory:
    """Samples the resident memory of this process and of its children (ffmpeg; not moto) every 20 ms."""

    def __init__(self, ignore: int) -> None:
        self.ignore = ignore
        self.peak_self = self.peak_children = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_self = max(self.peak_self, _rss(os.getpid()))
            self.peak_children = max(self.peak_children, sum(_rss(pid) for pid in _children() if pid != self.ignore))


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0


def _children() -> list[int]:
    found = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as children:
                found += [int(pid) for pid in children.read().split()]
        except OSError:
            pass
    return found


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("moto's server did not start within 60 s")


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=50)
    parser.add_argument("--frames", type=int, default=150, help="frames per chunk (sets the chunk size)")
    parser.add_argument("--total-gb", type=float, help="as many chunks as make this many GB (overrides --chunks)")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--older-chunks", action="store_true", help="store no media record beside each chunk, "
                        "as a worker before framefarm 0.3 did (the stitch probes them)")
    parser.add_argument("--upload", action="store_true", help="also upload the video (framefarm stitch --upload)")
    parser.add_argument("--dir", type=Path, help="scratch directory (default: the system's)")
    args = parser.parse_args()
    for name, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(name, value)
    import boto3

    from framefarm.storage.s3 import S3Storage

    server, endpoint = start_moto()
    try:
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="merge-bench")
        storage = S3Storage("merge-bench", client=s3)
        with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
            base = Path(scratch)
            chunk = base / "chunk.mp4"
            subprocess.run([ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                            "testsrc2=size=1280x720:rate=30", "-frames:v", str(args.frames), "-c:v", "libx264",
                            "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p", str(chunk)], check=True)
            size = chunk.stat().st_size
            count = math.ceil(args.total_gb * 1e9 / size) if args.total_gb else args.chunks
            spec = plan_job({"id": "merge-bench", "width": 1280, "height": 720, "fps": 30,
                             "total_frames": count * args.frames, "frames_per_chunk": args.frames,
                             "command": "render {output}"})
            record = None if args.older_chunks else store_record(chunk)
            for item in spec.chunks:
                storage.put_file(chunk_key(spec.id, item.id, item.output_file), chunk)
                if record is not None:
                    storage.put_file(media_key(spec.id, item.id), record)
            local_copies = []
            for index in range(count):
                copy = base / "local" / f"{index:05d}.mp4"
                copy.parent.mkdir(exist_ok=True)
                shutil.copyfile(chunk, copy)
                local_copies.append(copy)
            subprocess.run(["sync"], check=True)

            phases = Phases()
            merger = S3MergeAdapter(timed_storage(storage, phases), workers=args.workers,
                                    stitcher=FfmpegStitcher(runner=timed_runner(phases)))
            cpu = cpu_seconds()
            merge_started = started = time.perf_counter()
            with PeakMemory(ignore=server.pid) as memory:
                output = merger.merge(spec, base / "merged.mp4", work_dir=base,
                                      upload_key="jobs/merge-bench/merged.mp4" if args.upload else None)
            merge_s = time.perf_counter() - started
            merge_cpu = cpu_seconds() - cpu
            assert len(packets(output)) == count * args.frames
            output.unlink()

            subprocess.run(["sync"], check=True)
            cpu = cpu_seconds()
            started = time.perf_counter()
            with open(base / "cat.out", "wb") as sink:
                subprocess.run(["cat", *map(str, local_copies)], stdout=sink, check=True)
            cat_s = time.perf_counter() - started
            cat_cpu = cpu_seconds() - cpu
        report(args, count, size, merge_s, merge_cpu, cat_s, cat_cpu, phases, started_at=merge_started, memory=memory)
    finally:
        server.terminate()
        server.wait(timeout=30)


def media_key(job_id: str, chunk_id: int) -> str:
    from framefarm.storage.keys import chunk_media_key  # framefarm 0.3: records (--older-chunks runs 0.2 too)

    return chunk_media_key(job_id, chunk_id)


def store_record(chunk: Path) -> Path | None:
    from framefarm.stitch.records import media_path, write_record

    write_record(chunk)
    return media_path(chunk)


def report(args: argparse.Namespace, count: int, size: int, merge_s: float, merge_cpu: float, cat_s: float,
           cat_cpu: float, phases: Phases, *, started_at: float, memory: PeakMemory) -> None:
    total_mb = size * count / MB
    print(f"{count} chunks x {size / MB:.1f} MB = {total_mb:.0f} MB, {args.workers} download workers, "
          f"records {'absent' if args.older_chunks else 'stored'}{', upload' if args.upload else ''}")
    print(f"  S3MergeAdapter (list, download, verify, check, join{', upload' if args.upload else ''}): "
          f"{merge_s:.2f} s wall ({total_mb / merge_s:.0f} MB/s), {merge_cpu:.2f} s CPU")
    print(f"  cat from local disk (floor): {cat_s:.2f} s wall ({total_mb / cat_s:.0f} MB/s), {cat_cpu:.2f} s CPU")
    print(f"  ratio: {merge_s / cat_s:.1f}x")
    for name in ("list", "records", "download+verify", "probe", "concat", "upload", "upload (rest)"):
        span = phases.span(name)
        if span is not None:
            start, end = span[0] - started_at, span[1] - started_at
            print(f"  {name:16s} {start:6.2f} → {end:6.2f} s  ({(end - start) / merge_s:4.0%} of the merge, "
                  f"{len(phases.spans[name])} calls)")
    downloads, concat = phases.span("download+verify"), phases.span("concat")
    if downloads and concat:
        overlap = max(0.0, min(downloads[1], concat[1]) - max(downloads[0], concat[0]))
        print(f"  download and concat overlap for {overlap:.2f} s")
    print(f"  peak memory during the merge: this process {memory.peak_self / MB:.0f} MB, "
          f"ffmpeg {memory.peak_children / MB:.0f} MB")


if __name__ == "__main__":
    main()
