"""Merge: download + verify + stitch a job's chunks from moto's S3 server, vs ``cat`` of the same bytes
from local disk (the physical floor: reading and writing them once), and vs the fetch floor.

The chunk is one lossless 720p encode (~10 MB at 150 frames) uploaded N times, so the stitch is a
real join of valid chunks. moto runs in a process of its own, as S3 would be elsewhere (in this
process it would take the merge's interpreter lock for every byte it serves). The fetch floor is
the network's share: the same objects fetched by plain boto3 (``get_object`` streamed to files, as
many threads, no checks), and ``cat`` joins those files; with --upload, the same bytes are also
uploaded by ``upload_file``. Prints the wall and CPU times of each (and moto's CPU), the merge's ratio to ``cat``
and to the fetch (+ upload) floor, the share of the records GETs, each phase's span, share of the
merge and busy time (the phases overlap, so the shares add up to more than 100 %; ``join`` is the
direct MP4 join's own work, ``concat`` ffmpeg's), and the peak memory of this process and its children.

``--store local`` puts the chunks in a ``LocalStorage`` directory instead (no network at all): the
merge's ratio to ``cat`` there is framefarm's own cost; it also times ``FfmpegStitcher().stitch`` of
local copies (the local render's stitch). ``--direct off`` joins with ffmpeg's concat instead.

    python bench/merge.py [--chunks 50] [--frames 150] [--workers 8] [--older-chunks] [--upload]
    python bench/merge.py --store local        # no network: framefarm's own cost, and the local stitch
    python bench/merge.py --direct off         # ffmpeg's concat instead of the direct join
    python bench/merge.py --total-gb 5 --frames 1500     # 5 GB of ~100 MB chunks: linear cost, flat memory
"""

from __future__ import annotations

import argparse
import contextlib
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
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from framefarm import plan_job
from framefarm.config import ffmpeg_path
from framefarm.stitch.ffmpeg import FfmpegStitcher
from framefarm.stitch.merge import S3MergeAdapter
from framefarm.stitch.probe import packets
from framefarm.storage.keys import chunk_key
from framefarm.storage.local import LocalStorage

MB = 1e6
BUCKET = "merge-bench"
READ_BLOCK = 1 << 20  # as S3Storage.get_file reads


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

    def busy(self, name: str) -> float:
        """The calls' durations added up (more than the span where they ran in parallel)."""
        return sum(end - start for start, end in self.spans.get(name, []))


def timed_storage(storage: Any, phases: Phases) -> Any:
    """The store with its calls timed: list, records (small GETs), download (+verify), upload."""
    listing, get_bytes, put_file = storage.list, storage.get_bytes, storage.put_file
    storage.list = lambda *a, **k: phases.timed("list", listing, *a, **k)
    storage.get_bytes = lambda *a, **k: phases.timed("records", get_bytes, *a, **k)
    # framefarm 0.3 asks for a file to read (a local store's own, read in place; others download it)
    fetch = "readable_file" if hasattr(storage, "readable_file") else "get_file"
    fetching = getattr(storage, fetch)
    setattr(storage, fetch, lambda *a, **k: phases.timed("download+verify", fetching, *a, **k))
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


@contextlib.contextmanager
def timed_join(phases: Phases) -> Iterator[None]:
    """The direct MP4 join's own work timed while inside, not its waits for chunks to land: "index
    reads" (``Mp4Source.open``, each chunk's sample tables) and "join" (``Mp4Join.start``/``add``/
    ``finish``: the samples copied, the index written). Nothing to time before framefarm 0.3."""
    try:
        from framefarm.stitch.mp4.join import Mp4Join
        from framefarm.stitch.mp4.source import Mp4Source
    except ImportError:
        yield
        return
    opened = Mp4Source.__dict__["open"]
    methods = {name: getattr(Mp4Join, name) for name in ("start", "add", "finish")}

    def timed_method(method: Any) -> Any:
        return lambda *a, **k: phases.timed("join", method, *a, **k)
    for name, method in methods.items():
        setattr(Mp4Join, name, timed_method(method))
    Mp4Source.open = classmethod(lambda cls, *a, **k: phases.timed("index reads", opened.__func__, cls, *a, **k))
    try:
        yield
    finally:
        for name, method in methods.items():
            setattr(Mp4Join, name, method)
        Mp4Source.open = opened


