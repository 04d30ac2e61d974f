"""Merge: download + verify + stitch 50 chunks (about 500 MB) from moto's S3 server, vs ``cat`` of the
same bytes from local disk (the physical floor: reading and writing them once).

The chunk is one lossless 720p encode (~10 MB) uploaded 50 times, so the stitch is a real concat
of 50 valid chunks. Prints both times and the ratio.

    python bench/merge.py [--chunks 50] [--frames 30] [--workers 8]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from framefarm import plan_job
from framefarm.config import ffmpeg_path
from framefarm.stitch.merge import S3MergeAdapter
from framefarm.stitch.probe import packets
from framefarm.storage.keys import chunk_key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=50)
    parser.add_argument("--frames", type=int, default=150, help="frames per chunk (sets the chunk size)")
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    for name, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(name, value)
    import boto3
    from moto.server import ThreadedMotoServer

    from framefarm.storage.s3 import S3Storage

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{server.get_host_and_port()[1]}"
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="merge-bench")
        storage = S3Storage("merge-bench", client=s3)
        with tempfile.TemporaryDirectory() as scratch:
            base = Path(scratch)
            chunk = base / "chunk.mp4"
            subprocess.run([ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                            "testsrc2=size=1280x720:rate=30", "-frames:v", str(args.frames), "-c:v", "libx264",
                            "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p", str(chunk)], check=True)
            size = chunk.stat().st_size
            spec = plan_job({"id": "merge-bench", "width": 1280, "height": 720, "fps": 30,
                             "total_frames": args.chunks * args.frames, "frames_per_chunk": args.frames,
                             "command": "render {output}"})
            for item in spec.chunks:
                storage.put_file(chunk_key(spec.id, item.id, item.output_file), chunk)
            local_copies = []
            for index in range(args.chunks):
                copy = base / "local" / f"{index:05d}.mp4"
                copy.parent.mkdir(exist_ok=True)
                copy.write_bytes(chunk.read_bytes())
                local_copies.append(copy)
            subprocess.run(["sync"], check=True)

            started = time.perf_counter()
            output = S3MergeAdapter(storage, workers=args.workers).merge(spec, base / "merged.mp4", work_dir=base)
            merge_s = time.perf_counter() - started
            assert len(packets(output)) == args.chunks * args.frames

            started = time.perf_counter()
            with open(base / "cat.out", "wb") as sink:
                subprocess.run(["cat", *map(str, local_copies)], stdout=sink, check=True)
            cat_s = time.perf_counter() - started
        total_mb = size * args.chunks / 1e6
        print(f"{args.chunks} chunks x {size / 1e6:.1f} MB = {total_mb:.0f} MB, {args.workers} download workers")
        print(f"  S3MergeAdapter (list, download, verify size+checksum, stitch): {merge_s:.2f} s "
              f"({total_mb / merge_s:.0f} MB/s)")
        print(f"  cat from local disk (floor):                              {cat_s:.2f} s "
              f"({total_mb / cat_s:.0f} MB/s)")
        print(f"  ratio: {merge_s / cat_s:.1f}x")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