@contextlib.contextmanager
def timed_cleanup(phases: Phases) -> Iterator[None]:
    """Directory removals timed as "cleanup" while inside: the merge's scratch directory, its
    downloaded chunks deleted (``TemporaryDirectory`` removes it with ``shutil.rmtree``)."""
    rmtree = shutil.rmtree
    shutil.rmtree = lambda *a, **k: phases.timed("cleanup", rmtree, *a, **k)  # type: ignore[assignment]
    try:
        yield
    finally:
        shutil.rmtree = rmtree  # type: ignore[assignment]


def make_stitcher(direct: bool, runner: Any = subprocess.run) -> FfmpegStitcher:
    if direct:
        return FfmpegStitcher(runner=runner)
    try:
        return FfmpegStitcher(runner=runner, direct=False)
    except TypeError:
        raise SystemExit("--direct off: this framefarm has no direct MP4 join to turn off (no "
                         "FfmpegStitcher(direct=...)); without the option it joins with ffmpeg's concat") from None


class PeakMemory:
    """Samples the resident memory of this process and of its children (ffmpeg; not moto) every 20 ms."""

    def __init__(self, ignore: int | None) -> None:
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


def process_cpu_seconds(pid: int | None) -> float:
    """User + system CPU of a running process (moto's server, which RUSAGE_CHILDREN misses until it is reaped)."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Timing:
    """One measured run: its wall and CPU seconds (this process and its children; moto's apart)."""

    wall: float = 0.0
    cpu: float = 0.0
    server_cpu: float = 0.0

    @contextlib.contextmanager
    def measure(self, server: int | None) -> Iterator[Timing]:
        cpu, served, started = cpu_seconds(), process_cpu_seconds(server), time.perf_counter()
        try:
            yield self
        finally:
            self.wall = time.perf_counter() - started
            self.cpu = cpu_seconds() - cpu
            self.server_cpu = process_cpu_seconds(server) - served


def fetch_floor(client: Any, bucket: str, keys: Sequence[str], target: Path, workers: int) -> list[Path]:
    """The objects at ``keys`` fetched by plain boto3 into ``target``, ``workers`` at a time, no checks."""
    target.mkdir()

    def fetch(index: int) -> Path:
        path = target / f"{index:05d}.mp4"
        body = client.get_object(Bucket=bucket, Key=keys[index])["Body"]
        try:
            with open(path, "wb") as sink:
                shutil.copyfileobj(body, sink, READ_BLOCK)
        finally:
            body.close()
        return path
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fetch, range(len(keys))))


def cat(files: Sequence[Path], output: Path) -> Timing:
    subprocess.run(["sync"], check=True)
    with Timing().measure(None) as timing, open(output, "wb") as sink:
        subprocess.run(["cat", *map(str, files)], stdout=sink, check=True)
    return timing


@dataclass
class Floors:
    """What the merge is held against: ``cat`` of the same bytes on local disk; from moto, the same
    objects fetched (with --upload, and the video uploaded) by plain boto3; from a local store, the
    local render's stitch of copies of the chunks."""

    cat: Timing
    fetch: Timing | None = None
    upload: Timing | None = None
    stitch: Timing | None = None
    stitch_phases: Phases | None = None


def moto_floors(endpoint: str, server_pid: int, keys: Sequence[str], base: Path, args: argparse.Namespace) -> Floors:
    client = unchecked_client(endpoint)
    subprocess.run(["sync"], check=True)
    with Timing().measure(server_pid) as fetch:
        files = fetch_floor(client, BUCKET, keys, base / "fetched", args.workers)
    floors = Floors(cat(files, base / "cat.out"), fetch=fetch)
    if args.upload:  # boto3's own multipart upload, its default part size and threads
        with Timing().measure(server_pid) as floors.upload:
            client.upload_file(str(base / "cat.out"), BUCKET, "jobs/merge-bench/floor.mp4")
    (base / "cat.out").unlink()
    return floors


def local_floors(files: Sequence[Path], copies: Sequence[Path], base: Path, direct: bool) -> Floors:
    floors = Floors(cat(files, base / "cat.out"))
    (base / "cat.out").unlink()
    subprocess.run(["sync"], check=True)
    floors.stitch_phases = Phases()
    with timed_join(floors.stitch_phases), Timing().measure(None) as floors.stitch:
        make_stitcher(direct, timed_runner(floors.stitch_phases)).stitch(copies, base / "stitched.mp4")
    return floors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=50)
    parser.add_argument("--frames", type=int, default=150, help="frames per chunk (sets the chunk size)")
    parser.add_argument("--total-gb", type=float, help="as many chunks as make this many GB (overrides --chunks)")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--older-chunks", action="store_true", help="store no media record beside each chunk, "
                        "as a worker before framefarm 0.3 did (the stitch probes them)")
    parser.add_argument("--upload", action="store_true", help="also upload the video (framefarm stitch --upload)")
    parser.add_argument("--store", choices=("moto", "local"), default="moto",
                        help="where the chunks are: moto's S3 server, or a LocalStorage directory (no network)")
    parser.add_argument("--direct", choices=("on", "off"), default="on",
                        help="off: join with ffmpeg's concat, not the direct MP4 join (framefarm 0.3)")
    parser.add_argument("--dir", type=Path, help="scratch directory (default: the system's)")
    args = parser.parse_args()
    for name, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(name, value)
    direct = args.direct == "on"
    make_stitcher(direct)  # an old framefarm refuses --direct off before anything is set up
    server, endpoint = start_moto() if args.store == "moto" else (None, "")
    server_pid = server.pid if server is not None else None
    try:
        with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
            base = Path(scratch)
            storage = s3_storage(endpoint) if server is not None else LocalStorage(base / "store")
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
            keys = [chunk_key(spec.id, item.id, item.output_file) for item in spec.chunks]
            for item, key in zip(spec.chunks, keys, strict=True):
                storage.put_file(key, chunk)
                if record is not None:
                    storage.put_file(media_key(spec.id, item.id), record)
            subprocess.run(["sync"], check=True)

            phases = Phases()
            merger = S3MergeAdapter(timed_storage(storage, phases), workers=args.workers,
                                    stitcher=make_stitcher(direct, timed_runner(phases)))
            with PeakMemory(ignore=server_pid) as memory, timed_join(phases), timed_cleanup(phases), \
                    Timing().measure(server_pid) as merge:
                merge_started = time.perf_counter()
                output = merger.merge(spec, base / "merged.mp4", work_dir=base,
                                      upload_key="jobs/merge-bench/merged.mp4" if args.upload else None)
            assert len(packets(output)) == count * args.frames
            output.unlink()

            if server_pid is not None:
                floors = moto_floors(endpoint, server_pid, keys, base, args)
            else:
                floors = local_floors([storage.path(key) for key in keys],
                                      local_copies(chunk, record, count, base / "local"), base, direct)
        report(args, count, size, merge, floors, phases, started_at=merge_started, memory=memory)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)


def s3_storage(endpoint: str) -> Any:
    import boto3

    from framefarm.storage.s3 import S3Storage

    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=BUCKET)
    return S3Storage(BUCKET, client=client)


def unchecked_client(endpoint: str) -> Any:
    """A boto3 S3 client that neither checks nor sends checksums (botocore >= 1.36 does both by default)."""
    import boto3
    from botocore.config import Config

    try:
        config = Config(response_checksum_validation="when_required", request_checksum_calculation="when_required")
    except TypeError:  # an older botocore, which checks nothing unless asked
        config = Config()
    return boto3.client("s3", endpoint_url=endpoint, config=config)


def local_copies(chunk: Path, record: Path | None, count: int, directory: Path) -> list[Path]:
    """``count`` copies of ``chunk``, each with its record beside it, as a local render leaves them."""
    directory.mkdir()
    copies = [directory / f"{index:05d}.mp4" for index in range(count)]
    for copy in copies:
        shutil.copyfile(chunk, copy)
        if record is not None:
            shutil.copyfile(record, record_path(copy))
    return copies


def media_key(job_id: str, chunk_id: int) -> str:
    from framefarm.storage.keys import chunk_media_key  # framefarm 0.3: records (--older-chunks runs 0.2 too)

    return chunk_media_key(job_id, chunk_id)


def record_path(chunk: Path) -> Path:
    from framefarm.stitch.records import media_path

    return media_path(chunk)


def store_record(chunk: Path) -> Path | None:
    from framefarm.stitch.records import write_record

    write_record(chunk)
    return record_path(chunk)


def report(args: argparse.Namespace, count: int, size: int, merge: Timing, floors: Floors, phases: Phases, *,
           started_at: float, memory: PeakMemory) -> None:
    total_mb = size * count / MB
    fetched = floors.fetch is not None
    joined_by = "ffmpeg concat" if phases.span("concat") else "direct join" if phases.span("join") else "?"
    where = "moto's S3 server" if fetched else "a LocalStorage directory"
    print(f"{count} chunks x {size / MB:.1f} MB = {total_mb:.0f} MB from {where}, {args.workers} download workers, "
          f"records {'absent' if args.older_chunks else 'stored'}, {joined_by}{', upload' if args.upload else ''}")

    def line(name: str, timing: Timing, served: bool = fetched) -> None:
        print(f"  {name}: {timing.wall:.2f} s wall ({total_mb / timing.wall:.0f} MB/s), {timing.cpu:.2f} s CPU"
              + (f", moto {timing.server_cpu:.2f} s CPU" if served else ""))
    line(f"S3MergeAdapter (list, download, verify, check, join{', upload' if args.upload else ''})", merge)
    if floors.fetch is not None:
        line(f"fetch floor (boto3 get_object to files, {args.workers} threads, no checks)", floors.fetch)
    if floors.upload is not None:
        line("upload floor (boto3 upload_file of the same bytes, no checks)", floors.upload)
    line(f"cat of the {'fetched' if fetched else 'stored'} files (disk floor)", floors.cat, served=False)
    ratios = f"  merge / cat: {merge.wall / floors.cat.wall:.1f}x"
    if floors.fetch is not None:
        network = floors.fetch.wall + (floors.upload.wall if floors.upload is not None else 0.0)
        ratios += (f"   merge / {'fetch+upload' if floors.upload else 'fetch'} floor: {merge.wall / network:.2f}x"
                   f"   fetch floor / cat: {floors.fetch.wall / floors.cat.wall:.1f}x")
    print(ratios)
    if floors.stitch is not None and floors.stitch_phases is not None:
        parts = floors.stitch_phases
        busy = ", ".join(f"{name} {parts.busy(name):.2f} s" for name in parts.spans)
        print(f"  FfmpegStitcher().stitch of local copies (the local render's stitch): {floors.stitch.wall:.2f} s "
              f"wall, {floors.stitch.cpu:.2f} s CPU, {floors.stitch.wall / floors.cat.wall:.1f}x cat; busy: {busy}")
    for name in ("list", "records", "download+verify", "probe", "index reads", "join", "concat", "upload",
                 "upload (rest)", "cleanup"):
        span = phases.span(name)
        if span is not None:
            start, end = span[0] - started_at, span[1] - started_at
            print(f"  {name:16s} {start:6.2f} → {end:6.2f} s  ({(end - start) / merge.wall:4.0%} of the merge, "
                  f"{len(phases.spans[name])} calls, {phases.busy(name):.2f} s busy)")
    records = phases.span("records")
    if records is not None:
        print(f"  the records GETs take {(records[1] - records[0]) / merge.wall:.0%} of the merge's wall time")
    downloads = phases.span("download+verify")
    for joining in ("join", "concat"):
        span = phases.span(joining)
        if downloads and span:
            overlap = max(0.0, min(downloads[1], span[1]) - max(downloads[0], span[0]))
            print(f"  download and {joining} overlap for {overlap:.2f} s")
    print(f"  peak memory during the merge: this process {memory.peak_self / MB:.0f} MB, "
          f"its children (ffmpeg) {memory.peak_children / MB:.0f} MB")


if __name__ == "__main__":
    main()
